//! memory and local.

use crate::support::{engine, Backends};
use berth_storage::testkit::Fixture;
use serde_json::json;

async fn memory() -> Option<Fixture> {
    Some(engine("memory", json!({}), &Backends::default()).await)
}

async fn local() -> Option<Fixture> {
    Some(engine("local", json!({}), &Backends::default()).await)
}

berth_storage::behaviour_suite! {
    memory => super::memory,
    local => super::local,
}
