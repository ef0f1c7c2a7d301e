//! The native drivers that need no SDK: `memory` and `local`. The factory
//! that picks a driver for a provider lives in the `berth-engines` crate.

pub mod local;
pub mod memory;
pub mod positional;
pub mod streamed;

pub use local::LocalStorage;
pub use memory::MemoryStorage;
pub use streamed::StreamedFile;

use crate::{Result, StorageError};
use std::io;
use std::path::{Component, Path, PathBuf};

/// What drivers need from the service's configuration: what a backend may
/// reach on berth's own host.
#[derive(Debug, Clone, Default)]
pub struct DriverEnv {
    /// Directories a `local` backend may expose (`BERTH_LOCAL_ROOTS`); a
    /// backend's `root`, and every other option naming a file on the host,
    /// must resolve inside one of them.
    pub local_roots: Vec<PathBuf>,
    /// Backends may use the host's own credentials and files anywhere
    /// (`BERTH_HOST_CREDENTIALS`; off by default, for single-tenant use).
    pub host_credentials: bool,
}

impl DriverEnv {
    /// The canonical form of `path`, the value of the option `field`, if it
    /// lies inside the allowed local roots (symlinks and `..` resolved).
    /// Errors name the field and never tell whether a path outside the
    /// roots exists.
    pub fn confine(&self, field: &str, path: &Path) -> Result<PathBuf> {
        let shown = path.display();
        if !path.is_absolute() {
            return Err(StorageError::invalid_config(format!(
                "{field} '{shown}' must be an absolute path"
            )));
        }
        let outside = || {
            StorageError::invalid_config(format!(
                "{field} '{shown}' is outside the allowed local roots (BERTH_LOCAL_ROOTS)"
            ))
        };
        let allowed: Vec<PathBuf> = self
            .local_roots
            .iter()
            .filter_map(|r| std::fs::canonicalize(r).ok())
            .collect();
        let canonical = match std::fs::canonicalize(path) {
            Ok(c) => c,
            Err(e) => {
                let lexical = lexical_normalize(path);
                let maybe_inside = self
                    .local_roots
                    .iter()
                    .chain(allowed.iter())
                    .any(|r| lexical.starts_with(lexical_normalize(r)));
                if !maybe_inside {
                    return Err(outside());
                }
                return Err(StorageError::invalid_config(
                    if e.kind() == io::ErrorKind::NotFound {
                        format!("{field} '{shown}' does not exist")
                    } else {
                        format!("{field} '{shown}' cannot be resolved: {e}")
                    },
                ));
            }
        };
        if !allowed.iter().any(|r| canonical.starts_with(r)) {
            return Err(outside());
        }
        Ok(canonical)
    }
}

/// Lexically resolves `.` and `..` (no filesystem access).
pub(crate) fn lexical_normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
