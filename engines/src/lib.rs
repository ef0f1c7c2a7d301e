//! The engine factory: turns a provider slug and its validated config into a
//! [`Storage`]. Native drivers serve `memory`, `local`, `s3`, `azureblob` and
//! `google-cloud-storage`; wrapper backends are built over the storage their
//! `remote`/`upstreams` reference. Every other provider, any backend
//! created with `"engine": "rclone"`, and every wrapper that references a
//! backend rclone serves (directly or through nested wrappers), is served by
//! rclone ([`rclone`]).

mod host;
mod rclone;
mod upstreams;

pub use rclone::{remote_name, RcloneMountSource};
pub use upstreams::references;

use async_trait::async_trait;
use berth_storage::catalog::{catalog, Config, Provider};
use berth_storage::drivers::{DriverEnv, LocalStorage, MemoryStorage};
use berth_storage::remote::Remote;
use berth_storage::{Resolve, Result, Storage, StorageError, SubPath};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What engines need from the service's configuration.
#[derive(Clone)]
pub struct EngineEnv {
    /// Driver settings (local roots).
    pub drivers: DriverEnv,
    /// Where wrapper backends keep on-disk state (the cache backend's chunks),
    /// one sub-directory per backend id.
    pub state_dir: PathBuf,
    /// Where `hasher` backends keep their hashes (the service's database).
    pub hashes: Arc<dyn berth_layers::HashStore>,
    /// The rclone that serves providers without a native engine, or why
    /// there is none.
    pub rclone: std::result::Result<Arc<berth_rclone::Rclone>, String>,
}

/// What defines a backend: enough to build it again, which a wrapper served
/// by rclone does for every backend it references (one rclone child defines
/// them all). The config holds secrets: this type has no `Debug`.
#[derive(Clone)]
pub struct BackendDefinition {
    /// Backend id (its rclone remote's name derives from it).
    pub id: String,
    /// Provider slug.
    pub slug: String,
    /// Validated config, as stored.
    pub config: Config,
}

/// Finds another backend of the caller's org by name or id.
pub trait BackendLookup: Send + Sync {
    /// The live storage of that backend; `NotFound` naming it otherwise.
    fn lookup(&self, name_or_id: &str) -> Result<Arc<dyn Storage>>;
    /// The current definition of that backend; `NotFound` naming it
    /// otherwise.
    fn definition(&self, name_or_id: &str) -> Result<BackendDefinition>;
}

/// Everything a build needs besides the config.
pub struct BuildContext<'a> {
    /// The id of the backend being built (wrappers keep state under it).
    pub backend_id: &'a str,
    /// Service settings.
    pub env: &'a EngineEnv,
    /// Other backends of the same org.
    pub backends: &'a dyn BackendLookup,
}

/// Opens `remote` references for wrapper backends.
struct Opener<'a> {
    env: &'a EngineEnv,
    backends: &'a dyn BackendLookup,
}

#[async_trait]
impl Resolve for Opener<'_> {
    async fn open(&self, remote: &Remote) -> Result<Arc<dyn Storage>> {
        match remote {
            Remote::Backend { backend, path } => {
                SubPath::wrap(self.backends.lookup(backend)?, path)
            }
            Remote::Local(dir) => Ok(Arc::new(open_local(dir, &self.env.drivers).await?)),
        }
    }
}

/// A local directory a wrapper names, confined to the allowed local roots
/// like a `local` backend's root.
async fn open_local(dir: &Path, drivers: &DriverEnv) -> Result<LocalStorage> {
    let mut config = Config::new();
    config.insert("root".into(), dir.display().to_string().into());
    LocalStorage::from_config(&config, drivers).await
}

fn provider(slug: &str) -> Result<&'static Provider> {
    catalog()
        .get(slug)
        .ok_or_else(|| StorageError::unsupported(format!("unknown provider '{slug}'")))
}

/// Whether rclone serves the backend (so its mounts run `rclone mount`): it
/// asked for rclone or has no native engine, or it is a wrapper and some
/// backend it references, directly or through nested wrappers, is served by
/// rclone. `backends` finds the referenced ones; a wrapper referencing a
/// backend that does not exist stays native (and its build says so).
pub fn served_by_rclone(slug: &str, config: &Config, backends: &dyn BackendLookup) -> bool {
    let chose_rclone =
        |slug: &str, config: &Config| provider(slug).is_ok_and(|p| rclone::serves(p, config));
    chose_rclone(slug, config)
        || upstreams::referenced(slug, config, backends)
            .is_ok_and(|all| all.iter().any(|d| chose_rclone(&d.slug, &d.config)))
}

/// What `rclone mount` needs for a backend that rclone serves
/// ([`served_by_rclone`]).
pub async fn rclone_mount_source(
    slug: &str,
    config: &Config,
    ctx: &BuildContext<'_>,
) -> Result<RcloneMountSource> {
    host::check(slug, config, &ctx.env.drivers)?;
    rclone::mount_source(provider(slug)?, config, ctx).await
}

/// Builds the engine for `slug` from its validated config, once the config
/// is known to take nothing from berth's host that it may not.
pub async fn build(
    slug: &str,
    config: &Config,
    ctx: &BuildContext<'_>,
) -> Result<Arc<dyn Storage>> {
    let provider = provider(slug)?;
    host::check(slug, config, &ctx.env.drivers)?;
    if served_by_rclone(slug, config, ctx.backends) {
        return rclone::build(provider, config, ctx).await;
    }
    let opener = Opener {
        env: ctx.env,
        backends: ctx.backends,
    };
    match slug {
        "memory" => Ok(Arc::new(MemoryStorage::new())),
        "local" => Ok(Arc::new(
            LocalStorage::from_config(config, &ctx.env.drivers).await?,
        )),
        "s3" => berth_s3::build(config).await,
        "azureblob" => berth_azure::build(config).await,
        "google-cloud-storage" => berth_gcs::build(config).await,
        "alias" | "union" | "combine" => berth_compose::build(slug, config, &opener).await,
        "chunker" | "hasher" | "cache" => {
            let state_dir = ctx.env.state_dir.join(ctx.backend_id);
            let layer = berth_layers::LayerContext {
                backend_id: ctx.backend_id,
                resolve: &opener,
                state_dir: &state_dir,
                hashes: ctx.env.hashes.clone(),
            };
            berth_layers::build(slug, config, &layer).await
        }
        other => Err(StorageError::unsupported(format!(
            "provider '{other}' has no native engine; use engine rclone"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The providers `build` serves natively (its match arms).
    const NATIVE: [&str; 11] = [
        "memory",
        "local",
        "s3",
        "azureblob",
        "google-cloud-storage",
        "alias",
        "union",
        "combine",
        "chunker",
        "hasher",
        "cache",
    ];

    #[test]
    fn the_catalog_defaults_to_native_exactly_where_there_is_an_engine() {
        for provider in catalog().providers() {
            let native = provider
                .field("engine")
                .is_some_and(|f| f.default == json!("native"));
            assert_eq!(
                native,
                NATIVE.contains(&provider.slug.as_str()),
                "{}",
                provider.slug
            );
        }
    }

    #[test]
    fn rclone_remote_names_are_safe_and_stable() {
        assert_eq!(remote_name("4179d7ddce2841c9"), "b_4179d7ddce2841c9");
        assert_eq!(remote_name("A-b"), "b_a_b");
    }
}
