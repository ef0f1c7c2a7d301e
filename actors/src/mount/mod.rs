//! Mounts: the API's settings and path rules (the actor and engine come with
//! the VFS).

mod paths;
mod settings;

pub use paths::resolve_mount_path;
pub use settings::{CacheModeName, VfsSettings};
