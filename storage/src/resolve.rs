//! How wrapper backends reach the storage they reference.

use crate::remote::Remote;
use crate::{Result, Storage};
use async_trait::async_trait;
use std::sync::Arc;

/// Opens the storage a wrapper references: another backend of the caller's
/// org (by name or id, viewed from the remote's path), or a directory inside
/// `BERTH_LOCAL_ROOTS`. A backend's storage follows that backend: after a
/// credential rotation it serves through the new credentials.
#[async_trait]
pub trait Resolve: Send + Sync {
    /// The storage for `remote`; `NotFound` naming the backend when the org
    /// has none of that name or id.
    async fn open(&self, remote: &Remote) -> Result<Arc<dyn Storage>>;
}
