//! The actor book: what `/api/v1/health/actors` shows about every actor.
//!
//! Actors write their own line on every transition, restart or failure; the
//! health route reads a snapshot. A plain mutex is enough: writes are rare and
//! tiny, and nothing awaits while holding it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// One actor's health, as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ActorHealth {
    /// `registry` or `backend` (later `mount`).
    pub kind: String,
    /// The actor's id (the backend id for backend actors).
    pub id: String,
    /// The tenant owning the resource; not serialized.
    #[serde(skip)]
    pub org: Option<String>,
    /// Current state name.
    pub state: String,
    /// When the actor entered this state (ISO 8601).
    pub since: String,
    /// How often the supervisor restarted the actor.
    pub restarts: u32,
    /// The last error, if any (never holds secrets).
    pub last_error: Option<String>,
}

/// Shared, cloneable handle to the book.
#[derive(Debug, Clone, Default)]
pub struct ActorBook {
    entries: Arc<Mutex<BTreeMap<(String, String), ActorHealth>>>,
}

/// The current time as the API formats it.
pub fn now_iso() -> String {
    iso(Utc::now())
}

/// Formats a time as ISO 8601 with second precision and a `Z`.
pub fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl ActorBook {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, String), ActorHealth>> {
        // A panic while holding this lock cannot leave it inconsistent (every
        // write is a single insert), so a poisoned lock is still usable.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers an actor in `state`. A restarted actor registers again and
    /// keeps its restart count and last error.
    pub fn register(&self, kind: &str, id: &str, org: Option<&str>, state: &str) {
        let key = (kind.to_string(), id.to_string());
        let mut entries = self.lock();
        if let Some(existing) = entries.get_mut(&key) {
            if existing.state != state {
                existing.state = state.to_string();
                existing.since = now_iso();
            }
            return;
        }
        let health = ActorHealth {
            kind: kind.to_string(),
            id: id.to_string(),
            org: org.map(str::to_string),
            state: state.to_string(),
            since: now_iso(),
            restarts: 0,
            last_error: None,
        };
        entries.insert(key, health);
    }

    /// Records a new state; `error` replaces the last error when given.
    pub fn set_state(&self, kind: &str, id: &str, state: &str, error: Option<&str>) {
        if let Some(health) = self.lock().get_mut(&(kind.to_string(), id.to_string())) {
            if health.state != state {
                health.state = state.to_string();
                health.since = now_iso();
            }
            if let Some(error) = error {
                health.last_error = Some(error.to_string());
            }
        }
    }

    /// Counts a supervisor restart, with its cause.
    pub fn record_restart(&self, kind: &str, id: &str, cause: &str) {
        if let Some(health) = self.lock().get_mut(&(kind.to_string(), id.to_string())) {
            health.restarts += 1;
            health.last_error = Some(cause.to_string());
        }
    }

    /// Removes an actor that is gone for good.
    pub fn remove(&self, kind: &str, id: &str) {
        self.lock().remove(&(kind.to_string(), id.to_string()));
    }

    /// One actor's line.
    pub fn get(&self, kind: &str, id: &str) -> Option<ActorHealth> {
        self.lock()
            .get(&(kind.to_string(), id.to_string()))
            .cloned()
    }

    /// Every actor visible to `org`: its own resources and the shared
    /// service actors (those without an org).
    pub fn snapshot(&self, org: &str) -> Vec<ActorHealth> {
        self.lock()
            .values()
            .filter(|health| health.org.as_deref().is_none_or(|owner| owner == org))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_state_restarts_and_tenancy() {
        let book = ActorBook::default();
        book.register("registry", "registry", None, "running");
        book.register("backend", "a", Some("org1"), "connecting");
        book.register("backend", "b", Some("org2"), "connecting");
        book.set_state("backend", "a", "failed", Some("boom"));
        book.record_restart("backend", "a", "panic: oops");
        let a = book.get("backend", "a").unwrap();
        assert_eq!(a.state, "failed");
        assert_eq!(a.restarts, 1);
        assert_eq!(a.last_error.as_deref(), Some("panic: oops"));
        let seen: Vec<_> = book.snapshot("org1").into_iter().map(|h| h.id).collect();
        assert_eq!(seen, vec!["a", "registry"]);
        book.remove("backend", "a");
        assert!(book.get("backend", "a").is_none());
    }
}
