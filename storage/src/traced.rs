//! A tracing layer over any [`Storage`]: one span per storage call, named
//! `storage.<op>`, carrying the backend id and the path (never a secret).

use crate::{ByteStream, Capability, Entry, ListPage, Result, Storage, Usage};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::SystemTime;
use tracing::{info_span, Instrument};

/// Wraps a storage so each call gets its own span.
#[derive(Debug, Clone)]
pub struct Traced {
    inner: Arc<dyn Storage>,
    backend: String,
}

impl Traced {
    /// Wraps `inner`, labelling spans with `backend`.
    pub fn new(inner: Arc<dyn Storage>, backend: impl Into<String>) -> Self {
        Self {
            inner,
            backend: backend.into(),
        }
    }
}

macro_rules! traced {
    ($self:ident, $op:literal, $path:expr, $call:expr) => {{
        let span = info_span!(concat!("storage.", $op), backend = %$self.backend, path = %$path);
        let result = $call.instrument(span.clone()).await;
        if let Err(err) = &result {
            span.in_scope(|| tracing::debug!(kind = ?err.kind, error = %err, "storage call failed"));
        }
        result
    }};
}

#[async_trait]
impl Storage for Traced {
    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        traced!(self, "stat", path, self.inner.stat(path))
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        traced!(self, "list", dir, self.inner.list(dir, cursor, limit))
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        traced!(self, "read", path, self.inner.read(path, range))
    }

    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
        traced!(self, "write", path, self.inner.write(path, body))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        traced!(self, "delete", path, self.inner.delete(path))
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        traced!(self, "copy", from, self.inner.copy(from, to))
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        traced!(self, "rename", from, self.inner.rename(from, to))
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        traced!(self, "mkdir", path, self.inner.mkdir(path))
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        traced!(self, "rmdir", path, self.inner.rmdir(path))
    }

    async fn usage(&self) -> Result<Usage> {
        traced!(self, "usage", "", self.inner.usage())
    }

    async fn hashes(&self, path: &str) -> Result<Vec<(String, String)>> {
        traced!(self, "hashes", path, self.inner.hashes(path))
    }

    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        traced!(
            self,
            "set_modified",
            path,
            self.inner.set_modified(path, time)
        )
    }

    async fn probe(&self) -> Result<()> {
        traced!(self, "probe", "", self.inner.probe())
    }
}
