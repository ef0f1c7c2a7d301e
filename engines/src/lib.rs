//! The engine factory: turns a provider slug and its validated config into a
//! [`Storage`]. Native drivers serve `memory`, `local`, `s3`, `azureblob` and
//! `google-cloud-storage`; wrapper backends are built over the storage their
//! `remote`/`upstreams` reference. Every other provider, and any backend
//! created with `"engine": "rclone"`, is served by rclone ([`rclone`]).

mod host;
mod rclone;

pub use rclone::RcloneMountSource;

use async_trait::async_trait;
use berth_storage::catalog::{catalog, Config, Provider};
use berth_storage::drivers::{DriverEnv, LocalStorage, MemoryStorage};
use berth_storage::remote::{parse_combine_upstreams, parse_union_upstreams, Remote};
use berth_storage::{Resolve, Result, Storage, StorageError, SubPath};
use std::path::PathBuf;
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

/// Finds another backend of the caller's org by name or id.
pub trait BackendLookup: Send + Sync {
    /// The live storage of that backend; `NotFound` naming it otherwise.
    fn lookup(&self, name_or_id: &str) -> Result<Arc<dyn Storage>>;
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
            Remote::Local(dir) => {
                let mut config = Config::new();
                config.insert("root".into(), dir.display().to_string().into());
                Ok(Arc::new(
                    LocalStorage::from_config(&config, &self.env.drivers).await?,
                ))
            }
        }
    }
}

fn provider(slug: &str) -> Result<&'static Provider> {
    catalog()
        .get(slug)
        .ok_or_else(|| StorageError::unsupported(format!("unknown provider '{slug}'")))
}

/// Whether rclone serves the backend (so its mounts run `rclone mount`).
pub fn served_by_rclone(slug: &str, config: &Config) -> bool {
    provider(slug).is_ok_and(|provider| rclone::serves(provider, config))
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
    if rclone::serves(provider, config) {
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

fn text<'a>(config: &'a Config, key: &str) -> &'a str {
    config.get(key).and_then(|v| v.as_str()).unwrap_or_default()
}

/// The backends (names or ids) a wrapper's config references; empty for
/// everything else. Used by the registry to refuse deleting a referenced
/// backend and to refuse cycles.
pub fn references(slug: &str, config: &Config) -> Vec<String> {
    let remotes: Vec<Remote> = match slug {
        "alias" | "chunker" | "hasher" | "cache" => {
            Remote::parse(text(config, "remote")).into_iter().collect()
        }
        "union" => parse_union_upstreams("upstreams", text(config, "upstreams"))
            .map(|ups| ups.into_iter().map(|u| u.remote).collect())
            .unwrap_or_default(),
        "combine" => parse_combine_upstreams("upstreams", text(config, "upstreams"))
            .map(|ups| ups.into_iter().map(|u| u.remote).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut names: Vec<String> = remotes
        .iter()
        .filter_map(|r| r.backend().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
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
        assert_eq!(
            rclone::remote_name("4179d7ddce2841c9"),
            "b_4179d7ddce2841c9"
        );
        assert_eq!(rclone::remote_name("A-b"), "b_a_b");
    }

    fn config(value: serde_json::Value) -> Config {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn references_of_wrappers() {
        assert_eq!(
            references("alias", &config(json!({"remote": "s3-prod:backups"}))),
            vec!["s3-prod"]
        );
        assert!(references("alias", &config(json!({"remote": "/srv/data"}))).is_empty());
        assert_eq!(
            references("union", &config(json!({"upstreams": "b:x a:y:ro b:z"}))),
            vec!["a", "b"]
        );
        assert_eq!(
            references("combine", &config(json!({"upstreams": "p=g:photos v=h:"}))),
            vec!["g", "h"]
        );
        assert!(references("s3", &config(json!({"remote": "x:y"}))).is_empty());
    }
}
