//! Wrapper backends that compose other backends, behind the [`Storage`] trait:
//!
//! - [`alias`]: another backend (or a local directory) seen from a path;
//! - [`union`]: several upstreams merged into one tree, with rclone's search,
//!   create and action policies and `:ro` / `:nc` upstream modes;
//! - [`combine`]: several upstreams shown as the top-level directories of one
//!   tree.
//!
//! Upstreams are opened through the [`Resolve`] the engine factory passes in,
//! already rooted at the path their `remote` names.

pub mod alias;
pub mod combine;
pub mod union;

use berth_storage::catalog::Config;
use berth_storage::remote::Remote;
use berth_storage::{ByteStream, Entry, ErrorKind, Resolve, Result, Storage, StorageError};
use std::sync::Arc;

/// Builds the wrapper `slug` (`alias`, `union` or `combine`) over the storage
/// its validated config references.
pub async fn build(slug: &str, config: &Config, resolve: &dyn Resolve) -> Result<Arc<dyn Storage>> {
    match slug {
        "alias" => alias::build(config, resolve).await,
        "union" => union::build(config, resolve).await,
        "combine" => combine::build(config, resolve).await,
        other => Err(StorageError::unsupported(format!(
            "provider '{other}' is not a composing wrapper"
        ))),
    }
}

/// How a remote is named in messages: `backend:path` or the local path.
pub(crate) fn label(remote: &Remote) -> String {
    match remote {
        Remote::Backend { backend, path } => format!("{backend}:{path}"),
        Remote::Local(dir) => dir.display().to_string(),
    }
}

/// The same error, its message prefixed with `what` (the kind is kept).
pub(crate) fn context(what: &str, err: StorageError) -> StorageError {
    StorageError::new(err.kind, format!("{what}: {}", err.message))
}

/// A string option of a validated config (`""` when absent).
pub(crate) fn text<'a>(config: &'a Config, key: &str) -> &'a str {
    config.get(key).and_then(|v| v.as_str()).unwrap_or_default()
}

/// `Conflict` naming `path` and what is wrong with it.
pub(crate) fn conflict(path: &str, what: &str) -> StorageError {
    let shown = if path.is_empty() { "/" } else { path };
    StorageError::new(ErrorKind::Conflict, format!("{shown}: {what}"))
}

/// `Permission` with a message.
pub(crate) fn denied(message: impl Into<String>) -> StorageError {
    StorageError::new(ErrorKind::Permission, message)
}

/// Copies the file `from` of `src` to `to` of `dst` by streaming it through
/// this process (for copies between two different upstreams).
pub(crate) async fn stream_copy(
    src: &dyn Storage,
    from: &str,
    dst: &dyn Storage,
    to: &str,
) -> Result<Entry> {
    let body: ByteStream = src.read(from, None).await?;
    dst.write(to, body).await
}

/// The capability flags shared by every upstream: a flag is set only when
/// every storage in `caps` sets it (`false` for an empty set).
pub(crate) fn all_caps(caps: &[berth_storage::Capability]) -> berth_storage::Capability {
    let every = |f: fn(&berth_storage::Capability) -> bool| !caps.is_empty() && caps.iter().all(f);
    berth_storage::Capability {
        directories: every(|c| c.directories),
        ranged_read: every(|c| c.ranged_read),
        copy: every(|c| c.copy),
        atomic_rename: every(|c| c.atomic_rename),
        set_mtime: every(|c| c.set_mtime),
        usage: every(|c| c.usage),
        append: every(|c| c.append),
    }
}

/// Sums usage figures; a figure is known only when every part knows it.
pub(crate) fn sum_usage(parts: &[berth_storage::Usage]) -> berth_storage::Usage {
    let sum = |f: fn(&berth_storage::Usage) -> Option<u64>| {
        parts
            .iter()
            .try_fold(0u64, |acc, u| f(u).map(|v| acc.saturating_add(v)))
    };
    berth_storage::Usage {
        total: sum(|u| u.total),
        used: sum(|u| u.used),
        free: sum(|u| u.free),
    }
}
