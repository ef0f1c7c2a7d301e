//! A storage whose driver can be replaced while others hold it: what a
//! backend hands to the wrappers referencing it, so that a credential
//! rotation reaches them without rebuilding them.

use crate::{
    ByteStream, Capability, Entry, ErrorKind, ListPage, Result, Storage, StorageError, Usage,
};
use async_trait::async_trait;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// A replaceable storage; calls fail with `Transient` while it holds none.
#[derive(Debug)]
pub struct Swappable {
    name: String,
    current: RwLock<Option<Arc<dyn Storage>>>,
}

impl Swappable {
    /// An empty handle for the backend called `name` (used in errors).
    pub fn new(name: impl Into<String>) -> Arc<Self> {
        Arc::new(Swappable {
            name: name.into(),
            current: RwLock::new(None),
        })
    }

    /// Installs a driver, or removes it with `None`.
    pub fn set(&self, storage: Option<Arc<dyn Storage>>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = storage;
    }

    /// The driver in use.
    pub fn current(&self) -> Result<Arc<dyn Storage>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| {
                StorageError::new(
                    ErrorKind::Transient,
                    format!("backend '{}' is not connected", self.name),
                )
            })
    }
}

#[async_trait]
impl Storage for Swappable {
    fn capability(&self) -> Capability {
        self.current().map(|s| s.capability()).unwrap_or_default()
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.current()?.stat(path).await
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        self.current()?.list(dir, cursor, limit).await
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        self.current()?.read(path, range).await
    }

    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
        self.current()?.write(path, body).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.current()?.delete(path).await
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.current()?.copy(from, to).await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.current()?.rename(from, to).await
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        self.current()?.mkdir(path).await
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        self.current()?.rmdir(path).await
    }

    async fn usage(&self) -> Result<Usage> {
        self.current()?.usage().await
    }

    async fn hashes(&self, path: &str) -> Result<Vec<(String, String)>> {
        self.current()?.hashes(path).await
    }

    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        self.current()?.set_modified(path, time).await
    }

    async fn probe(&self) -> Result<()> {
        self.current()?.probe().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::MemoryStorage;

    #[tokio::test]
    async fn follows_the_installed_driver() {
        let handle = Swappable::new("m");
        let err = handle.probe().await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient);
        assert!(err.message.contains("'m' is not connected"));
        let first: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        first.write("a", crate::once("1")).await.unwrap();
        handle.set(Some(first));
        assert!(handle.stat("a").await.is_ok());
        handle.set(Some(Arc::new(MemoryStorage::new())));
        assert_eq!(
            handle.stat("a").await.unwrap_err().kind,
            ErrorKind::NotFound
        );
    }
}
