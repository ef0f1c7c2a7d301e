//! VFS errors and the one mapping from storage errors to errnos.

use berth_storage::{ErrorKind, StorageError};
use std::fmt;

/// What a VFS operation failed with. Every variant carries the errno the
/// kernel gets ([`VfsError::errno`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VfsError {
    /// The store refused or failed the call.
    Storage(StorageError),
    /// A filesystem rule was broken (for example a backwards seek while
    /// streaming a write): the errno and why.
    Errno {
        /// The errno returned to the caller.
        errno: i32,
        /// What happened, for logs.
        message: String,
    },
    /// The local disk cache failed.
    Cache(String),
}

impl VfsError {
    /// An error with an explicit errno.
    pub fn errno_msg(errno: i32, message: impl Into<String>) -> Self {
        VfsError::Errno {
            errno,
            message: message.into(),
        }
    }

    /// A disk cache I/O failure, naming what it concerned.
    pub fn cache(what: &str, err: std::io::Error) -> Self {
        VfsError::Cache(format!("{what}: {err}"))
    }

    /// The errno for this error.
    pub fn errno(&self) -> i32 {
        match self {
            VfsError::Storage(e) => errno(e),
            VfsError::Errno { errno, .. } => *errno,
            VfsError::Cache(_) => libc::EIO,
        }
    }

    /// Whether this is a storage `NotFound`.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, VfsError::Storage(e) if e.kind == ErrorKind::NotFound)
    }

    /// Replaces a storage `Conflict` with `errno` (for operations where the
    /// meaning of a conflict is known, like rmdir's `ENOTEMPTY`).
    pub(crate) fn conflict_as(self, errno: i32) -> Self {
        match self {
            VfsError::Storage(e) if e.kind == ErrorKind::Conflict => VfsError::Errno {
                errno,
                message: e.message,
            },
            other => other,
        }
    }
}

impl From<StorageError> for VfsError {
    fn from(err: StorageError) -> Self {
        VfsError::Storage(err)
    }
}

impl fmt::Display for VfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VfsError::Storage(e) => write!(f, "storage: {e}"),
            VfsError::Errno { errno, message } => write!(f, "{message} (errno {errno})"),
            VfsError::Cache(m) => write!(f, "disk cache: {m}"),
        }
    }
}

impl std::error::Error for VfsError {}

/// The one errno mapping for storage errors:
///
/// | kind | errno |
/// |---|---|
/// | `NotFound` | `ENOENT` |
/// | `Permission` | `EACCES` |
/// | `Conflict` | `ENOTEMPTY` ("not empty"), `EISDIR` ("is a directory"), `ENOTDIR` ("not a directory"), else `EEXIST` |
/// | `Quota` | `ENOSPC` |
/// | `Transient` | `EIO` (applications rarely retry `EAGAIN` on files) |
/// | `Unsupported` | `EROFS` when the store is read-only, else `ENOTSUP` |
/// | `InvalidConfig` | `EINVAL` |
/// | `Other` | `EIO` |
///
/// The `Conflict` refinements read the drivers' conventional messages;
/// operations that know what a conflict means (rmdir, rename) override it.
pub fn errno(err: &StorageError) -> i32 {
    match err.kind {
        ErrorKind::NotFound => libc::ENOENT,
        ErrorKind::Permission => libc::EACCES,
        ErrorKind::Conflict => {
            let m = err.message.to_ascii_lowercase();
            if m.contains("not empty") {
                libc::ENOTEMPTY
            } else if m.contains("is a directory") {
                libc::EISDIR
            } else if m.contains("not a directory") {
                libc::ENOTDIR
            } else {
                libc::EEXIST
            }
        }
        ErrorKind::Quota => libc::ENOSPC,
        ErrorKind::Transient => libc::EIO,
        ErrorKind::Unsupported => {
            if err.message.to_ascii_lowercase().contains("read-only") {
                libc::EROFS
            } else {
                libc::ENOTSUP
            }
        }
        ErrorKind::InvalidConfig => libc::EINVAL,
        ErrorKind::Other => libc::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kind: ErrorKind, m: &str) -> i32 {
        errno(&StorageError::new(kind, m))
    }

    #[test]
    fn maps_every_kind() {
        assert_eq!(e(ErrorKind::NotFound, "x"), libc::ENOENT);
        assert_eq!(e(ErrorKind::Permission, "x"), libc::EACCES);
        assert_eq!(e(ErrorKind::Conflict, "a: exists"), libc::EEXIST);
        assert_eq!(
            e(ErrorKind::Conflict, "a: directory not empty"),
            libc::ENOTEMPTY
        );
        assert_eq!(e(ErrorKind::Conflict, "a: is a directory"), libc::EISDIR);
        assert_eq!(e(ErrorKind::Conflict, "a: not a directory"), libc::ENOTDIR);
        assert_eq!(e(ErrorKind::Quota, "x"), libc::ENOSPC);
        assert_eq!(e(ErrorKind::Transient, "x"), libc::EIO);
        assert_eq!(e(ErrorKind::Unsupported, "x"), libc::ENOTSUP);
        assert_eq!(e(ErrorKind::Unsupported, "store is read-only"), libc::EROFS);
        assert_eq!(e(ErrorKind::InvalidConfig, "x"), libc::EINVAL);
        assert_eq!(e(ErrorKind::Other, "x"), libc::EIO);
    }

    #[test]
    fn conflict_override() {
        let err = VfsError::from(StorageError::new(ErrorKind::Conflict, "x"));
        assert_eq!(err.conflict_as(libc::ENOTEMPTY).errno(), libc::ENOTEMPTY);
        let err = VfsError::from(StorageError::not_found("x"));
        assert_eq!(err.conflict_as(libc::ENOTEMPTY).errno(), libc::ENOENT);
    }
}
