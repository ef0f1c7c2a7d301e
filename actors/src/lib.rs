//! berth's actors: the registry (the only door for routes) and one backend
//! actor per backend. Actors own lifecycle and state, never file bytes.

pub mod backend;
pub mod book;
mod directory;
mod error;
mod guard;
pub mod mount;
pub mod mount_state;
pub mod registry;
pub mod state;
#[cfg(test)]
mod tests;

pub use book::{ActorBook, ActorHealth};
pub use error::RegistryError;
pub use registry::{BackendView, MountView, Registry, RegistrySettings, TestOutcome};

use std::time::Duration;

/// Timing knobs shared by backend actors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Longest a single probe may take.
    pub probe_timeout: Duration,
    /// First retry delay after a failure.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            probe_timeout: Duration::from_secs(30),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
        }
    }
}
