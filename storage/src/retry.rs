//! The one retry layer: transient failures of idempotent calls are retried
//! with exponential backoff. Drivers do not retry on their own (SDK retries
//! are off or bounded small), so a failure is retried exactly here.

use crate::{ByteStream, Capability, Entry, ListPage, Result, Storage, Usage};
use async_trait::async_trait;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// Delay before the first retry; doubles each time.
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    async fn run<T, F, Fut>(&self, op: &str, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut delay = self.base_delay;
        let mut attempt = 1;
        loop {
            match call().await {
                Err(err) if err.is_retryable() && attempt < self.attempts => {
                    tracing::debug!(op, attempt, error = %err, "retrying transient storage failure");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Wraps a storage with [`RetryPolicy`]. Writes (their body is consumed) and
/// renames (not idempotent on stores that copy then delete) are not retried.
#[derive(Debug, Clone)]
pub struct Retry {
    inner: Arc<dyn Storage>,
    policy: RetryPolicy,
}

impl Retry {
    /// Retries `inner`'s idempotent calls under `policy`.
    pub fn new(inner: Arc<dyn Storage>, policy: RetryPolicy) -> Self {
        Retry { inner, policy }
    }
}

#[async_trait]
impl Storage for Retry {
    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.policy.run("stat", || self.inner.stat(path)).await
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        self.policy
            .run("list", || self.inner.list(dir, cursor.clone(), limit))
            .await
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        self.policy
            .run("read", || self.inner.read(path, range))
            .await
    }

    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
        self.inner.write(path, body).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.policy.run("delete", || self.inner.delete(path)).await
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.policy.run("copy", || self.inner.copy(from, to)).await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.inner.rename(from, to).await
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        self.policy.run("mkdir", || self.inner.mkdir(path)).await
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        self.policy.run("rmdir", || self.inner.rmdir(path)).await
    }

    async fn usage(&self) -> Result<Usage> {
        self.policy.run("usage", || self.inner.usage()).await
    }

    async fn hashes(&self, path: &str) -> Result<Vec<(String, String)>> {
        self.policy.run("hashes", || self.inner.hashes(path)).await
    }

    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        self.policy
            .run("set_modified", || self.inner.set_modified(path, time))
            .await
    }

    async fn probe(&self) -> Result<()> {
        self.policy.run("probe", || self.inner.probe()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, StorageError};
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn retries_transient_failures_only() {
        let calls = AtomicU32::new(0);
        let result: Result<u32> = policy()
            .run("op", || async {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                if n < 3 {
                    Err(StorageError::new(ErrorKind::Transient, "blip"))
                } else {
                    Ok(n)
                }
            })
            .await;
        assert_eq!(result.unwrap(), 3);

        calls.store(0, Ordering::SeqCst);
        let result: Result<()> = policy()
            .run("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(StorageError::new(ErrorKind::Permission, "denied"))
            })
            .await;
        assert_eq!(result.unwrap_err().kind, ErrorKind::Permission);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        calls.store(0, Ordering::SeqCst);
        let result: Result<()> = policy()
            .run("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(StorageError::new(ErrorKind::Transient, "down"))
            })
            .await;
        assert_eq!(result.unwrap_err().kind, ErrorKind::Transient);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "gives up after the last attempt"
        );
    }
}
