//! Mounts: the mount actor, the engines that serve mounts, the API's
//! settings, and the mount path rules.

pub mod actor;
pub mod engine;
mod paths;
mod settings;

pub use paths::resolve_mount_path;
pub use settings::{CacheModeName, VfsSettings};
