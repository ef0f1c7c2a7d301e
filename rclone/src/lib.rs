//! The one place in berth that runs the rclone binary: it backs every
//! provider without a native engine, through `rclone lsf` probes, `rclone
//! mount` children and [`RcloneStorage`], berth's [`Storage`] trait served
//! by one bounded rclone command per call (so the backend actor, credential
//! checks and wrapper backends use such a backend like any other). It takes
//! remote definitions made by the provider catalog (whose [`RcloneOption`]
//! it uses; [`option`] builds them by hand) and knows no berth crate but
//! `berth-storage`.
//!
//! [`Storage`]: berth_storage::Storage
//!
//! Design:
//! - **Configuration through the environment only.** Each child gets its
//!   remotes as `RCLONE_CONFIG_<NAME>_<OPTION>` variables ([`Remotes`]),
//!   password-type options obscured the way rclone expects. berth's own
//!   `RCLONE_*` variables are removed and `RCLONE_CONFIG=/dev/null` keeps
//!   rclone's configuration in memory: no user config file is read, no
//!   config file is written, and no secret ever appears in argv (visible in
//!   `/proc/<pid>/cmdline`). Secrets are `***` in `Debug` and are scrubbed
//!   from rclone's stderr before anything is logged or returned.
//! - **OAuth tokens are kept.** With a [`TokenVault`], tokens go to one
//!   config file shared by every child, encrypted as rclone encrypts config
//!   files, so the tokens rclone refreshes (which some providers rotate)
//!   are written back and berth reads them to store them.
//! - **Remote control on a unix socket** in a `0700` directory berth owns
//!   (`--rc-addr unix://...`, `--rc-no-auth`): no port, no password, only
//!   berth's user can reach it. berth reads the upload queue there.
//! - **Children die with berth.** Each child gets a parent-death signal
//!   (`PR_SET_PDEATHSIG`) and its own process group. Linux sends that
//!   signal when the *thread* that forked the child exits, so every child is
//!   forked from one thread that lives as long as the process. A dying
//!   berth sends the signal once per exiting thread, so a mount gets
//!   `SIGINT`, ignored at exec: rclone acts on the first (it unmounts and
//!   exits) and ignores the rest, where a second `SIGTERM` killed it in the
//!   middle of unmounting. Its stderr goes to a file, not a pipe, so it
//!   cannot die of `SIGPIPE` once berth is gone. Dropping an
//!   [`RcloneMount`] sends `SIGTERM`.
//! - **Drain before unmount.** `SIGTERM` or `fusermount3 -u` make rclone
//!   exit without uploading what its VFS cache still queues (those files
//!   stay in the cache directory until the next mount of the same remote
//!   name). [`RcloneMount::unmount`] first makes every queued upload due,
//!   waits for the queue to empty, and leaves the mount up if it does not.
//! - **Probes** ([`Rclone::probe`]) are bounded listings whose stderr is
//!   classified into a [`ProbeErrorKind`] and one clear line.
//! - **Short-lived children** (probes, every [`RcloneStorage`] call) are
//!   started the same way: one attempt, rclone's connect and idle timeouts
//!   under berth's bound, killed at the bound or when dropped.
//!   [`RcloneStorage`] adds its own classification (conflicts, quotas,
//!   unsupported operations) in front of the probe's, and documents how each
//!   call maps to rclone and which capabilities it claims per rclone type.

mod binary;
mod config_file;
mod error;
mod mount;
mod obscure;
mod probe;
mod rc;
mod remote;
mod secret;
mod stderr;
mod storage;
mod tokens;

pub use binary::{Rclone, Version, MIN_VERSION};
pub use error::RcloneError;
pub use mount::{CacheMode, RcloneMount, VfsFlags};
pub use probe::{ProbeError, ProbeErrorKind};
pub use remote::{option, RcloneOption, RemoteDef, Remotes};
pub use storage::RcloneStorage;
pub use tokens::TokenVault;
