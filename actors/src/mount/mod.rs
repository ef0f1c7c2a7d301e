//! Mounts: the mount actor, the API's settings, and the mount path rules.

pub mod actor;
mod paths;
mod settings;

pub use paths::resolve_mount_path;
pub use settings::{CacheModeName, VfsSettings};
