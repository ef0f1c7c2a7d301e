//! The crate's error type.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Errors from the persistence layer. Messages name the failing operation,
/// table or file, never the contents of a config or a key.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A uniqueness rule was violated (e.g. a backend name already used in the org).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row to change does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Key file or sealing problem: wrong key, tampered data, malformed key file.
    #[error("crypto error: {0}")]
    Crypto(String),
    /// Anything else: connection, pool, migration or query failures.
    #[error("database error: {0}")]
    Other(String),
}

impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        match e {
            // Only the constraint's message (e.g. "UNIQUE constraint failed:
            // backends.org, backends.name"), not the offending values.
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                DbError::Conflict(info.message().to_string())
            }
            DieselError::NotFound => DbError::NotFound("record not found".into()),
            other => DbError::Other(other.to_string()),
        }
    }
}

impl From<diesel::r2d2::PoolError> for DbError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        DbError::Other(format!("connection pool: {e}"))
    }
}
