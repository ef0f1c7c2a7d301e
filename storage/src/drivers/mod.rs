//! The native drivers that need no SDK: `memory` and `local`. The factory
//! that picks a driver for a provider lives in the `berth-engines` crate.

pub mod local;
pub mod memory;

pub use local::LocalStorage;
pub use memory::MemoryStorage;

use std::path::PathBuf;

/// What drivers need from the service's configuration.
#[derive(Debug, Clone, Default)]
pub struct DriverEnv {
    /// Directories a `local` backend may expose (`BERTH_LOCAL_ROOTS`); a
    /// backend's `root` must resolve inside one of them.
    pub local_roots: Vec<PathBuf>,
}
