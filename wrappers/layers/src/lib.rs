//! Wrapper backends layered over one upstream backend, behind the
//! [`Storage`] trait:
//!
//! - [`chunker`]: splits large files into chunks (rclone's `chunker` layout,
//!   `simplejson` metadata objects, transactions with or without renames);
//! - [`hasher`]: computes content hashes while data streams through and keeps
//!   them in a [`HashStore`] (the service's database);
//! - [`cache`]: a chunk cache on local disk with cached listings and stats.
//!
//! The upstream is the storage the layer's `remote` names, opened through the
//! [`Resolve`] of the [`LayerContext`] (already rooted at the remote's path).
//! Each module's doc lists what happens to every option of its provider:
//! honoured, or refused at build time with `InvalidConfig`/`Unsupported`
//! naming the option. None is accepted and ignored.

pub mod cache;
pub mod chunker;
mod digest;
pub mod hasher;
mod options;

pub use cache::Cache;
pub use chunker::Chunker;
pub use hasher::{DbHashStore, HashStore, Hasher, MemoryHashStore, StoredHashes};

use berth_storage::catalog::Config;
use berth_storage::remote::Remote;
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
    /// Where `hasher` keeps its hashes (the service passes a [`DbHashStore`]).
    pub hashes: Arc<dyn HashStore>,
}

/// Builds the layer `slug` over the storage its `remote` references.
pub async fn build(
    slug: &str,
    config: &Config,
    ctx: &LayerContext<'_>,
) -> Result<Arc<dyn Storage>> {
    match slug {
        "chunker" => Ok(Arc::new(Chunker::build(config, ctx).await?)),
        "cache" => Ok(Arc::new(Cache::build(config, ctx).await?)),
        "hasher" => Ok(Arc::new(
            Hasher::build(config, ctx, ctx.hashes.clone()).await?,
        )),
        other => Err(StorageError::unsupported(format!(
            "provider '{other}' is not a layered wrapper"
        ))),
    }
}

/// Opens the upstream named by the config's `remote`.
pub(crate) async fn open_remote(
    config: &Config,
    ctx: &LayerContext<'_>,
) -> Result<Arc<dyn Storage>> {
    let remote =
        Remote::parse(options::text(config, "remote")).map_err(StorageError::invalid_config)?;
    ctx.resolve.open(&remote).await
}
