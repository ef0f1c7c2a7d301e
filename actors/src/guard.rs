//! Panic containment for actors.
//!
//! actix does not catch panics: a panicking handler kills the actor task for
//! good. Handlers run their risky parts through [`guard`] (synchronous code)
//! or [`guard_future`] (futures); a caught panic is reported to the actor,
//! which stops itself so its `Supervisor` restarts it and counts the restart.

use futures::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Turns a panic payload into a message for the actor book.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    format!("panic: {text}")
}

/// Runs `f`, turning a panic into `Err(message)`.
pub fn guard<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panic_message(payload.as_ref()))
}

/// Awaits `fut`, turning a panic into `Err(message)`.
pub async fn guard_future<R>(fut: impl Future<Output = R>) -> Result<R, String> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|payload| panic_message(payload.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_panics_with_their_message() {
        assert_eq!(guard(|| 5), Ok(5));
        assert_eq!(
            guard(|| -> i32 { panic!("boom") }),
            Err("panic: boom".to_string())
        );
    }

    #[tokio::test]
    async fn catches_panics_in_futures() {
        let result = guard_future(async { panic!("late {}", 1) }).await;
        assert_eq!(result, Err::<(), _>("panic: late 1".to_string()));
    }
}
