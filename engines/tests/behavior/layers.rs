//! chunker, hasher and cache, each over a named in-memory backend `m`.
//!
//! chunker and cache are built through the engine factory like every other
//! engine. The hasher needs a hash store that the factory does not pass yet,
//! so its fixture builds through `berth_layers::build_with_hashes` with an
//! in-memory store (config still validated by the catalog).

use crate::support::{engine, Backends};
use async_trait::async_trait;
use berth_engines::BackendLookup;
use berth_layers::{LayerContext, MemoryHashStore};
use berth_storage::catalog::catalog;
use berth_storage::drivers::MemoryStorage;
use berth_storage::remote::Remote;
use berth_storage::testkit::Fixture;
use berth_storage::{Resolve, Result, Storage, StorageError, SubPath};
use serde_json::{json, Value};
use std::sync::Arc;

/// One empty in-memory backend named `m`.
fn backends() -> Backends {
    let mut backends = Backends::default();
    backends
        .0
        .insert("m".into(), Arc::new(MemoryStorage::new()) as Arc<dyn Storage>);
    backends
}

/// Opens `name:path` remotes from [`Backends`].
struct Opener(Backends);

#[async_trait]
impl Resolve for Opener {
    async fn open(&self, remote: &Remote) -> Result<Arc<dyn Storage>> {
        match remote {
            Remote::Backend { backend, path } => SubPath::wrap(self.0.lookup(backend)?, path),
            Remote::Local(dir) => Err(StorageError::unsupported(format!(
                "no local remotes in these tests: {}",
                dir.display()
            ))),
        }
    }
}

async fn chunker() -> Option<Fixture> {
    Some(engine("chunker", json!({"remote": "m:"}), &backends()).await)
}

/// Small chunks (the 10 MiB file spans 161 of them), a custom name format
/// numbered from 0, and metadata with SHA-1 for every file.
async fn chunker_small_chunks() -> Option<Fixture> {
    let config = json!({
        "remote": "m:",
        "chunk_size": "64K",
        "name_format": "*.part##",
        "start_from": 0,
        "hash_type": "sha1all",
    });
    Some(engine("chunker", config, &backends()).await)
}

/// Chunks keep their transaction names; metadata version 2.
async fn chunker_norename() -> Option<Fixture> {
    let config = json!({"remote": "m:", "chunk_size": "100K", "transactions": "norename"});
    Some(engine("chunker", config, &backends()).await)
}

/// No metadata objects: every file is its chunks.
async fn chunker_no_meta() -> Option<Fixture> {
    let config = json!({
        "remote": "m:",
        "chunk_size": "100K",
        "meta_format": "none",
        "hash_type": "none",
    });
    Some(engine("chunker", config, &backends()).await)
}

/// Builds a hasher over `m:` with an in-memory hash store.
async fn hasher_with(body: Value) -> Fixture {
    let config = catalog()
        .get("hasher")
        .expect("hasher in the catalog")
        .validate_create(&body)
        .unwrap_or_else(|e| panic!("hasher config: {e}"));
    let dir = tempfile::tempdir().expect("temp dir");
    let opener = Opener(backends());
    let ctx = LayerContext {
        backend_id: "0123456789abcdef",
        resolve: &opener,
        state_dir: dir.path(),
    };
    let storage = berth_layers::build_with_hashes(
        "hasher",
        &config,
        &ctx,
        Arc::new(MemoryHashStore::new()),
    )
    .await
    .unwrap_or_else(|e| panic!("build hasher: {e}"));
    Fixture::new(storage, Some(Box::new(dir)))
}

/// Records kept forever; files under 1 MiB hashed on demand.
async fn hasher() -> Option<Fixture> {
    Some(
        hasher_with(json!({
            "remote": "m:",
            "hashes": "md5,sha1,sha256,sha512,crc32",
            "max_age": "off",
            "auto_size": "1M",
        }))
        .await,
    )
}

/// The default: nothing kept.
async fn hasher_keep_nothing() -> Option<Fixture> {
    Some(hasher_with(json!({"remote": "m:"})).await)
}

berth_storage::behaviour_suite! {
    chunker => super::chunker,
    chunker_small_chunks => super::chunker_small_chunks,
    chunker_norename => super::chunker_norename,
    chunker_no_meta => super::chunker_no_meta,
    hasher => super::hasher,
    hasher_keep_nothing => super::hasher_keep_nothing,
}
