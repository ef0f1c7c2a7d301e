//! Shared test plumbing: configs validated by the catalog, an opener over
//! named storages, and a storage wrapper that counts calls.
#![allow(dead_code)] // each test binary uses a part

use async_trait::async_trait;
use berth_layers::LayerContext;
use berth_storage::catalog::{catalog, Config};
use berth_storage::remote::Remote;
use berth_storage::{
    collect, once, ByteStream, Capability, Entry, ListPage, Resolve, Result, Storage, StorageError,
    SubPath, Usage,
};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// `body` validated for `slug` as the API does.
pub fn config(slug: &str, body: Value) -> Config {
    catalog()
        .get(slug)
        .unwrap_or_else(|| panic!("{slug} not in the catalog"))
        .validate_create(&body)
        .unwrap_or_else(|e| panic!("{slug} config: {e}"))
}

/// Opens `name:path` remotes from a map of storages.
pub struct Opener(pub HashMap<String, Arc<dyn Storage>>);

impl Opener {
    /// `m` is `storage`.
    pub fn with(storage: Arc<dyn Storage>) -> Opener {
        Opener(HashMap::from([("m".to_string(), storage)]))
    }
}

#[async_trait]
impl Resolve for Opener {
    async fn open(&self, remote: &Remote) -> Result<Arc<dyn Storage>> {
        match remote {
            Remote::Backend { backend, path } => {
                let storage = self
                    .0
                    .get(backend)
                    .cloned()
                    .ok_or_else(|| StorageError::not_found(&format!("backend '{backend}'")))?;
                SubPath::wrap(storage, path)
            }
            Remote::Local(dir) => Err(StorageError::unsupported(dir.display().to_string())),
        }
    }
}

/// A context for backend `id` with `opener` and `state`.
pub fn ctx<'a>(opener: &'a Opener, state: &'a Path) -> LayerContext<'a> {
    LayerContext {
        backend_id: "00000000000000aa",
        resolve: opener,
        state_dir: state,
        hashes: Arc::new(berth_layers::MemoryHashStore::new()),
    }
}

/// Counts the calls that reach a storage; can hide atomic renames and slow
/// reads down.
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn Storage>,
    pub reads: AtomicUsize,
    pub stats: AtomicUsize,
    pub lists: AtomicUsize,
    pub writes: AtomicUsize,
    atomic_rename: bool,
    read_delay: Duration,
}

impl Counting {
    /// Counts calls to `inner`.
    pub fn new(inner: Arc<dyn Storage>) -> Counting {
        let atomic_rename = inner.capability().atomic_rename;
        Counting {
            inner,
            reads: AtomicUsize::new(0),
            stats: AtomicUsize::new(0),
            lists: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
            atomic_rename,
            read_delay: Duration::ZERO,
        }
    }

    /// Reports renames as not atomic (like an object store).
    pub fn without_atomic_rename(mut self) -> Counting {
        self.atomic_rename = false;
        self
    }

    /// Delays every read by `delay`.
    pub fn with_read_delay(mut self, delay: Duration) -> Counting {
        self.read_delay = delay;
        self
    }

    /// Sets every counter to zero.
    pub fn reset(&self) {
        for c in [&self.reads, &self.stats, &self.lists, &self.writes] {
            c.store(0, Ordering::SeqCst);
        }
    }

    pub fn count(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Storage for Counting {
    fn capability(&self) -> Capability {
        Capability {
            atomic_rename: self.atomic_rename,
            ..self.inner.capability()
        }
    }
    async fn stat(&self, path: &str) -> Result<Entry> {
        self.stats.fetch_add(1, Ordering::SeqCst);
        self.inner.stat(path).await
    }
    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list(dir, cursor, limit).await
    }
    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.read_delay).await;
        self.inner.read(path, range).await
    }
    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.write(path, body).await
    }
    async fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(path).await
    }
    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.inner.copy(from, to).await
    }
    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.inner.rename(from, to).await
    }
    async fn mkdir(&self, path: &str) -> Result<()> {
        self.inner.mkdir(path).await
    }
    async fn rmdir(&self, path: &str) -> Result<()> {
        self.inner.rmdir(path).await
    }
    async fn usage(&self) -> Result<Usage> {
        self.inner.usage().await
    }
    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        self.inner.set_modified(path, time).await
    }
}

/// Writes `data` to `path`.
pub async fn put(st: &dyn Storage, path: &str, data: &[u8]) -> Entry {
    st.write(path, once(data.to_vec()))
        .await
        .unwrap_or_else(|e| panic!("write {path}: {e}"))
}

/// Reads `path` (or a range of it).
pub async fn get(st: &dyn Storage, path: &str, range: Option<(u64, u64)>) -> Vec<u8> {
    let body = st
        .read(path, range)
        .await
        .unwrap_or_else(|e| panic!("read {path}: {e}"));
    collect(body)
        .await
        .unwrap_or_else(|e| panic!("read body {path}: {e}"))
}

/// Names in `dir`, all pages.
pub async fn names(st: &dyn Storage, dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = st
            .list(dir, cursor, 0)
            .await
            .unwrap_or_else(|e| panic!("list {dir}: {e}"));
        out.extend(page.entries.iter().map(|e| e.name().to_string()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// Deterministic test bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    berth_storage::testkit::pattern(len)
}

/// A body of `data` in `piece`-sized parts.
pub fn chunked(data: &[u8], piece: usize) -> ByteStream {
    berth_storage::testkit::chunked(data, piece)
}
