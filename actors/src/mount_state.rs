//! The mount lifecycle as a pure state machine.
//!
//! `mounting -> active -> unmounting -> gone`; a failed mount goes to `error`
//! and retries with capped exponential backoff (`error -> mounting`); a mount
//! lost behind berth's back (external unmount, aborted connection) goes back
//! to `mounting`; any live state can be told to unmount.

use std::fmt;

/// Where a mount is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountState {
    /// Being mounted. `attempt` counts failures so far.
    Mounting { attempt: u32 },
    /// Mounted and serving.
    Active,
    /// The last attempt failed; a retry is scheduled.
    Error { attempt: u32 },
    /// Flushing pending uploads, then unmounting.
    Unmounting,
    /// Unmounted; the actor stops.
    Gone,
}

/// What happened to a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountEvent {
    /// The kernel shows the mount.
    Mounted,
    /// Mounting failed.
    MountFailed,
    /// The retry timer of a failed mount fired.
    RetryDue,
    /// The mount vanished without berth unmounting it.
    Lost,
    /// Unmount requested (DELETE or shutdown).
    Unmount,
    /// Pending uploads finished and the filesystem is unmounted.
    Unmounted,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidMountTransition {
    /// State the event arrived in.
    pub from: MountState,
    /// The refused event.
    pub event: MountEvent,
}

impl fmt::Display for InvalidMountTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event {:?} is not allowed in state {}",
            self.event,
            self.from.as_str()
        )
    }
}

impl std::error::Error for InvalidMountTransition {}

impl MountState {
    /// The status name the API shows and the database stores.
    pub fn as_str(&self) -> &'static str {
        match self {
            MountState::Mounting { .. } => "mounting",
            MountState::Active => "active",
            MountState::Error { .. } => "error",
            MountState::Unmounting => "unmounting",
            MountState::Gone => "gone",
        }
    }
}

/// The one place that decides how a mount's state changes.
pub fn transition(
    state: MountState,
    event: MountEvent,
) -> Result<MountState, InvalidMountTransition> {
    use MountEvent as E;
    use MountState as S;
    let next = match (state, event) {
        (S::Mounting { .. }, E::Mounted) => S::Active,
        (S::Mounting { attempt }, E::MountFailed) => S::Error {
            attempt: attempt + 1,
        },
        (S::Error { attempt }, E::RetryDue) => S::Mounting { attempt },
        (S::Active, E::Lost) => S::Mounting { attempt: 0 },
        (S::Mounting { .. } | S::Active | S::Error { .. }, E::Unmount) => S::Unmounting,
        (S::Unmounting, E::Unmounted) => S::Gone,
        (from, event) => return Err(InvalidMountTransition { from, event }),
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use MountEvent as E;
    use MountState as S;

    const EVENTS: [MountEvent; 6] = [
        E::Mounted,
        E::MountFailed,
        E::RetryDue,
        E::Lost,
        E::Unmount,
        E::Unmounted,
    ];

    fn expected(state: MountState, event: MountEvent) -> Option<MountState> {
        match (state, event) {
            (S::Mounting { .. }, E::Mounted) => Some(S::Active),
            (S::Mounting { .. }, E::MountFailed) => Some(S::Error { attempt: 3 }),
            (S::Error { .. }, E::RetryDue) => Some(S::Mounting { attempt: 2 }),
            (S::Active, E::Lost) => Some(S::Mounting { attempt: 0 }),
            (S::Mounting { .. } | S::Active | S::Error { .. }, E::Unmount) => Some(S::Unmounting),
            (S::Unmounting, E::Unmounted) => Some(S::Gone),
            _ => None,
        }
    }

    #[test]
    fn every_state_and_event_follows_the_table() {
        let states = [
            S::Mounting { attempt: 2 },
            S::Active,
            S::Error { attempt: 2 },
            S::Unmounting,
            S::Gone,
        ];
        for state in states {
            for event in EVENTS {
                assert_eq!(
                    transition(state, event).ok(),
                    expected(state, event),
                    "{state:?} + {event:?}"
                );
            }
        }
    }

    #[test]
    fn failures_count_up_and_names_match_the_api() {
        let mut state = S::Mounting { attempt: 0 };
        for attempt in 1..=3 {
            state = transition(state, E::MountFailed).unwrap();
            assert_eq!(state, S::Error { attempt });
            assert_eq!(state.as_str(), "error");
            state = transition(state, E::RetryDue).unwrap();
            assert_eq!(state.as_str(), "mounting");
        }
        assert_eq!(transition(state, E::Mounted).unwrap().as_str(), "active");
        assert!(transition(S::Gone, E::Unmount)
            .unwrap_err()
            .to_string()
            .contains("gone"));
    }
}
