//! chunker, hasher and cache, each over a named in-memory backend `m`.
//!
//! Built through the engine factory like every other engine: the cache in
//! the fixture's temp state directory, the hasher with an in-memory hash store.

use crate::support::{engine, Backends};
use berth_storage::drivers::MemoryStorage;
use berth_storage::testkit::Fixture;
use berth_storage::Storage;
use serde_json::{json, Value};
use std::sync::Arc;

/// One empty in-memory backend named `m`.
fn backends() -> Backends {
    let mut backends = Backends::default();
    backends.0.insert(
        "m".into(),
        Arc::new(MemoryStorage::new()) as Arc<dyn Storage>,
    );
    backends
}

/// Default chunker settings.
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

/// Builds a hasher over `m:` (the factory gives it an in-memory hash store).
async fn hasher_with(body: Value) -> Fixture {
    engine("hasher", body, &backends()).await
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

/// Small pieces, a cap the 10 MiB file overflows (so eviction runs while
/// it is read), cleanups after every new piece.
async fn cache() -> Option<Fixture> {
    let config = json!({
        "remote": "m:",
        "chunk_size": "64K",
        "chunk_total_size": "4M",
        "chunk_clean_interval": 0,
    });
    Some(engine("cache", config, &backends()).await)
}

/// Written data cached too; no stat/listing cache; parallel fetches.
async fn cache_with_writes() -> Option<Fixture> {
    let config = json!({
        "remote": "m:",
        "chunk_size": "100K",
        "writes": true,
        "info_age": 0,
        "workers": 8,
    });
    Some(engine("cache", config, &backends()).await)
}

berth_storage::behaviour_suite! {
    chunker => super::chunker,
    chunker_small_chunks => super::chunker_small_chunks,
    chunker_norename => super::chunker_norename,
    chunker_no_meta => super::chunker_no_meta,
    hasher => super::hasher,
    hasher_keep_nothing => super::hasher_keep_nothing,
    cache => super::cache,
    cache_with_writes => super::cache_with_writes,
}
