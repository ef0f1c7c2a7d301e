//! The backend lifecycle as a pure state machine.
//!
//! `connecting -> connected | failed`; `failed` retries with capped
//! exponential backoff (`failed -> connecting`); a probe of a connected
//! backend may fail (`connected -> failed`) or succeed again; any live state
//! can be told to disconnect (`-> disconnecting -> gone`).

use std::fmt;
use std::time::Duration;

/// Where a backend is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendState {
    /// Building the driver and probing the remote. `attempt` counts failures so far.
    Connecting { attempt: u32 },
    /// The last probe succeeded.
    Connected,
    /// The last probe failed; a retry is scheduled after `backoff(attempt)`.
    Failed { attempt: u32 },
    /// Being removed.
    Disconnecting,
    /// Removed; the actor stops.
    Gone,
}

/// What happened to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendEvent {
    /// A probe (or the driver build before it) succeeded.
    ProbeSucceeded,
    /// A probe failed.
    ProbeFailed,
    /// The retry timer of a failed backend fired.
    RetryDue,
    /// A probe was requested on a connected or failed backend.
    Reprobe,
    /// The backend is being deleted.
    Disconnect,
    /// Deletion finished.
    Disconnected,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTransition {
    /// State the event arrived in.
    pub from: BackendState,
    /// The refused event.
    pub event: BackendEvent,
}

impl fmt::Display for InvalidTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event {:?} is not allowed in state {}",
            self.event, self.from
        )
    }
}

impl std::error::Error for InvalidTransition {}

impl BackendState {
    /// The state name shown by the API and stored in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            BackendState::Connecting { .. } => "connecting",
            BackendState::Connected => "connected",
            BackendState::Failed { .. } => "failed",
            BackendState::Disconnecting => "disconnecting",
            BackendState::Gone => "gone",
        }
    }

    /// Reads a stored state name back; unknown names restart the lifecycle.
    pub fn from_stored(name: &str) -> BackendState {
        match name {
            "connected" => BackendState::Connected,
            "failed" => BackendState::Failed { attempt: 1 },
            _ => BackendState::Connecting { attempt: 0 },
        }
    }

    /// Whether the backend is usable.
    pub fn is_connected(&self) -> bool {
        matches!(self, BackendState::Connected)
    }
}

impl fmt::Display for BackendState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one place that decides how a backend's state changes.
pub fn transition(
    state: BackendState,
    event: BackendEvent,
) -> Result<BackendState, InvalidTransition> {
    use BackendEvent as E;
    use BackendState as S;
    let next = match (state, event) {
        (S::Connecting { .. }, E::ProbeSucceeded) => S::Connected,
        (S::Connecting { attempt }, E::ProbeFailed) => S::Failed {
            attempt: attempt + 1,
        },
        (S::Connected, E::Reprobe) => S::Connected,
        (S::Connected, E::ProbeSucceeded) => S::Connected,
        (S::Connected, E::ProbeFailed) => S::Failed { attempt: 1 },
        (S::Failed { attempt }, E::RetryDue | E::Reprobe) => S::Connecting { attempt },
        (S::Connecting { .. } | S::Connected | S::Failed { .. }, E::Disconnect) => S::Disconnecting,
        (S::Disconnecting, E::Disconnected) => S::Gone,
        (from, event) => return Err(InvalidTransition { from, event }),
    };
    Ok(next)
}

/// Delay before retry number `attempt` (1-based): doubling from `base`, capped at `cap`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use BackendEvent as E;
    use BackendState as S;

    const ALL_EVENTS: [BackendEvent; 6] = [
        E::ProbeSucceeded,
        E::ProbeFailed,
        E::RetryDue,
        E::Reprobe,
        E::Disconnect,
        E::Disconnected,
    ];

    fn all_states() -> [BackendState; 5] {
        [
            S::Connecting { attempt: 2 },
            S::Connected,
            S::Failed { attempt: 3 },
            S::Disconnecting,
            S::Gone,
        ]
    }

    /// The full table: every state crossed with every event.
    fn expected(state: BackendState, event: BackendEvent) -> Option<BackendState> {
        match (state, event) {
            (S::Connecting { .. }, E::ProbeSucceeded) => Some(S::Connected),
            (S::Connecting { .. }, E::ProbeFailed) => Some(S::Failed { attempt: 3 }),
            (S::Connected, E::ProbeSucceeded | E::Reprobe) => Some(S::Connected),
            (S::Connected, E::ProbeFailed) => Some(S::Failed { attempt: 1 }),
            (S::Failed { .. }, E::RetryDue | E::Reprobe) => Some(S::Connecting { attempt: 3 }),
            (S::Connecting { .. } | S::Connected | S::Failed { .. }, E::Disconnect) => {
                Some(S::Disconnecting)
            }
            (S::Disconnecting, E::Disconnected) => Some(S::Gone),
            _ => None,
        }
    }

    #[test]
    fn every_state_and_event_follows_the_table() {
        for state in all_states() {
            for event in ALL_EVENTS {
                let got = transition(state, event).ok();
                assert_eq!(got, expected(state, event), "{state:?} + {event:?}");
            }
        }
    }

    #[test]
    fn refused_transitions_say_why() {
        let err = transition(S::Gone, E::ProbeSucceeded).unwrap_err();
        assert_eq!(err.from, S::Gone);
        assert!(err.to_string().contains("gone"));
    }

    #[test]
    fn failures_count_up_across_retries() {
        let mut state = S::Connecting { attempt: 0 };
        for expected_attempt in 1..=3 {
            state = transition(state, E::ProbeFailed).unwrap();
            assert_eq!(
                state,
                S::Failed {
                    attempt: expected_attempt
                }
            );
            state = transition(state, E::RetryDue).unwrap();
        }
        assert_eq!(transition(state, E::ProbeSucceeded).unwrap(), S::Connected);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(60);
        assert_eq!(backoff(1, base, cap), Duration::from_secs(1));
        assert_eq!(backoff(2, base, cap), Duration::from_secs(2));
        assert_eq!(backoff(4, base, cap), Duration::from_secs(8));
        assert_eq!(backoff(7, base, cap), cap);
        assert_eq!(backoff(200, base, cap), cap);
    }

    #[test]
    fn stored_names_round_trip() {
        for state in [
            S::Connected,
            S::Failed { attempt: 1 },
            S::Connecting { attempt: 0 },
        ] {
            assert_eq!(BackendState::from_stored(state.as_str()), state);
        }
    }
}
