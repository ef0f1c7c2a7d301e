//! Native driver for `google-cloud-storage` (being written).

use berth_storage::catalog::Config;
use berth_storage::{Result, Storage, StorageError};
use std::sync::Arc;

/// Builds the driver from a validated config.
pub async fn build(_config: &Config) -> Result<Arc<dyn Storage>> {
    Err(StorageError::unsupported(
        "provider 'google-cloud-storage' has no storage engine yet",
    ))
}
