//! A view of a directory inside another storage, as if it were the root:
//! the `path` part of a `name:path` reference.

use crate::{
    join_path, normalize_path, ByteStream, Capability, Entry, ListPage, Result, Storage, Usage,
};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::SystemTime;

/// `inner` seen from `prefix` down.
#[derive(Debug, Clone)]
pub struct SubPath {
    inner: Arc<dyn Storage>,
    prefix: String,
}

impl SubPath {
    /// The view of `prefix` inside `inner`; an empty prefix returns `inner` itself.
    pub fn wrap(inner: Arc<dyn Storage>, prefix: &str) -> Result<Arc<dyn Storage>> {
        let prefix = normalize_path(prefix)?;
        if prefix.is_empty() {
            return Ok(inner);
        }
        Ok(Arc::new(SubPath { inner, prefix }))
    }

    fn outer(&self, path: &str) -> Result<String> {
        Ok(join_path(&self.prefix, &normalize_path(path)?))
    }

    fn strip(&self, mut entry: Entry) -> Entry {
        entry.path = entry
            .path
            .strip_prefix(&self.prefix)
            .map(|rest| rest.trim_start_matches('/').to_string())
            .unwrap_or(entry.path);
        entry
    }
}

#[async_trait]
impl Storage for SubPath {
    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        Ok(self.strip(self.inner.stat(&self.outer(path)?).await?))
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        let page = self.inner.list(&self.outer(dir)?, cursor, limit).await?;
        Ok(ListPage {
            entries: page.entries.into_iter().map(|e| self.strip(e)).collect(),
            next: page.next,
        })
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        self.inner.read(&self.outer(path)?, range).await
    }

    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
        Ok(self.strip(self.inner.write(&self.outer(path)?, body).await?))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(&self.outer(path)?).await
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.inner.copy(&self.outer(from)?, &self.outer(to)?).await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.inner
            .rename(&self.outer(from)?, &self.outer(to)?)
            .await
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        self.inner.mkdir(&self.outer(path)?).await
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        if normalize_path(path)?.is_empty() {
            return Err(crate::StorageError::new(
                crate::ErrorKind::Permission,
                "cannot remove the root",
            ));
        }
        self.inner.rmdir(&self.outer(path)?).await
    }

    async fn usage(&self) -> Result<Usage> {
        self.inner.usage().await
    }

    async fn hashes(&self, path: &str) -> Result<Vec<(String, String)>> {
        self.inner.hashes(&self.outer(path)?).await
    }

    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        self.inner.set_modified(&self.outer(path)?, time).await
    }

    /// Lists the prefix (which checks the credentials too); a prefix that
    /// does not exist yet is created, as writing under it would, and listed
    /// again so a store that cannot create it answers the error. The
    /// upstream's own probe is not called: it may need more rights than the
    /// prefix (listing every bucket, for one).
    async fn probe(&self) -> Result<()> {
        match self.inner.list(&self.prefix, None, 1).await {
            Err(err) if err.kind == crate::ErrorKind::NotFound => {
                self.inner.mkdir(&self.prefix).await?;
                self.inner.list(&self.prefix, None, 1).await.map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }
}
