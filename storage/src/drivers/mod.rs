//! Native storage drivers and the factory that builds one from a provider's
//! validated configuration.
//!
//! Every driver implements [`Storage`]; the behaviour suite in
//! `storage/tests/behavior/` runs against each of them.

pub mod local;
pub mod memory;

pub use local::LocalStorage;
pub use memory::MemoryStorage;

use crate::{Storage, StorageError};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// What drivers need from the service's configuration.
#[derive(Debug, Clone, Default)]
pub struct DriverEnv {
    /// Directories a `local` backend may expose (`BERTH_LOCAL_ROOTS`); a
    /// backend's `root` must resolve inside one of them.
    pub local_roots: Vec<PathBuf>,
}

/// Builds the native driver for a provider slug from its validated config
/// (a map holding every field of the provider, defaults filled in: booleans
/// are JSON bools, integers JSON numbers, everything else strings).
///
/// Providers without a native driver get an `Unsupported` error; invalid
/// configuration gets `InvalidConfig` with a message naming the field.
pub async fn build(
    slug: &str,
    config: &Map<String, Value>,
    env: &DriverEnv,
) -> Result<Arc<dyn Storage>, StorageError> {
    match slug {
        "memory" => Ok(Arc::new(MemoryStorage::new())),
        "local" => Ok(Arc::new(LocalStorage::from_config(config, env).await?)),
        other => Err(StorageError::unsupported(format!(
            "provider '{other}' has no storage engine yet"
        ))),
    }
}
