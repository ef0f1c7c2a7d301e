//! Storage for berth: the [`Storage`] trait every driver and wrapper implements,
//! the declarative provider [`catalog`], and the native drivers.
//!
//! Paths given to a [`Storage`] are relative, `/`-separated and never start with
//! `/`; the empty string is the root. Drivers must refuse `..` components.

pub mod catalog;
pub mod drivers;
mod error;
mod path;
pub mod remote;
mod resolve;
mod retry;
mod subpath;
mod swappable;
#[cfg(feature = "testkit")]
pub mod testkit;
mod traced;
pub mod units;

pub use error::{ErrorKind, StorageError};
pub use path::{join_path, normalize_path};
pub use resolve::Resolve;
pub use retry::{Retry, RetryPolicy};
pub use subpath::SubPath;
pub use swappable::Swappable;
pub use traced::Traced;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::fmt;
use std::time::SystemTime;

/// Result type of every storage call.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A streaming body: chunks of bytes or an error.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// What a driver can do. Callers check these flags instead of guessing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capability {
    /// Directories exist on their own (can be empty, need mkdir/rmdir).
    pub directories: bool,
    /// `read` honours a byte range without fetching the whole object.
    pub ranged_read: bool,
    /// Server-side `copy` is available.
    pub copy: bool,
    /// `rename` is atomic on the store.
    pub atomic_rename: bool,
    /// Modification times can be set and are kept.
    pub set_mtime: bool,
    /// `usage` reports total/free space.
    pub usage: bool,
    /// Writes can be appended to an existing object.
    pub append: bool,
}

/// Kind of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file / object.
    File,
    /// A directory or common prefix.
    Dir,
}

/// Metadata of one file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the storage root.
    pub path: String,
    /// File or directory.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Last modification time, when the store keeps one.
    pub modified: Option<SystemTime>,
}

impl Entry {
    /// The last path component (the whole path for top-level entries).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// One page of a directory listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Entries of this page, sorted by name.
    pub entries: Vec<Entry>,
    /// Token to pass to the next `list` call; `None` on the last page.
    pub next: Option<String>,
}

/// Space accounting, where the store knows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Total capacity in bytes, if known.
    pub total: Option<u64>,
    /// Bytes in use, if known.
    pub used: Option<u64>,
    /// Bytes free, if known.
    pub free: Option<u64>,
}

/// Object-store operations shared by every driver and wrapper backend.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// What this driver can do.
    fn capability(&self) -> Capability;

    /// Metadata of one path; `NotFound` if it does not exist.
    async fn stat(&self, path: &str) -> Result<Entry>;

    /// One page of the direct children of `dir`. `limit` caps the page size
    /// (`0` lets the driver choose); `cursor` is the previous page's `next`.
    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage>;

    /// Streams the object, or the `range` (offset, length) of it.
    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream>;

    /// Creates or replaces the object with the streamed body.
    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry>;

    /// Deletes a file; `NotFound` if it does not exist.
    async fn delete(&self, path: &str) -> Result<()>;

    /// Copies a file to a new path, replacing the target.
    async fn copy(&self, from: &str, to: &str) -> Result<()>;

    /// Moves a file or directory to a new path.
    async fn rename(&self, from: &str, to: &str) -> Result<()>;

    /// Creates a directory (and missing parents). Existing directories are fine.
    async fn mkdir(&self, path: &str) -> Result<()>;

    /// Removes an empty directory; `Conflict` if it is not empty.
    async fn rmdir(&self, path: &str) -> Result<()>;

    /// Space accounting; `Unsupported` when the store does not know.
    async fn usage(&self) -> Result<Usage>;

    /// Sets the modification time of a file or directory; `Unsupported`
    /// unless [`Capability::set_mtime`] is true.
    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        let _ = time;
        Err(StorageError::unsupported(format!(
            "{path}: this store cannot set modification times"
        )))
    }

    /// Content hashes of a file known to the store, as `(type, lowercase hex)`
    /// pairs (`md5`, `sha1`, ...); empty when the store keeps none.
    async fn hashes(&self, path: &str) -> Result<Vec<(String, String)>> {
        self.stat(path).await.map(|_| Vec::new())
    }

    /// Checks that the remote answers with the configured credentials by
    /// listing one entry of the root.
    async fn probe(&self) -> Result<()> {
        self.list("", None, 1).await.map(|_| ())
    }
}

/// Collects a [`ByteStream`] into memory (for small objects and tests).
pub async fn collect(mut body: ByteStream) -> Result<Vec<u8>> {
    use futures::StreamExt;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// A [`ByteStream`] of one in-memory buffer.
pub fn once(bytes: impl Into<Bytes>) -> ByteStream {
    Box::pin(futures::stream::once(futures::future::ready(Ok(
        bytes.into()
    ))))
}
