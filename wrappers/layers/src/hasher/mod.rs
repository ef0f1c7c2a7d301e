//! `hasher`: content hashes for the files of another backend, computed while
//! data streams through and kept in a [`HashStore`] (the service's database,
//! table `hashes`) keyed by (backend id, path) together with the file's size
//! and modification time. A record counts only while that size and time
//! still match the file (and it is younger than `max_age`), so changes made
//! behind the hasher's back are noticed as long as the store reports them.
//!
//! Hashes are served by [`Hasher::hashes`]. The data path is the upstream's:
//! listings, stats and reads are passed through.
//!
//! # Options
//!
//! | option | decision |
//! |---|---|
//! | `remote` | the upstream. |
//! | `hashes` | honoured for md5, sha1, sha256, sha512 and crc32 (rclone's names and hex formats). Any other type rclone knows (whirlpool, blake3, xxh3, xxh128, dropbox, hidrive, mailru, quickxor) is refused at build: `InvalidConfig` "Unsupported hash type: X". An empty list is refused too. |
//! | `max_age` | honoured: `0` keeps nothing (the store is never touched; [`Hasher::hashes`] can still compute hashes of small files on demand, see `auto_size`); `-1`/`"off"` keeps records forever; `N` seconds ignores records older than that. |
//! | `auto_size` | honoured: when [`Hasher::hashes`] finds no valid record of a file smaller than this (rclone's rule), it reads the file, hashes it and (unless `max_age` is 0) stores the result. `0` disables this. |
//! | `description` | metadata only. |
//!
//! # When hashes are recorded (while records are kept)
//!
//! - `write`: the body is hashed as it streams to the upstream; after the
//!   upstream accepted every byte, the file is stat'ed and the hashes stored
//!   for that size and time. The old record is dropped before the write.
//! - `read` of a whole file with no valid record: the bytes are hashed as
//!   they stream to the caller and stored when the stream ends complete.
//! - `copy`: a valid record of the source is copied to the target.
//! - `rename` moves the records of a file or of a whole directory; `delete`
//!   drops the record; `set_modified` re-keys a valid record to the new time.
//!
//! Failures of the store never fail a data operation: they are logged and
//! the record is simply missing.

mod store;

pub use store::{DbHashStore, HashStore, MemoryHashStore, StoredHashes};

use crate::digest::{HashType, MultiHasher};
use crate::options::{int, size, text};
use crate::{open_remote, LayerContext};
use async_trait::async_trait;
use berth_storage::catalog::Config;
use berth_storage::{
    normalize_path, ByteStream, Capability, Entry, EntryKind, ErrorKind, ListPage, Result, Storage,
    StorageError, Usage,
};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// How long records stay valid (`max_age`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// `0`: nothing is stored.
    Never,
    /// `N` seconds, in milliseconds.
    ForMs(i64),
    /// `-1` / `"off"`.
    Forever,
}

/// Milliseconds since the Unix epoch (negative before it).
fn millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Reads and writes records for one hasher backend.
#[derive(Debug, Clone)]
struct Records {
    store: Arc<dyn HashStore>,
    backend_id: Arc<str>,
    keep: Keep,
}

impl Records {
    /// The record of `path` if it is valid for `entry`; store errors count as
    /// no record.
    async fn valid(&self, path: &str, entry: &Entry) -> Option<StoredHashes> {
        if self.keep == Keep::Never || entry.kind != EntryKind::File {
            return None;
        }
        let record = match self.store.get(&self.backend_id, path).await {
            Ok(record) => record?,
            Err(e) => {
                tracing::warn!(path, error = %e, "reading stored hashes failed");
                return None;
            }
        };
        let young = match self.keep {
            Keep::Forever => true,
            Keep::ForMs(ms) => millis(SystemTime::now()) - record.updated_at_ms <= ms,
            Keep::Never => false,
        };
        let same = record.size == entry.size && record.mtime_ms == entry.modified.map(millis);
        (young && same).then_some(record)
    }

    /// Stores `hashes` as the record of `path` at the version `entry`.
    async fn store(&self, path: &str, entry: &Entry, hashes: BTreeMap<String, String>) {
        if self.keep == Keep::Never {
            return;
        }
        let record = StoredHashes {
            size: entry.size,
            mtime_ms: entry.modified.map(millis),
            hashes,
            updated_at_ms: millis(SystemTime::now()),
        };
        if let Err(e) = self.store.put(&self.backend_id, path, &record).await {
            tracing::warn!(path, error = %e, "storing hashes failed");
        }
    }

    /// Drops the record of `path`.
    async fn forget(&self, path: &str) {
        if self.keep == Keep::Never {
            return;
        }
        if let Err(e) = self.store.remove(&self.backend_id, path).await {
            tracing::warn!(path, error = %e, "dropping stored hashes failed");
        }
    }
}

/// Hashes as stored: name to hex value.
fn named(hashes: Vec<(HashType, String)>) -> BTreeMap<String, String> {
    hashes
        .into_iter()
        .map(|(t, v)| (t.name().to_string(), v))
        .collect()
}

/// Parses `hashes`: known, supported types, deduplicated, in the given order.
fn parse_types(list: &str) -> Result<Vec<HashType>> {
    let mut types = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = HashType::parse(name).ok_or_else(|| {
            StorageError::invalid_config(format!("Unsupported hash type: {}", name.to_lowercase()))
        })?;
        if !types.contains(&kind) {
            types.push(kind);
        }
    }
    if types.is_empty() {
        return Err(StorageError::invalid_config(
            "hashes must name at least one hash type",
        ));
    }
    Ok(types)
}

/// The `hasher` layer.
#[derive(Debug)]
pub struct Hasher {
    upstream: Arc<dyn Storage>,
    records: Records,
    types: Vec<HashType>,
    auto_size: u64,
}

impl Hasher {
    /// Builds the layer from its validated config, keeping records in `store`.
    pub async fn build(
        config: &Config,
        ctx: &LayerContext<'_>,
        store: Arc<dyn HashStore>,
    ) -> Result<Hasher> {
        let types = parse_types(text(config, "hashes"))?;
        let keep = match int(config, "max_age")? {
            0 => Keep::Never,
            n if n < 0 => Keep::Forever,
            n => Keep::ForMs(n.saturating_mul(1000)),
        };
        let auto_size = size(config, "auto_size")?;
        let upstream = open_remote(config, ctx).await?;
        Ok(Hasher {
            upstream,
            records: Records {
                store,
                backend_id: Arc::from(ctx.backend_id),
                keep,
            },
            types,
            auto_size,
        })
    }

    /// The configured hashes of the file `path` that are known, as
    /// `(name, lowercase hex)` in the configured order. A type is missing
    /// when no valid record holds it and the file is not smaller than
    /// `auto_size` (then the file is read and hashed now). `Conflict` for a
    /// directory, `NotFound` for a missing path.
    pub async fn hashes(&self, path: &str) -> Result<Vec<(String, String)>> {
        let path = normalize_path(path)?;
        let entry = self.upstream.stat(&path).await?;
        if entry.kind == EntryKind::Dir {
            return Err(StorageError::new(
                ErrorKind::Conflict,
                format!("{path}: is a directory"),
            ));
        }
        let record = self.records.valid(&path, &entry).await;
        let known: Vec<(String, String)> = self
            .types
            .iter()
            .filter_map(|t| {
                let value = record.as_ref()?.hashes.get(t.name())?;
                Some((t.name().to_string(), value.clone()))
            })
            .collect();
        if known.len() == self.types.len() || entry.size >= self.auto_size {
            return Ok(known);
        }
        let mut hasher = MultiHasher::new(&self.types);
        let mut body = self.upstream.read(&path, None).await?;
        while let Some(chunk) = body.next().await {
            hasher.update(&chunk?);
        }
        let complete = hasher.bytes() == entry.size;
        let computed = named(hasher.finish());
        if complete {
            self.records.store(&path, &entry, computed.clone()).await;
        }
        Ok(self
            .types
            .iter()
            .map(|t| (t.name().to_string(), computed[t.name()].clone()))
            .collect())
    }

    /// Whether a valid record of `path` holds every configured type.
    async fn complete_record(&self, path: &str, entry: &Entry) -> bool {
        self.records
            .valid(path, entry)
            .await
            .is_some_and(|r| self.types.iter().all(|t| r.hashes.contains_key(t.name())))
    }
}

/// A read stream that hashes what passes and stores the result at its end.
struct HashingRead {
    inner: ByteStream,
    hasher: Option<MultiHasher>,
    records: Records,
    path: String,
    entry: Entry,
}

impl HashingRead {
    fn into_stream(self) -> ByteStream {
        futures::stream::unfold(self, |mut st| async move {
            match st.inner.next().await {
                Some(Ok(bytes)) => {
                    if let Some(h) = &mut st.hasher {
                        h.update(&bytes);
                    }
                    Some((Ok(bytes), st))
                }
                Some(Err(e)) => {
                    st.hasher = None;
                    Some((Err(e), st))
                }
                None => {
                    if let Some(h) = st.hasher.take() {
                        if h.bytes() == st.entry.size {
                            st.records
                                .store(&st.path, &st.entry, named(h.finish()))
                                .await;
                        }
                    }
                    None
                }
            }
        })
        .boxed()
    }
}

#[async_trait]
impl Storage for Hasher {
    /// Served from the hash store (see the inherent [`Hasher::hashes`]).
    async fn hashes(&self, path: &str) -> Result<Vec<(String, String)>> {
        Hasher::hashes(self, path).await
    }

    fn capability(&self) -> Capability {
        self.upstream.capability()
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.upstream.stat(path).await
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        self.upstream.list(dir, cursor, limit).await
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        if range.is_some() || self.records.keep == Keep::Never {
            return self.upstream.read(path, range).await;
        }
        let path = normalize_path(path)?;
        let entry = match self.upstream.stat(&path).await {
            Ok(entry) if entry.kind == EntryKind::File => entry,
            // Let the upstream answer (and word) the error.
            _ => return self.upstream.read(&path, None).await,
        };
        let inner = self.upstream.read(&path, None).await?;
        if self.complete_record(&path, &entry).await {
            return Ok(inner);
        }
        Ok(HashingRead {
            inner,
            hasher: Some(MultiHasher::new(&self.types)),
            records: self.records.clone(),
            path,
            entry,
        }
        .into_stream())
    }

    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
        if self.records.keep == Keep::Never {
            return self.upstream.write(path, body).await;
        }
        let path = normalize_path(path)?;
        self.records.forget(&path).await;
        let hasher = Arc::new(Mutex::new(MultiHasher::new(&self.types)));
        let feed = hasher.clone();
        let body = body
            .map(move |item| {
                if let (Ok(bytes), Ok(mut h)) = (&item, feed.lock()) {
                    h.update(bytes);
                }
                item
            })
            .boxed();
        let written = self.upstream.write(&path, body).await?;
        let hashed = hasher.lock().map(|h| h.clone()).ok();
        if let Some(h) = hashed.filter(|h| h.bytes() == written.size) {
            match self.upstream.stat(&path).await {
                Ok(now) if now.kind == EntryKind::File && now.size == written.size => {
                    self.records.store(&path, &now, named(h.finish())).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(path, error = %e, "stat after write failed; hashes not kept")
                }
            }
        }
        Ok(written)
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        self.upstream.delete(&path).await?;
        self.records.forget(&path).await;
        Ok(())
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (normalize_path(from)?, normalize_path(to)?);
        self.upstream.copy(&from, &to).await?;
        if self.records.keep == Keep::Never {
            return Ok(());
        }
        let source = match self.upstream.stat(&from).await {
            Ok(entry) => self.records.valid(&from, &entry).await,
            Err(_) => None,
        };
        match (source, self.upstream.stat(&to).await) {
            (Some(record), Ok(target)) if target.size == record.size => {
                self.records.store(&to, &target, record.hashes).await;
            }
            _ => self.records.forget(&to).await,
        }
        Ok(())
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (normalize_path(from)?, normalize_path(to)?);
        self.upstream.rename(&from, &to).await?;
        if self.records.keep != Keep::Never {
            if let Err(e) = self
                .records
                .store
                .rename(&self.records.backend_id, &from, &to)
                .await
            {
                tracing::warn!(from, to, error = %e, "moving stored hashes failed");
            }
        }
        Ok(())
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        self.upstream.mkdir(path).await
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        self.upstream.rmdir(path).await
    }

    async fn usage(&self) -> Result<Usage> {
        self.upstream.usage().await
    }

    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        if self.records.keep == Keep::Never {
            return self.upstream.set_modified(path, time).await;
        }
        let path = normalize_path(path)?;
        let before = match self.upstream.stat(&path).await {
            Ok(entry) => self.records.valid(&path, &entry).await,
            Err(_) => None,
        };
        self.upstream.set_modified(&path, time).await?;
        match (before, self.upstream.stat(&path).await) {
            (Some(record), Ok(now)) if now.size == record.size => {
                self.records.store(&path, &now, record.hashes).await;
            }
            (Some(_), _) => self.records.forget(&path).await,
            (None, _) => {}
        }
        Ok(())
    }

    async fn probe(&self) -> Result<()> {
        self.upstream.probe().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_lists() {
        assert_eq!(
            parse_types("md5, SHA1,md5,crc32").unwrap(),
            vec![HashType::Md5, HashType::Sha1, HashType::Crc32]
        );
        let e = parse_types("md5,blake3").unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::InvalidConfig, "Unsupported hash type: blake3")
        );
        assert_eq!(
            parse_types(" , ").unwrap_err().kind,
            ErrorKind::InvalidConfig
        );
    }
}
