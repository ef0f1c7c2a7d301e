//! `cache`: a chunk cache on local disk in front of another backend.
//!
//! Reads are served in `chunk_size` pieces: a piece on disk is read from
//! disk, a missing one is fetched from the upstream (up to `workers` pieces
//! of one read in parallel, ahead of the reader), written to disk and served.
//! Cached pieces belong to one version of a file (its size and modification
//! time): when a stat shows another version, they are dropped. Stats and
//! listing pages are cached for `info_age`, so repeated reads of a cached
//! file do not reach the upstream at all until then.
//!
//! Everything written, deleted, renamed, copied or created through the cache
//! drops the affected cached pieces, stats and listings at once (the paths
//! themselves, their ancestors' listings and, for directories, everything
//! below). Changes made behind the cache's back are seen once `info_age` has
//! passed.
//!
//! The cache lives in the backend's own state directory (`<state>/cache`):
//! `files/` holds the pieces, `tmp/` pieces being written. It survives
//! restarts: the index is rebuilt from the disk when the backend is built.
//!
//! # Options
//!
//! | option | decision |
//! |---|---|
//! | `remote` | the upstream. |
//! | `chunk_size` | honoured; must be positive. Pieces cached with another size are dropped at start. |
//! | `chunk_total_size` | honoured: when the pieces on disk exceed it, the least recently read ones are deleted until they fit. |
//! | `chunk_clean_interval` | honoured: at most one such cleanup per interval (`0`: after every new piece); a cleanup also runs at start. |
//! | `info_age` | honoured (`0` caches no stats or listings). |
//! | `workers` | honoured: pieces fetched in parallel per read; must be at least 1. |
//! | `read_retries` | honoured: how many times (waiting up to 1 s each) a read waits for a piece another read is already fetching before fetching it itself. `0` never waits. |
//! | `rps` | honoured: requests to the upstream (stats, piece fetches, writes and other changes; not listings, as in rclone) are spaced to at most this many per second. `-1` or `0`: no limit. |
//! | `writes` | honoured: data written through the cache is also stored as pieces, so reading it back right after the upload comes from disk. Without it a write only drops the old pieces. |
//! | `db_purge` | honoured: the backend's cached pieces are deleted when it is built. |
//! | `chunk_no_memory` | accepted either way: berth never keeps pieces in a memory cache; each is read from disk or from the upstream as needed. |
//! | `chunk_path`, `db_path` | only the spec default (or `""`): the cache lives in the backend's state directory. Other values are refused (`InvalidConfig`), since a user-chosen path on the server's disk is not something an API caller may pick. |
//! | `db_wait_time` | only the default `1`: there is no lockable database file to wait for. Other values are refused. |
//! | `tmp_upload_path`, `tmp_wait_time` | refused when set (`""` and `15` are the defaults): uploads go straight to the upstream. |
//! | `plex_url`, `plex_username`, `plex_password`, `plex_token`, `plex_insecure` | refused when set: "Plex integration is not supported". |
//! | `description` | metadata only. |

mod info;
mod limiter;
mod store;

use crate::options::{flag, int, size, text};
use crate::{open_remote, LayerContext};
use async_trait::async_trait;
use berth_storage::catalog::Config;
use berth_storage::{
    collect, normalize_path, ByteStream, Capability, Entry, EntryKind, ErrorKind, ListPage, Result,
    Storage, StorageError, Usage,
};
use bytes::Bytes;
use futures::StreamExt;
use info::Info;
use limiter::Limiter;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use store::{ChunkStore, Claim, Identity, UseStamp};
use tokio::io::AsyncWriteExt;

/// The spec's default for `chunk_path` and `db_path`.
const DEFAULT_CACHE_PATH: &str = "/home/user/.cache/hoody-vfs/cache-backend";
/// How long one wait for another read's fetch of a piece may take.
const PIECE_WAIT: Duration = Duration::from_secs(1);

/// What the cache layer shares with its read streams.
#[derive(Debug)]
struct Inner {
    upstream: Arc<dyn Storage>,
    chunks: Arc<ChunkStore>,
    info: Mutex<Info>,
    workers: usize,
    read_retries: u32,
    writes: bool,
    limiter: Option<Limiter>,
}

/// The `cache` layer.
#[derive(Debug)]
pub struct Cache {
    inner: Arc<Inner>,
}

/// Refuses `key` unless it holds one of `allowed`.
fn only(config: &Config, key: &str, allowed: &[&str], why: &str) -> Result<()> {
    let value = text(config, key);
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(StorageError::invalid_config(format!(
        "{key} cannot be set: {why}"
    )))
}

fn conflict(path: &str, what: &str) -> StorageError {
    let shown = if path.is_empty() { "/" } else { path };
    StorageError::new(ErrorKind::Conflict, format!("{shown}: {what}"))
}

impl Cache {
    /// Builds the layer from its validated config; the cache lives in
    /// `<ctx.state_dir>/cache`.
    pub async fn build(config: &Config, ctx: &LayerContext<'_>) -> Result<Cache> {
        const PLEX: [&str; 5] = [
            "plex_url",
            "plex_username",
            "plex_password",
            "plex_token",
            "plex_insecure",
        ];
        if let Some(key) = PLEX.iter().find(|k| !text(config, k).is_empty()) {
            return Err(StorageError::invalid_config(format!(
                "Plex integration is not supported ({key} is set)"
            )));
        }
        let own = "the cache lives in the backend's own state directory";
        only(config, "chunk_path", &["", DEFAULT_CACHE_PATH], own)?;
        only(config, "db_path", &["", DEFAULT_CACHE_PATH], own)?;
        only(
            config,
            "tmp_upload_path",
            &[""],
            "uploads go straight to the upstream (tmp_upload_path is not supported)",
        )?;
        if int(config, "tmp_wait_time")? != 15 {
            return Err(StorageError::invalid_config(
                "tmp_wait_time cannot be set: it only applies to tmp_upload_path, which is not supported",
            ));
        }
        if int(config, "db_wait_time")? != 1 {
            return Err(StorageError::invalid_config(
                "db_wait_time cannot be set: the cache keeps no database file to wait for",
            ));
        }
        let chunk_size = size(config, "chunk_size")?;
        if chunk_size == 0 {
            return Err(StorageError::invalid_config(
                "Invalid chunk_size: must be larger than 0",
            ));
        }
        let workers = usize::try_from(int(config, "workers")?)
            .ok()
            .filter(|&w| w > 0)
            .ok_or_else(|| StorageError::invalid_config("Invalid workers: must be at least 1"))?;
        let read_retries = u32::try_from(int(config, "read_retries")?).map_err(|_| {
            StorageError::invalid_config("Invalid read_retries: must not be negative")
        })?;
        let seconds = |key: &str| -> Result<Duration> {
            u64::try_from(int(config, key)?)
                .map(Duration::from_secs)
                .map_err(|_| {
                    StorageError::invalid_config(format!("Invalid {key}: must not be negative"))
                })
        };
        let info_age = seconds("info_age")?;
        let clean_every = seconds("chunk_clean_interval")?;
        let capacity = size(config, "chunk_total_size")?;
        let upstream = open_remote(config, ctx).await?;
        let chunks = ChunkStore::open(
            ctx.state_dir.join("cache"),
            chunk_size,
            capacity,
            clean_every,
            flag(config, "db_purge"),
        )
        .await?;
        Ok(Cache {
            inner: Arc::new(Inner {
                upstream,
                chunks,
                info: Mutex::new(Info::new(info_age)),
                workers,
                read_retries,
                writes: flag(config, "writes"),
                limiter: Limiter::new(int(config, "rps")?),
            }),
        })
    }

    /// Bytes of cached pieces on disk.
    pub fn cached_bytes(&self) -> u64 {
        self.inner.chunks.total()
    }
}

impl Inner {
    fn info(&self) -> MutexGuard<'_, Info> {
        // Every critical section leaves the maps consistent.
        self.info
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for the `rps` limit.
    async fn limit(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.wait().await;
        }
    }

    /// Stat through the info cache.
    async fn stat(&self, path: &str) -> Result<Entry> {
        if let Some(entry) = self.info().stat(path) {
            return Ok(entry);
        }
        self.limit().await;
        let entry = self.upstream.stat(path).await?;
        self.info().put_stat(path, entry.clone());
        Ok(entry)
    }

    /// Drops everything cached about `path` and below it.
    async fn invalidate(&self, path: &str) {
        self.info().invalidate(path);
        self.chunks.drop_tree(path).await;
    }

    /// The piece `want` names: from disk, from another read's fetch, or
    /// fetched now.
    async fn piece(&self, want: Wanted<'_>) -> Result<Bytes> {
        let Wanted { path, n, .. } = want;
        let mut waits = 0;
        loop {
            if let Some(file) = self.chunks.lookup(path, want.identity, n, want.asked) {
                match tokio::fs::read(&file).await {
                    Ok(data) if data.len() as u64 == want.len => return Ok(Bytes::from(data)),
                    _ => self.chunks.forget(path, n).await,
                }
            }
            let guard = match self.chunks.claim(path, n) {
                Claim::Fetch(guard) => Some(guard),
                Claim::Wait(_) if waits >= self.read_retries => None,
                Claim::Wait(mut done) => {
                    waits += 1;
                    let _ = tokio::time::timeout(PIECE_WAIT, done.wait_for(|d| *d)).await;
                    continue;
                }
            };
            let data = self.fetch(want).await?;
            if let Some(guard) = guard {
                guard.finished();
            }
            return Ok(data);
        }
    }

    /// Fetches the piece `want` names from the upstream and stores it.
    async fn fetch(&self, want: Wanted<'_>) -> Result<Bytes> {
        let Wanted { path, n, len, .. } = want;
        self.limit().await;
        let offset = n * self.chunks.chunk_size();
        let data = collect(self.upstream.read(path, Some((offset, len))).await?).await?;
        if data.len() as u64 != len {
            // The file changed since it was stat'ed: forget what we know.
            self.invalidate(path).await;
            return Err(StorageError::new(
                ErrorKind::Transient,
                format!("{path}: changed while being read"),
            ));
        }
        if let Err(e) = self
            .chunks
            .insert(path, want.identity, n, &data, want.asked)
            .await
        {
            tracing::warn!(path, piece = n, error = %e, "caching a piece failed");
        }
        Ok(Bytes::from(data))
    }
}

/// One piece a read wants: piece `n` (of `len` bytes) of `path` at
/// `identity`, asked for at `asked`.
#[derive(Clone, Copy)]
struct Wanted<'a> {
    path: &'a str,
    identity: Identity,
    n: u64,
    len: u64,
    asked: UseStamp,
}

/// Pieces of a body being written through the cache (`writes`), kept in
/// temp files until the upload succeeds.
struct Tee {
    chunks: Arc<ChunkStore>,
    pieces: Vec<(u64, PathBuf)>,
    current: Option<(tokio::fs::File, u64)>,
    bytes: u64,
    failed: bool,
}

impl Tee {
    async fn feed(&mut self, mut data: &[u8]) {
        let size = self.chunks.chunk_size();
        while !data.is_empty() && !self.failed {
            if self.current.is_none() {
                let temp = self.chunks.temp_path();
                match tokio::fs::File::create(&temp).await {
                    Ok(file) => {
                        self.pieces.push((self.bytes / size, temp));
                        self.current = Some((file, 0));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "caching written data failed");
                        self.failed = true;
                        return;
                    }
                }
            }
            let (file, filled) = self.current.as_mut().expect("opened above");
            let take = (size - *filled).min(data.len() as u64) as usize;
            if let Err(e) = file.write_all(&data[..take]).await {
                tracing::warn!(error = %e, "caching written data failed");
                self.failed = true;
                return;
            }
            *filled += take as u64;
            self.bytes += take as u64;
            data = &data[take..];
            if *filled == size {
                self.close().await;
            }
        }
    }

    async fn close(&mut self) {
        if let Some((mut file, _)) = self.current.take() {
            if file.flush().await.is_err() {
                self.failed = true;
            }
        }
    }

    async fn discard(&mut self) {
        self.current = None;
        for (_, temp) in self.pieces.drain(..) {
            let _ = tokio::fs::remove_file(temp).await;
        }
    }
}

#[async_trait]
impl Storage for Cache {
    fn capability(&self) -> Capability {
        Capability {
            ranged_read: true,
            ..self.inner.upstream.capability()
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        let path = normalize_path(path)?;
        self.inner.stat(&path).await
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        let dir = normalize_path(dir)?;
        if let Some(page) = self.inner.info().page(&dir, &cursor, limit) {
            return Ok(page);
        }
        let page = self
            .inner
            .upstream
            .list(&dir, cursor.clone(), limit)
            .await?;
        self.inner.info().put_page(&dir, cursor, limit, &page);
        Ok(page)
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        let path = normalize_path(path)?;
        let entry = self.inner.stat(&path).await?;
        if entry.kind == EntryKind::Dir {
            return Err(conflict(&path, "is a directory"));
        }
        let identity = Identity::of(&entry);
        self.inner.chunks.check(&path, identity).await;
        let size = entry.size;
        let (start, end) = match range {
            Some((offset, len)) => {
                let start = offset.min(size);
                (start, start.saturating_add(len).min(size))
            }
            None => (0, size),
        };
        if start >= end {
            return Ok(futures::stream::empty().boxed());
        }
        let piece = self.inner.chunks.chunk_size();
        let inner = self.inner.clone();
        let stream = futures::stream::iter(start / piece..=(end - 1) / piece)
            .map(move |n| {
                let (inner, path) = (inner.clone(), path.clone());
                // Stamped in the order of the read, before any fetch starts.
                let asked = UseStamp::now();
                async move {
                    let from = n * piece;
                    let len = (size - from).min(piece);
                    let want = Wanted {
                        path: &path,
                        identity,
                        n,
                        len,
                        asked,
                    };
                    let data = inner.piece(want).await?;
                    let lo = start.max(from) - from;
                    let hi = end.min(from + len) - from;
                    Ok(data.slice(lo as usize..hi as usize))
                }
            })
            .buffered(self.inner.workers);
        Ok(stream.boxed())
    }

    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
        let path = normalize_path(path)?;
        self.inner.limit().await;
        if !self.inner.writes {
            let written = self.inner.upstream.write(&path, body).await;
            self.inner.invalidate(&path).await;
            return written;
        }
        let tee = Arc::new(tokio::sync::Mutex::new(Tee {
            chunks: self.inner.chunks.clone(),
            pieces: Vec::new(),
            current: None,
            bytes: 0,
            failed: false,
        }));
        let feed = tee.clone();
        let body = body
            .then(move |item| {
                let feed = feed.clone();
                async move {
                    if let Ok(bytes) = &item {
                        feed.lock().await.feed(bytes).await;
                    }
                    item
                }
            })
            .boxed();
        let written = self.inner.upstream.write(&path, body).await;
        self.inner.invalidate(&path).await;
        let mut tee = tee.lock().await;
        tee.close().await;
        let entry = match written {
            Ok(entry) => entry,
            Err(e) => {
                tee.discard().await;
                return Err(e);
            }
        };
        // The pieces belong to the version the upstream reports now.
        let now = match self.inner.stat(&path).await {
            Ok(now) if !tee.failed && now.size == tee.bytes && now.kind == EntryKind::File => now,
            _ => {
                tee.discard().await;
                return Ok(entry);
            }
        };
        let identity = Identity::of(&now);
        let chunks = &self.inner.chunks;
        for (n, temp) in std::mem::take(&mut tee.pieces) {
            if let Err(e) = chunks
                .adopt(&path, identity, n, &temp, UseStamp::now())
                .await
            {
                tracing::warn!(path, piece = n, error = %e, "caching written data failed");
            }
        }
        Ok(entry)
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        self.inner.limit().await;
        let deleted = self.inner.upstream.delete(&path).await;
        self.inner.invalidate(&path).await;
        deleted
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (normalize_path(from)?, normalize_path(to)?);
        self.inner.limit().await;
        let copied = self.inner.upstream.copy(&from, &to).await;
        self.inner.invalidate(&to).await;
        copied
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (normalize_path(from)?, normalize_path(to)?);
        self.inner.limit().await;
        let renamed = self.inner.upstream.rename(&from, &to).await;
        self.inner.invalidate(&from).await;
        self.inner.invalidate(&to).await;
        renamed
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        self.inner.limit().await;
        let made = self.inner.upstream.mkdir(&path).await;
        self.inner.invalidate(&path).await;
        made
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        self.inner.limit().await;
        let removed = self.inner.upstream.rmdir(&path).await;
        self.inner.invalidate(&path).await;
        removed
    }

    async fn usage(&self) -> Result<Usage> {
        self.inner.upstream.usage().await
    }

    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        let path = normalize_path(path)?;
        let before = self.inner.stat(&path).await.ok();
        self.inner.limit().await;
        let set = self.inner.upstream.set_modified(&path, time).await;
        self.inner.info().invalidate(&path);
        set?;
        // Same content, new time: keep the pieces under the new version.
        match (before, self.inner.stat(&path).await) {
            (Some(old), Ok(new)) if old.kind == EntryKind::File => {
                self.inner
                    .chunks
                    .reidentify(&path, Identity::of(&old), Identity::of(&new))
                    .await;
            }
            _ => self.inner.chunks.drop_tree(&path).await,
        }
        Ok(())
    }

    async fn probe(&self) -> Result<()> {
        self.inner.upstream.probe().await
    }
}
