//! `alias`: the storage its `remote` names, already rooted at the remote's
//! path. Every call passes through unchanged; the probe names the remote.

use crate::{context, label, text};
use async_trait::async_trait;
use berth_storage::catalog::Config;
use berth_storage::remote::Remote;
use berth_storage::{
    ByteStream, Capability, Entry, ListPage, Resolve, Result, Storage, StorageError, Usage,
};
use std::sync::Arc;
use std::time::SystemTime;

/// Another backend (or local directory) under a new name.
#[derive(Debug)]
pub struct Alias {
    inner: Arc<dyn Storage>,
    remote: String,
}

/// Opens the alias's `remote`; `NotFound` naming it when it does not exist.
pub async fn build(config: &Config, resolve: &dyn Resolve) -> Result<Arc<dyn Storage>> {
    let spec = text(config, "remote");
    let remote = Remote::parse(spec)
        .map_err(|e| StorageError::invalid_config(format!("remote '{spec}': {e}")))?;
    let shown = label(&remote);
    let inner = resolve
        .open(&remote)
        .await
        .map_err(|e| context(&format!("alias remote '{shown}'"), e))?;
    Ok(Arc::new(Alias {
        inner,
        remote: shown,
    }))
}

#[async_trait]
impl Storage for Alias {
    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.inner.stat(path).await
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        self.inner.list(dir, cursor, limit).await
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        self.inner.read(path, range).await
    }

    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
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

    /// Probes the aliased remote; a failure names it.
    async fn probe(&self) -> Result<()> {
        self.inner
            .probe()
            .await
            .map_err(|e| context(&format!("alias of '{}'", self.remote), e))
    }
}
