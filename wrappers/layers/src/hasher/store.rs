//! Where a hasher keeps its hashes: the [`HashStore`] trait, the database
//! adapter [`DbHashStore`] and the in-memory [`MemoryHashStore`].

use async_trait::async_trait;
use berth_db::{Db, DbError, HashRow};
use berth_storage::{ErrorKind, Result, StorageError};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;

/// The hashes of one file and the version of the file they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHashes {
    /// File size when the hashes were computed.
    pub size: u64,
    /// File modification time then (Unix milliseconds), if the store keeps one.
    pub mtime_ms: Option<i64>,
    /// Hash name (`md5`, `sha1`, ...) to lowercase hex value.
    pub hashes: BTreeMap<String, String>,
    /// When the hashes were stored (Unix milliseconds).
    pub updated_at_ms: i64,
}

/// Persistence of hasher hashes, keyed by (backend id, path). Implementations
/// store and return records; freshness (size, mtime, age) is the hasher's
/// business.
#[async_trait]
pub trait HashStore: Send + Sync + fmt::Debug {
    /// The record of `path`, if any.
    async fn get(&self, backend_id: &str, path: &str) -> Result<Option<StoredHashes>>;
    /// Stores the record of `path`, replacing any previous one.
    async fn put(&self, backend_id: &str, path: &str, hashes: &StoredHashes) -> Result<()>;
    /// Forgets the record of the file `path` (no error when there is none).
    async fn remove(&self, backend_id: &str, path: &str) -> Result<()>;
    /// Moves the records of `from` and of everything below `from/` to `to`,
    /// replacing those at `to` and below.
    async fn rename(&self, backend_id: &str, from: &str, to: &str) -> Result<()>;
}

/// A [`HashStore`] in process memory (for tests, or when nothing should
/// outlive the process).
#[derive(Debug, Default)]
pub struct MemoryHashStore {
    records: Mutex<HashMap<(String, String), StoredHashes>>,
}

impl MemoryHashStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn records(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<(String, String), StoredHashes>>> {
        self.records
            .lock()
            .map_err(|_| StorageError::new(ErrorKind::Other, "hash store lock poisoned"))
    }
}

/// Whether `path` is `root` or lies below it.
fn in_subtree(path: &str, root: &str) -> bool {
    path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[async_trait]
impl HashStore for MemoryHashStore {
    async fn get(&self, backend_id: &str, path: &str) -> Result<Option<StoredHashes>> {
        Ok(self
            .records()?
            .get(&(backend_id.to_string(), path.to_string()))
            .cloned())
    }

    async fn put(&self, backend_id: &str, path: &str, hashes: &StoredHashes) -> Result<()> {
        self.records()?
            .insert((backend_id.to_string(), path.to_string()), hashes.clone());
        Ok(())
    }

    async fn remove(&self, backend_id: &str, path: &str) -> Result<()> {
        self.records()?
            .remove(&(backend_id.to_string(), path.to_string()));
        Ok(())
    }

    async fn rename(&self, backend_id: &str, from: &str, to: &str) -> Result<()> {
        if from == to {
            return Ok(());
        }
        let mut records = self.records()?;
        records.retain(|(b, p), _| b != backend_id || !in_subtree(p, to));
        let moved: Vec<(String, String)> = records
            .keys()
            .filter(|(b, p)| b == backend_id && in_subtree(p, from))
            .cloned()
            .collect();
        for key in moved {
            let record = records
                .remove(&key)
                .expect("key listed under the same lock");
            let path = format!("{to}{}", &key.1[from.len()..]);
            records.insert((key.0, path), record);
        }
        Ok(())
    }
}

/// The [`HashStore`] of the service: the `hashes` table of berth's database.
/// Calls run on tokio's blocking pool.
#[derive(Debug, Clone)]
pub struct DbHashStore {
    db: Db,
}

impl DbHashStore {
    /// A store over `db`.
    pub fn new(db: Db) -> Self {
        DbHashStore { db }
    }

    async fn run<T, F>(&self, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> std::result::Result<T, DbError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || call(&db))
            .await
            .map_err(|e| StorageError::new(ErrorKind::Other, format!("hash database task: {e}")))?
            .map_err(|e| StorageError::new(ErrorKind::Other, format!("hash database: {e}")))
    }
}

#[async_trait]
impl HashStore for DbHashStore {
    async fn get(&self, backend_id: &str, path: &str) -> Result<Option<StoredHashes>> {
        let (b, p) = (backend_id.to_string(), path.to_string());
        let Some(row) = self.run(move |db| db.get_hashes(&b, &p)).await? else {
            return Ok(None);
        };
        // A row that does not decode is treated as absent (it is only a cache).
        let Ok(hashes) = serde_json::from_str::<BTreeMap<String, String>>(&row.hashes_json) else {
            tracing::warn!(backend = backend_id, path, "undecodable hashes row ignored");
            return Ok(None);
        };
        Ok(Some(StoredHashes {
            size: u64::try_from(row.size).unwrap_or(0),
            mtime_ms: row.mtime_ms,
            hashes,
            updated_at_ms: row.updated_at_ms,
        }))
    }

    async fn put(&self, backend_id: &str, path: &str, hashes: &StoredHashes) -> Result<()> {
        let row = HashRow {
            backend_id: backend_id.to_string(),
            path: path.to_string(),
            size: i64::try_from(hashes.size).unwrap_or(i64::MAX),
            mtime_ms: hashes.mtime_ms,
            hashes_json: serde_json::to_string(&hashes.hashes)
                .map_err(|e| StorageError::new(ErrorKind::Other, e.to_string()))?,
            updated_at_ms: hashes.updated_at_ms,
        };
        self.run(move |db| db.put_hashes(&row)).await
    }

    async fn remove(&self, backend_id: &str, path: &str) -> Result<()> {
        let (b, p) = (backend_id.to_string(), path.to_string());
        self.run(move |db| db.delete_hashes(&b, &p))
            .await
            .map(|_| ())
    }

    async fn rename(&self, backend_id: &str, from: &str, to: &str) -> Result<()> {
        let (b, f, t) = (backend_id.to_string(), from.to_string(), to.to_string());
        self.run(move |db| db.rename_hashes(&b, &f, &t))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(size: u64) -> StoredHashes {
        StoredHashes {
            size,
            mtime_ms: Some(7),
            hashes: BTreeMap::from([("md5".to_string(), format!("{size:032x}"))]),
            updated_at_ms: 1,
        }
    }

    /// The same checks for both stores.
    async fn behaves(store: &dyn HashStore) {
        assert_eq!(store.get("b", "a").await.unwrap(), None);
        store.put("b", "a", &record(1)).await.unwrap();
        store.put("b", "d/x", &record(2)).await.unwrap();
        store.put("b", "d/y/z", &record(3)).await.unwrap();
        store.put("b", "d-x", &record(4)).await.unwrap();
        store.put("b", "e/old", &record(5)).await.unwrap();
        store.put("c", "d/x", &record(6)).await.unwrap();
        assert_eq!(store.get("b", "a").await.unwrap(), Some(record(1)));
        store.rename("b", "d", "e").await.unwrap();
        assert_eq!(store.get("b", "e/x").await.unwrap(), Some(record(2)));
        assert_eq!(store.get("b", "e/y/z").await.unwrap(), Some(record(3)));
        assert_eq!(store.get("b", "e/old").await.unwrap(), None);
        assert_eq!(store.get("b", "d/x").await.unwrap(), None);
        assert_eq!(store.get("b", "d-x").await.unwrap(), Some(record(4)));
        assert_eq!(store.get("c", "d/x").await.unwrap(), Some(record(6)));
        store.rename("b", "a", "f").await.unwrap();
        assert_eq!(store.get("b", "f").await.unwrap(), Some(record(1)));
        store.remove("b", "f").await.unwrap();
        store.remove("b", "f").await.unwrap();
        assert_eq!(store.get("b", "f").await.unwrap(), None);
    }

    #[tokio::test]
    async fn memory_store() {
        behaves(&MemoryHashStore::new()).await;
    }

    #[tokio::test]
    async fn db_store() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&dir.path().join("b.db").display().to_string()).unwrap();
        behaves(&DbHashStore::new(db)).await;
    }
}
