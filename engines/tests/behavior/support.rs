//! Shared fixture plumbing: building engines from JSON configs, a lookup of
//! named in-memory backends for wrappers, and emulator endpoints.
#![allow(dead_code)] // each engine family uses a part

use berth_engines::{build, BackendDefinition, BackendLookup, BuildContext, EngineEnv};
use berth_storage::catalog::{catalog, Config};
use berth_storage::drivers::DriverEnv;
use berth_storage::testkit::Fixture;
use berth_storage::{Result, Storage, StorageError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Named backends that wrapper configs may reference: stores built in the
/// test, defined as native `memory` backends, so wrappers over them stay
/// native.
#[derive(Default, Clone)]
pub struct Backends(pub HashMap<String, Arc<dyn Storage>>);

impl BackendLookup for Backends {
    fn lookup(&self, name_or_id: &str) -> Result<Arc<dyn Storage>> {
        self.0
            .get(name_or_id)
            .cloned()
            .ok_or_else(|| StorageError::not_found(&format!("backend '{name_or_id}'")))
    }

    fn definition(&self, name_or_id: &str) -> Result<BackendDefinition> {
        self.lookup(name_or_id)?;
        Ok(BackendDefinition {
            id: name_or_id.to_string(),
            slug: "memory".into(),
            config: Config::new(),
        })
    }
}

/// Validates `body` for `slug` with the catalog (as the API does) and builds
/// the engine; the temp dir (local roots and state) lives in the fixture.
pub async fn engine(slug: &str, body: Value, backends: &Backends) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let local = dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let env = EngineEnv {
        drivers: DriverEnv {
            local_roots: vec![local.canonicalize().unwrap()],
            host_credentials: false,
        },
        state_dir: dir.path().join("state"),
        hashes: Arc::new(berth_layers::MemoryHashStore::new()),
        rclone: Err("rclone is not used here".into()),
    };
    let config: Config = catalog()
        .get(slug)
        .unwrap_or_else(|| panic!("{slug} is not in the catalog"))
        .validate_create(&body)
        .unwrap_or_else(|e| panic!("{slug} config: {e}"));
    let ctx = BuildContext {
        backend_id: "0123456789abcdef",
        env: &env,
        backends,
    };
    let storage = build(slug, &config, &ctx)
        .await
        .unwrap_or_else(|e| panic!("build {slug}: {e}"));
    Fixture::new(storage, Some(Box::new(dir)))
}

/// The endpoint of an emulator from `var`; `None` (skip) when unset, unless
/// `BERTH_REQUIRE_EMULATORS=1`.
pub fn emulator(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var("BERTH_REQUIRE_EMULATORS").as_deref() == Ok("1") => {
            panic!("BERTH_REQUIRE_EMULATORS=1 but {var} is not set")
        }
        _ => {
            eprintln!("SKIPPED: {var} is not set (scripts/test.sh starts the emulators)");
            None
        }
    }
}

/// A name unique within this test process (for buckets and containers).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
