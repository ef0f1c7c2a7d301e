//! The crate's error type. Messages never hold a secret value: anything that
//! comes from rclone goes through the remotes' scrubber first.

use std::path::PathBuf;
use std::time::Duration;

use crate::Version;

/// What went wrong running rclone (probes have their own [`ProbeError`](crate::ProbeError)).
#[derive(Debug, thiserror::Error)]
pub enum RcloneError {
    /// The binary could not be run.
    #[error("cannot run rclone at {path}: {source}")]
    Missing {
        /// The binary berth tried.
        path: PathBuf,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// `rclone version` failed or printed something unexpected.
    #[error("{path} does not look like rclone: `version` answered {answer:?}")]
    NotRclone {
        /// The binary berth tried.
        path: PathBuf,
        /// The first line of its answer (or its exit status).
        answer: String,
    },
    /// The binary is older than [`MIN_VERSION`](crate::MIN_VERSION).
    #[error("rclone {found} at {path} is too old: berth needs {minimum} or newer")]
    TooOld {
        /// The binary berth tried.
        path: PathBuf,
        /// Its version.
        found: Version,
        /// The oldest version berth works with.
        minimum: Version,
    },
    /// A remote definition berth cannot pass to rclone.
    #[error("invalid remote definition: {0}")]
    InvalidRemote(String),
    /// A file or directory berth prepares for rclone.
    #[error("cannot prepare {path}: {reason}")]
    Prepare {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Starting or waiting for the child failed.
    #[error("rclone child process: {0}")]
    Process(#[from] std::io::Error),
    /// `rclone mount` exited before the mount appeared.
    #[error("rclone mount exited ({status}) before mounting: {stderr}")]
    Exited {
        /// Its exit status.
        status: String,
        /// The gist of its stderr, scrubbed.
        stderr: String,
    },
    /// The mount did not appear in `/proc/self/mountinfo` in time.
    #[error("the mount did not appear within {0:?}")]
    MountTimeout(Duration),
    /// A remote-control call failed.
    #[error("rclone rc {command}: {message}")]
    Rc {
        /// The rc command (`vfs/stats`, ...).
        command: String,
        /// Why, scrubbed.
        message: String,
    },
    /// Uploads were still queued when the drain timeout ran out; the mount
    /// is left up so that nothing is lost.
    #[error("{pending} upload(s) still pending after {waited:?}; the mount stays up")]
    DrainTimeout {
        /// Uploads in progress plus queued.
        pending: u64,
        /// How long berth waited.
        waited: Duration,
    },
    /// The mount point is still mounted after rclone exited and `fusermount3 -uz`.
    #[error("cannot unmount {path}: {reason}")]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}
