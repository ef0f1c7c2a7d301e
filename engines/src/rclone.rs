//! Backends served by rclone: every provider without a native engine, and
//! those created with `"engine": "rclone"`. The catalog turns the validated
//! config into rclone's options ([`Provider::rclone_options`]); the backend
//! becomes one rclone remote, defined in each rclone child's environment
//! only, under a name derived from the backend id, and served through
//! [`RcloneStorage`].

use crate::BuildContext;
use berth_rclone::{Rclone, RcloneStorage, RemoteDef, Remotes};
use berth_storage::catalog::{Config, Provider};
use berth_storage::drivers::LocalStorage;
use berth_storage::{Result, Storage, StorageError};
use std::sync::Arc;

/// Whether rclone serves the backend: it asked for rclone, or its provider
/// defaults to it (configs stored before the `engine` field existed have
/// none). Providers rclone cannot serve either go here too, to say why.
pub(crate) fn serves(provider: &Provider, config: &Config) -> bool {
    let chosen = config
        .get("engine")
        .and_then(|v| v.as_str())
        .or_else(|| provider.field("engine")?.default.as_str());
    chosen == Some("rclone") || provider.rclone_unavailable().is_some()
}

/// The rclone remote name of a backend: stable for its life, so rclone's
/// VFS cache of a mount finds its pending uploads again after a restart.
pub(crate) fn remote_name(backend_id: &str) -> String {
    let safe: String = backend_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("b_{safe}")
}

/// The backend's remote definition and the path inside it that is the
/// backend's root.
struct RcloneSource {
    /// The remote and (for wrappers, later) its upstreams.
    remotes: Remotes,
    /// Path inside the main remote the backend exposes (`""` for the whole).
    root: String,
    /// Secret values to cut out of rclone's messages.
    scrub: Vec<String>,
}

/// What `rclone mount` needs to mount a backend rclone serves.
pub struct RcloneMountSource {
    /// The rclone binary.
    pub rclone: Arc<Rclone>,
    /// The backend's remote (and its upstreams).
    pub remotes: Remotes,
    /// Path inside the main remote that is the backend's root.
    pub root: String,
}

/// Describes `provider`'s backend as an rclone remote, refusing what rclone
/// cannot serve for berth with a clear reason.
async fn source(
    provider: &Provider,
    config: &Config,
    ctx: &BuildContext<'_>,
) -> Result<RcloneSource> {
    let slug = provider.slug.as_str();
    if let Some(why) = provider.rclone_unavailable() {
        return Err(StorageError::unsupported(format!(
            "provider '{slug}' cannot be served: {why}"
        )));
    }
    let Some(rclone_type) = provider.rclone_type() else {
        return Err(StorageError::unsupported(format!(
            "provider '{slug}' has no rclone backend"
        )));
    };
    let root = match slug {
        // rclone's memory remote lives inside one rclone process, and berth
        // runs one per operation: nothing written would stay.
        "memory" => {
            return Err(StorageError::unsupported(
                "memory cannot run in rclone (its data would live in one rclone process); use engine native",
            ))
        }
        // The root must stay inside the allowed local roots: checked by the
        // native driver's rules.
        "local" => LocalStorage::from_config(config, &ctx.env.drivers)
            .await?
            .root()
            .display()
            .to_string(),
        _ if is_wrapper(slug) => {
            return Err(StorageError::unsupported(format!(
                "{slug} backends cannot run in rclone yet; use engine native"
            )))
        }
        _ => String::new(),
    };
    let options = provider.rclone_options(config);
    let scrub = options
        .iter()
        .filter(|o| o.secret && !o.value.is_empty())
        .map(|o| o.value.clone())
        .collect();
    let main = RemoteDef {
        name: remote_name(ctx.backend_id),
        rclone_type: rclone_type.to_string(),
        options,
    };
    let remotes =
        Remotes::new(main, Vec::new()).map_err(|e| StorageError::invalid_config(e.to_string()))?;
    Ok(RcloneSource {
        remotes,
        root,
        scrub,
    })
}

fn is_wrapper(slug: &str) -> bool {
    matches!(
        slug,
        "alias" | "union" | "combine" | "chunker" | "hasher" | "cache"
    )
}

/// The rclone binary, or why a backend of `provider` cannot be served.
fn binary(provider: &Provider, ctx: &BuildContext<'_>) -> Result<Arc<Rclone>> {
    ctx.env.rclone.clone().map_err(|why| {
        StorageError::unsupported(format!(
            "provider '{}' is served by rclone, which is not available: {why}",
            provider.slug
        ))
    })
}

/// Builds the storage of a backend served by rclone.
pub(crate) async fn build(
    provider: &Provider,
    config: &Config,
    ctx: &BuildContext<'_>,
) -> Result<Arc<dyn Storage>> {
    let source = source(provider, config, ctx).await?;
    Ok(Arc::new(RcloneStorage::new(
        binary(provider, ctx)?,
        source.remotes,
        source.root,
        source.scrub,
    )))
}

/// What `rclone mount` needs for a backend rclone serves.
pub(crate) async fn mount_source(
    provider: &Provider,
    config: &Config,
    ctx: &BuildContext<'_>,
) -> Result<RcloneMountSource> {
    let source = source(provider, config, ctx).await?;
    Ok(RcloneMountSource {
        rclone: binary(provider, ctx)?,
        remotes: source.remotes,
        root: source.root,
    })
}
