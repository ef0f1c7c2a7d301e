//! One constructor per driver under test. Each call gives a fresh, empty
//! instance, with whatever must outlive it (a temp dir, a server handle) kept
//! in the fixture.

use berth_storage::drivers::{build, DriverEnv};
use berth_storage::Storage;
use serde_json::{Map, Value};
use std::any::Any;
use std::sync::Arc;

/// A storage under test and what keeps it alive.
pub struct Fixture {
    pub storage: Arc<dyn Storage>,
    _keep: Option<Box<dyn Any + Send>>,
}

/// The `memory` driver, built through the factory.
pub async fn memory() -> Option<Fixture> {
    let storage = build("memory", &Map::new(), &DriverEnv::default())
        .await
        .expect("memory driver");
    Some(Fixture {
        storage,
        _keep: None,
    })
}

/// The `local` driver on a fresh temp dir that is also the only allowed root.
pub async fn local() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = DriverEnv {
        local_roots: vec![dir.path().to_path_buf()],
    };
    let mut config = Map::new();
    config.insert("root".into(), Value::String(String::new()));
    let storage = build("local", &config, &env).await.expect("local driver");
    Some(Fixture {
        storage,
        _keep: Some(Box::new(dir)),
    })
}
