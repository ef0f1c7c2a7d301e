//! alias, union and combine (being written).

use berth_storage::catalog::Config;
use berth_storage::{Resolve, Result, Storage, StorageError};
use std::sync::Arc;

/// Builds the wrapper `slug` over the storage its config references.
pub async fn build(
    slug: &str,
    _config: &Config,
    _resolve: &dyn Resolve,
) -> Result<Arc<dyn Storage>> {
    Err(StorageError::unsupported(format!(
        "provider '{slug}' has no storage engine yet"
    )))
}
