//! chunker, hasher and cache (being written).

use berth_storage::catalog::Config;
use berth_storage::{Resolve, Result, Storage, StorageError};
use std::path::Path;
use std::sync::Arc;

/// What a layer needs besides its config.
pub struct LayerContext<'a> {
    /// The id of the backend being built.
    pub backend_id: &'a str,
    /// Opens the `remote` the layer wraps.
    pub resolve: &'a dyn Resolve,
    /// A directory of this backend's own for on-disk state.
    pub state_dir: &'a Path,
}

/// Builds the layer `slug` over the storage its `remote` references.
pub async fn build(
    slug: &str,
    _config: &Config,
    _ctx: &LayerContext<'_>,
) -> Result<Arc<dyn Storage>> {
    Err(StorageError::unsupported(format!(
        "provider '{slug}' has no storage engine yet"
    )))
}
