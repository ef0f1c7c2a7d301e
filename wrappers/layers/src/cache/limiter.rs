//! `rps`: a limit on requests per second to the upstream.

use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Spaces requests at least `1 / rps` apart.
#[derive(Debug)]
pub struct Limiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Limiter {
    /// A limiter for `rps` requests per second; `None` when `rps <= 0`
    /// (no limit).
    pub fn new(rps: i64) -> Option<Limiter> {
        let rps = u32::try_from(rps).ok().filter(|&r| r > 0)?;
        Some(Limiter {
            interval: Duration::from_secs(1) / rps,
            next: Mutex::new(Instant::now()),
        })
    }

    /// Waits for the next free slot.
    pub async fn wait(&self) {
        let mut next = self.next.lock().await;
        let now = Instant::now();
        if *next > now {
            tokio::time::sleep_until(*next).await;
        }
        *next = (*next).max(now) + self.interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spaces_requests() {
        assert!(Limiter::new(-1).is_none());
        assert!(Limiter::new(0).is_none());
        let limiter = Limiter::new(50).unwrap();
        let started = std::time::Instant::now();
        for _ in 0..6 {
            limiter.wait().await;
        }
        // Five intervals of 20 ms after the first, free, request.
        assert!(
            started.elapsed() >= Duration::from_millis(95),
            "{:?}",
            started.elapsed()
        );
    }
}
