//! What the registry answers when a request cannot be carried out. The HTTP
//! edge maps each variant to a status in one table (`src/error.rs`).

use thiserror::Error;

/// A refused or failed registry operation. Messages never hold secrets.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    /// No such resource in the caller's org.
    #[error("{0}")]
    NotFound(String),
    /// The request is invalid (names the field).
    #[error("{0}")]
    Invalid(String),
    /// Connecting a new backend failed; nothing was stored.
    #[error("{0}")]
    ProbeFailed(String),
    /// New credentials did not work against the remote; the old ones stay.
    #[error("Credential validation failed against the remote backend: {0}")]
    CredentialCheckFailed(String),
    /// The resource is in use or busy.
    #[error("{0}")]
    Conflict(String),
    /// Something broke inside the service.
    #[error("{0}")]
    Internal(String),
}

impl RegistryError {
    /// The standard "backend not found" answer (also used for other orgs' backends).
    pub fn backend_not_found() -> Self {
        RegistryError::NotFound("Backend not found".to_string())
    }
}
