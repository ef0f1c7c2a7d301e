//! Storage errors: a kind that callers map to API statuses and errnos, and
//! whether retrying can help.

use std::fmt;

/// What went wrong, independent of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The path or bucket does not exist.
    NotFound,
    /// Credentials are wrong or lack the permission.
    Permission,
    /// The target exists, or a directory is not empty.
    Conflict,
    /// The store is full or a quota is exceeded.
    Quota,
    /// A network or server hiccup; retrying may succeed.
    Transient,
    /// The driver cannot do this.
    Unsupported,
    /// The backend's configuration is invalid.
    InvalidConfig,
    /// Anything else.
    Other,
}

/// A storage failure with a human-readable message that never holds secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError {
    /// The category of the failure.
    pub kind: ErrorKind,
    /// What happened, safe to show to users.
    pub message: String,
}

impl StorageError {
    /// Builds an error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// `NotFound` for `path`.
    pub fn not_found(path: &str) -> Self {
        Self::new(ErrorKind::NotFound, format!("not found: {path}"))
    }

    /// `InvalidConfig` with a message.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfig, message)
    }

    /// `Unsupported` with a message.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// Whether a retry can help.
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// Maps an I/O error, naming the path it concerned.
    pub fn from_io(err: std::io::Error, path: &str) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match err.kind() {
            Io::NotFound => ErrorKind::NotFound,
            Io::PermissionDenied => ErrorKind::Permission,
            Io::AlreadyExists | Io::DirectoryNotEmpty | Io::IsADirectory | Io::NotADirectory => {
                ErrorKind::Conflict
            }
            Io::StorageFull | Io::QuotaExceeded => ErrorKind::Quota,
            Io::Interrupted | Io::TimedOut | Io::WouldBlock => ErrorKind::Transient,
            Io::InvalidInput | Io::InvalidFilename => ErrorKind::InvalidConfig,
            _ => ErrorKind::Other,
        };
        let shown = if path.is_empty() { "/" } else { path };
        Self::new(kind, format!("{shown}: {err}"))
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StorageError {}
