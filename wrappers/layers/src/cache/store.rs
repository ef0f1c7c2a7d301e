//! Chunks on local disk, with an index in memory rebuilt from the disk at
//! start.
//!
//! Layout under the cache root: `files/<key>/meta.json` describes the cached
//! file (its path, and the size, modification time and chunk size the chunks
//! belong to) and `files/<key>/<n>` holds chunk `n`; `<key>` is the first 32
//! hex digits of the SHA-256 of the path. New chunk files are written under
//! `tmp/` and renamed into place. Eviction removes the least recently used
//! chunks first (by last read in this process, by file time after a restart).

use berth_storage::{Entry, ErrorKind, Result, StorageError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The version of a file that cached chunks belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Size in bytes.
    pub size: u64,
    /// Modification time as (seconds, nanoseconds) since the Unix epoch.
    pub modified: Option<(u64, u32)>,
}

impl Identity {
    /// The version `entry` describes.
    pub fn of(entry: &Entry) -> Identity {
        Identity {
            size: entry.size,
            modified: entry
                .modified
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| (d.as_secs(), d.subsec_nanos())),
        }
    }
}

/// `meta.json` of a cached file.
#[derive(Debug, Serialize, Deserialize)]
struct FileMeta {
    path: String,
    identity: Identity,
    chunk_size: u64,
}

#[derive(Debug)]
struct ChunkInfo {
    len: u64,
    /// Last use.
    used: UseStamp,
}

#[derive(Debug)]
struct CachedFile {
    key: String,
    identity: Identity,
    chunks: HashMap<u64, ChunkInfo>,
}

#[derive(Debug, Default)]
struct Index {
    files: HashMap<String, CachedFile>,
    total: u64,
    last_clean: Option<Instant>,
    in_flight: HashMap<(String, u64), watch::Receiver<bool>>,
}

/// Chunk files on disk and their index.
#[derive(Debug)]
pub struct ChunkStore {
    root: PathBuf,
    chunk_size: u64,
    capacity: u64,
    clean_every: Duration,
    index: Mutex<Index>,
}

/// Who fetches a chunk that is not on disk.
pub enum Claim {
    /// The caller: it fetches and reports through the guard.
    Fetch(FetchGuard),
    /// Someone else is fetching it; the receiver turns `true` when done (or
    /// closes when that fetch failed).
    Wait(watch::Receiver<bool>),
}

/// Marks a chunk as being fetched until dropped.
pub struct FetchGuard {
    store: Arc<ChunkStore>,
    key: (String, u64),
    done: watch::Sender<bool>,
}

impl FetchGuard {
    /// Tells the waiters that the chunk is on disk now.
    pub fn finished(self) {
        let _ = self.done.send(true);
    }
}

impl Drop for FetchGuard {
    fn drop(&mut self) {
        if let Ok(mut index) = self.store.index.lock() {
            index.in_flight.remove(&self.key);
        }
    }
}

/// When a reader asked for a chunk: the time eviction orders chunks by.
///
/// A read takes its stamps in the order it asks for pieces, before fetching
/// them, so pieces that arrive out of order (several fetches run at once)
/// still rank by their place in the read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UseStamp(u128);

impl UseStamp {
    /// Now.
    pub fn now() -> Self {
        Self::at(SystemTime::now())
    }

    /// At `time` (nanoseconds since the Unix epoch; earlier is 0).
    fn at(time: SystemTime) -> Self {
        Self(
            time.duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        )
    }
}

fn io_error(what: &str, err: std::io::Error) -> StorageError {
    StorageError::new(ErrorKind::Other, format!("cache: {what}: {err}"))
}

/// Directory key of a path.
fn key_of(path: &str) -> String {
    hex::encode(Sha256::digest(path.as_bytes()))[..32].to_string()
}

/// Whether `path` is `root` or below it.
fn within(path: &str, root: &str) -> bool {
    path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl ChunkStore {
    /// Opens (creating) the cache at `root`; `purge` first deletes what it
    /// holds. Chunks of another chunk size, and files that do not check out,
    /// are removed.
    pub async fn open(
        root: PathBuf,
        chunk_size: u64,
        capacity: u64,
        clean_every: Duration,
        purge: bool,
    ) -> Result<Arc<ChunkStore>> {
        let scan_root = root.clone();
        let index = tokio::task::spawn_blocking(move || Self::scan(&scan_root, chunk_size, purge))
            .await
            .map_err(|e| StorageError::new(ErrorKind::Other, format!("cache scan: {e}")))?
            .map_err(|e| {
                // The kind follows the I/O error (permission, full disk, ...).
                let message = format!("Failed to open cache DB: {e}");
                StorageError::new(StorageError::from_io(e, "").kind, message)
            })?;
        let store = Arc::new(ChunkStore {
            root,
            chunk_size,
            capacity,
            clean_every,
            index: Mutex::new(index),
        });
        store.clean(true).await;
        Ok(store)
    }

    /// Builds the index from the disk (blocking).
    fn scan(root: &Path, chunk_size: u64, purge: bool) -> std::io::Result<Index> {
        if purge && root.exists() {
            std::fs::remove_dir_all(root)?;
        }
        let tmp = root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        let files = root.join("files");
        std::fs::create_dir_all(&files)?;
        let mut index = Index::default();
        for dir in std::fs::read_dir(&files)? {
            let dir = dir?.path();
            match Self::scan_file(&dir, chunk_size) {
                Some((path, file, bytes)) => {
                    index.total += bytes;
                    index.files.insert(path, file);
                }
                None => {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        Ok(index)
    }

    /// One cached file from its directory; `None` when it does not check out.
    fn scan_file(dir: &Path, chunk_size: u64) -> Option<(String, CachedFile, u64)> {
        let key = dir.file_name()?.to_str()?.to_string();
        let meta: FileMeta =
            serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()?;
        if meta.chunk_size != chunk_size || key_of(&meta.path) != key {
            return None;
        }
        let mut chunks = HashMap::new();
        let mut bytes = 0;
        for item in std::fs::read_dir(dir).ok()? {
            let item = item.ok()?;
            let name = item.file_name();
            let Some(n) = name.to_str().and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            let info = item.metadata().ok()?;
            let expected = meta
                .identity
                .size
                .saturating_sub(n.saturating_mul(chunk_size))
                .min(chunk_size);
            if expected == 0 || info.len() != expected {
                let _ = std::fs::remove_file(item.path());
                continue;
            }
            let used = info.modified().map_or(UseStamp(0), UseStamp::at);
            bytes += expected;
            chunks.insert(
                n,
                ChunkInfo {
                    len: expected,
                    used,
                },
            );
        }
        let file = CachedFile {
            key,
            identity: meta.identity,
            chunks,
        };
        Some((meta.path, file, bytes))
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        // Every critical section leaves the index consistent.
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn file_dir(&self, key: &str) -> PathBuf {
        self.root.join("files").join(key)
    }

    /// The chunk size.
    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// Bytes held on disk.
    pub fn total(&self) -> u64 {
        self.index().total
    }

    /// A fresh path under `tmp/` for a file being written.
    pub fn temp_path(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{:016x}", rand::random::<u64>()))
    }

    /// Drops the cached chunks of `path` unless they belong to `identity`.
    pub async fn check(&self, path: &str, identity: Identity) {
        let stale = {
            let mut index = self.index();
            match index.files.get(path) {
                Some(file) if file.identity != identity => Self::unlink(&mut index, path),
                _ => None,
            }
        };
        self.remove_dirs(stale.into_iter().collect()).await;
    }

    /// Takes `path` out of the index; returns its key.
    fn unlink(index: &mut Index, path: &str) -> Option<String> {
        let file = index.files.remove(path)?;
        index.total -= file.chunks.values().map(|c| c.len).sum::<u64>();
        Some(file.key)
    }

    async fn remove_dirs(&self, keys: Vec<String>) {
        for key in keys {
            let dir = self.file_dir(&key);
            if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(dir = %dir.display(), error = %e, "removing cached chunks failed");
                }
            }
        }
    }

    /// Forgets every cached chunk of `path` and of the paths below it.
    pub async fn drop_tree(&self, path: &str) {
        let keys = {
            let mut index = self.index();
            let paths: Vec<String> = index
                .files
                .keys()
                .filter(|p| within(p, path))
                .cloned()
                .collect();
            paths
                .iter()
                .filter_map(|p| Self::unlink(&mut index, p))
                .collect()
        };
        self.remove_dirs(keys).await;
    }

    /// The disk file of chunk `n` of `path` at `identity`, if cached; marks
    /// it used at `asked`.
    pub fn lookup(
        &self,
        path: &str,
        identity: Identity,
        n: u64,
        asked: UseStamp,
    ) -> Option<PathBuf> {
        let mut index = self.index();
        let file = index.files.get_mut(path)?;
        if file.identity != identity {
            return None;
        }
        let chunk = file.chunks.get_mut(&n)?;
        chunk.used = chunk.used.max(asked);
        let key = file.key.clone();
        Some(self.file_dir(&key).join(n.to_string()))
    }

    /// Forgets chunk `n` of `path` (its disk copy did not read back).
    pub async fn forget(&self, path: &str, n: u64) {
        let gone = {
            let mut index = self.index();
            let Some(file) = index.files.get_mut(path) else {
                return;
            };
            let Some(chunk) = file.chunks.remove(&n) else {
                return;
            };
            let key = file.key.clone();
            index.total -= chunk.len;
            self.file_dir(&key).join(n.to_string())
        };
        let _ = tokio::fs::remove_file(gone).await;
    }

    /// Claims the fetch of chunk `n` of `path`, or joins the one running.
    pub fn claim(self: &Arc<Self>, path: &str, n: u64) -> Claim {
        let key = (path.to_string(), n);
        let mut index = self.index();
        if let Some(rx) = index.in_flight.get(&key) {
            return Claim::Wait(rx.clone());
        }
        let (done, rx) = watch::channel(false);
        index.in_flight.insert(key.clone(), rx);
        Claim::Fetch(FetchGuard {
            store: self.clone(),
            key,
            done,
        })
    }

    /// Stores chunk `n` of `path` at `identity`, written at `temp` (moved
    /// into place) and used at `asked`, then evicts if the cache is over its
    /// size.
    pub async fn adopt(
        &self,
        path: &str,
        identity: Identity,
        n: u64,
        temp: &Path,
        asked: UseStamp,
    ) -> Result<()> {
        let len = tokio::fs::metadata(temp)
            .await
            .map_err(|e| io_error("reading a new chunk", e))?
            .len();
        let expected = identity
            .size
            .saturating_sub(n.saturating_mul(self.chunk_size))
            .min(self.chunk_size);
        if len != expected || expected == 0 {
            let _ = tokio::fs::remove_file(temp).await;
            return Err(StorageError::new(
                ErrorKind::Other,
                format!("cache: chunk {n} of {path} has {len} bytes, expected {expected}"),
            ));
        }
        let (key, fresh, stale) = {
            let mut index = self.index();
            let stale = match index.files.get(path) {
                Some(file) if file.identity != identity => Self::unlink(&mut index, path),
                _ => None,
            };
            let fresh = !index.files.contains_key(path);
            let key = index
                .files
                .entry(path.to_string())
                .or_insert_with(|| CachedFile {
                    key: key_of(path),
                    identity,
                    chunks: HashMap::new(),
                })
                .key
                .clone();
            (key, fresh, stale)
        };
        self.remove_dirs(stale.into_iter().collect()).await;
        let dir = self.file_dir(&key);
        let placed = async {
            tokio::fs::create_dir_all(&dir).await?;
            if fresh {
                let meta = FileMeta {
                    path: path.to_string(),
                    identity,
                    chunk_size: self.chunk_size,
                };
                let meta_temp = self.temp_path();
                tokio::fs::write(&meta_temp, serde_json::to_vec(&meta)?).await?;
                tokio::fs::rename(&meta_temp, dir.join("meta.json")).await?;
            }
            tokio::fs::rename(temp, dir.join(n.to_string())).await
        }
        .await;
        if let Err(e) = placed {
            let _ = tokio::fs::remove_file(temp).await;
            return Err(io_error("storing a chunk", e));
        }
        let wanted = {
            let mut index = self.index();
            match index.files.get_mut(path).filter(|f| f.identity == identity) {
                Some(file) => {
                    let added = file
                        .chunks
                        .insert(n, ChunkInfo { len, used: asked })
                        .is_none();
                    if added {
                        index.total += len;
                    }
                    true
                }
                None => false,
            }
        };
        if !wanted {
            // Dropped meanwhile: the chunk is not wanted any more.
            let _ = tokio::fs::remove_file(dir.join(n.to_string())).await;
            return Ok(());
        }
        self.clean(false).await;
        Ok(())
    }

    /// Stores chunk `n` of `path` at `identity` from memory, used at `asked`.
    pub async fn insert(
        &self,
        path: &str,
        identity: Identity,
        n: u64,
        data: &[u8],
        asked: UseStamp,
    ) -> Result<()> {
        let temp = self.temp_path();
        if let Err(e) = tokio::fs::write(&temp, data).await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(io_error("writing a chunk", e));
        }
        self.adopt(path, identity, n, &temp, asked).await
    }

    /// Moves the cached chunks of `path` from `old` to `new` (the content is
    /// the same: only the time changed).
    pub async fn reidentify(&self, path: &str, old: Identity, new: Identity) {
        let moved = {
            let mut index = self.index();
            match index.files.get_mut(path) {
                Some(file) if file.identity == old && old.size == new.size => {
                    file.identity = new;
                    Ok(file.key.clone())
                }
                Some(_) => Err(Self::unlink(&mut index, path)),
                None => Err(None),
            }
        };
        let key = match moved {
            Ok(key) => key,
            Err(gone) => {
                self.remove_dirs(gone.into_iter().collect()).await;
                return;
            }
        };
        let meta = FileMeta {
            path: path.to_string(),
            identity: new,
            chunk_size: self.chunk_size,
        };
        let temp = self.temp_path();
        let written = async {
            tokio::fs::write(&temp, serde_json::to_vec(&meta)?).await?;
            tokio::fs::rename(&temp, self.file_dir(&key).join("meta.json")).await
        }
        .await;
        if written.is_err() {
            // Without a matching meta.json the chunks would not survive a
            // restart correctly: drop them.
            self.drop_tree(path).await;
        }
    }

    /// Evicts least recently used chunks while the cache is over its size,
    /// at most once per `clean_every` unless `force`.
    pub async fn clean(&self, force: bool) {
        let victims = {
            let mut index = self.index();
            if index.total <= self.capacity {
                return;
            }
            if !force
                && index
                    .last_clean
                    .is_some_and(|at| at.elapsed() < self.clean_every)
            {
                return;
            }
            index.last_clean = Some(Instant::now());
            let mut all: Vec<(UseStamp, String, u64, u64)> = index
                .files
                .iter()
                .flat_map(|(path, file)| {
                    file.chunks
                        .iter()
                        .map(move |(n, c)| (c.used, path.clone(), *n, c.len))
                })
                .collect();
            all.sort_unstable();
            let mut victims = Vec::new();
            for (_, path, n, len) in all {
                if index.total <= self.capacity {
                    break;
                }
                let Some(file) = index.files.get_mut(&path) else {
                    continue;
                };
                file.chunks.remove(&n);
                let key = file.key.clone();
                let empty = file.chunks.is_empty();
                index.total -= len;
                if empty {
                    index.files.remove(&path);
                    victims.push((self.file_dir(&key), true));
                } else {
                    victims.push((self.file_dir(&key).join(n.to_string()), false));
                }
            }
            victims
        };
        for (victim, whole_file) in victims {
            let removed = if whole_file {
                tokio::fs::remove_dir_all(&victim).await
            } else {
                tokio::fs::remove_file(&victim).await
            };
            if let Err(e) = removed {
                tracing::warn!(path = %victim.display(), error = %e, "evicting a chunk failed");
            }
        }
    }
}
