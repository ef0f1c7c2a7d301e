//! One actor per mount: mounts the backend through its engine (berth's VFS,
//! or `rclone mount` for backends rclone serves), watches that the kernel
//! still serves it (mounting again when it vanished behind our back, with
//! backoff when it keeps vanishing), applies new settings, and unmounts only
//! after every pending upload is flushed. The data path never passes through
//! this actor: FUSE requests go from the kernel to the engine.

use super::engine::{is_mount_point, MountEngine, Reconfigured};
use super::settings::VfsSettings;
use crate::book::ActorBook;
use crate::guard::panic_message;
use crate::mount_state::{transition, MountEvent, MountState};
use crate::state::backoff;
use crate::Timing;
use actix::prelude::*;
use berth_db::Db;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The actor kind name in the actor book.
pub const KIND: &str = "mount";

/// How often a live mount is checked.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// A mount lost sooner than this after it came up counts as a crash loop:
/// the next attempt waits with backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// Everything a mount actor needs to start.
pub struct MountSpec {
    /// `mount_` + 32 hex.
    pub id: String,
    /// Owning org.
    pub org: String,
    /// Absolute mount point inside the mount root.
    pub mount_path: PathBuf,
    /// The VFS settings.
    pub settings: VfsSettings,
    /// What serves the mount.
    pub engine: Arc<dyn MountEngine>,
}

/// Shared services handed to every mount actor.
#[derive(Clone)]
pub struct MountServices {
    /// Where status changes are persisted.
    pub db: Db,
    /// Where health is reported.
    pub book: ActorBook,
    /// Retry policy.
    pub timing: Timing,
    /// The runtime that serves the data path of every mount.
    pub data_runtime: tokio::runtime::Handle,
}

/// The mount actor.
pub struct MountActor {
    spec: MountSpec,
    services: MountServices,
    state: MountState,
    retry: Option<SpawnHandle>,
    waiting: Vec<tokio::sync::oneshot::Sender<()>>,
    panic_cause: Option<String>,
    /// When the mount last became active.
    active_since: Option<Instant>,
    /// Losses in a row, each soon after the mount came up.
    quick_losses: u32,
}

/// Apply new settings to the mount (live, or by mounting again when the
/// engine needs that).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateSettings(pub VfsSettings);

/// Answers once the mount left `mounting` (active or error).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Settled;

/// Flush pending uploads, then unmount. `forget` (DELETE) also drops the
/// mount from the actor book; without it the mount stays desired state for
/// the next start (shutdown).
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Unmount {
    /// Remove the mount for good.
    pub forget: bool,
}

/// Runs engine work on the data runtime. A panic there comes back as the
/// outer `Err` (so the actor restarts), a failure as the inner one.
fn on_data_runtime<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    work: impl Future<Output = Result<T, String>> + Send + 'static,
) -> impl Future<Output = Result<Result<T, String>, String>> {
    let task = runtime.spawn(work);
    async move {
        match task.await {
            Ok(result) => Ok(result),
            Err(join) if join.is_panic() => Err(panic_message(join.into_panic().as_ref())),
            Err(join) => Ok(Err(format!("mount task failed: {join}"))),
        }
    }
}

impl MountActor {
    /// Creates the actor (start it under a `Supervisor`).
    pub fn new(spec: MountSpec, services: MountServices) -> Self {
        MountActor {
            spec,
            services,
            state: MountState::Mounting { attempt: 0 },
            retry: None,
            waiting: Vec::new(),
            panic_cause: None,
            active_since: None,
            quick_losses: 0,
        }
    }

    fn apply(&mut self, event: MountEvent, error: Option<&str>) {
        match transition(self.state, event) {
            Ok(next) => {
                self.state = next;
                self.services
                    .book
                    .set_state(KIND, &self.spec.id, next.as_str(), error);
                if next != MountState::Gone {
                    if let Err(err) =
                        self.services
                            .db
                            .update_mount_status(&self.spec.id, next.as_str(), error)
                    {
                        tracing::error!(mount = %self.spec.id, error = %err, "could not persist mount status");
                    }
                }
                if !matches!(next, MountState::Mounting { .. }) {
                    for waiter in self.waiting.drain(..) {
                        let _ = waiter.send(());
                    }
                }
            }
            Err(refused) => tracing::warn!(mount = %self.spec.id, %refused, "ignored mount event"),
        }
    }

    fn begin_mount(&mut self, ctx: &mut Context<Self>) {
        let engine = self.spec.engine.clone();
        let path = self.spec.mount_path.clone();
        let settings = self.spec.settings;
        let attempt = on_data_runtime(&self.services.data_runtime, async move {
            engine.mount(&path, &settings).await
        });
        ctx.wait(fut::wrap_future::<_, Self>(attempt).map(|outcome, act, ctx| {
            match outcome {
                Ok(Ok(())) => {
                    act.active_since = Some(Instant::now());
                    tracing::info!(mount = %act.spec.id, path = %act.spec.mount_path.display(), "mounted");
                    act.apply(MountEvent::Mounted, None);
                }
                Ok(Err(error)) => {
                    tracing::warn!(mount = %act.spec.id, %error, "mount failed");
                    act.apply(MountEvent::MountFailed, Some(&error));
                    act.schedule_retry(ctx);
                }
                // The attempt failed like any other, so the restarted actor
                // retries after the backoff instead of panicking in a loop.
                Err(panic) => {
                    act.apply(MountEvent::MountFailed, Some(&panic));
                    act.contain_panic(panic, ctx);
                }
            }
        }));
    }

    /// Records a caught panic and stops, so the supervisor restarts the
    /// actor. The engine (with its live mount) is kept: the mount goes on
    /// serving through the restart.
    fn contain_panic(&mut self, panic: String, ctx: &mut Context<Self>) {
        tracing::error!(mount = %self.spec.id, %panic, "mount actor panicked; restarting");
        self.panic_cause = Some(panic);
        ctx.stop();
    }

    fn cancel_retry(&mut self, ctx: &mut Context<Self>) {
        if let Some(retry) = self.retry.take() {
            ctx.cancel_future(retry);
        }
    }

    fn schedule_retry(&mut self, ctx: &mut Context<Self>) {
        let MountState::Error { attempt } = self.state else {
            return;
        };
        let timing = self.services.timing;
        let delay = backoff(attempt, timing.retry_base, timing.retry_max);
        self.retry = Some(ctx.run_later(delay, |act, ctx| {
            act.retry = None;
            act.apply(MountEvent::RetryDue, None);
            act.begin_mount(ctx);
        }));
    }

    /// Leaves `active` for `mounting` and mounts again: at once after a
    /// mount that had been up a while, with growing delays while it keeps
    /// going down soon after coming up (an engine crashing in a loop).
    fn mount_again(&mut self, reason: &str, ctx: &mut Context<Self>) {
        let quick = self
            .active_since
            .take()
            .is_some_and(|since| since.elapsed() < STABLE_AFTER);
        self.quick_losses = if quick { self.quick_losses + 1 } else { 0 };
        self.apply(MountEvent::Lost, Some(reason));
        let timing = self.services.timing;
        let delay = match self.quick_losses {
            0 => Duration::ZERO,
            losses => backoff(losses, timing.retry_base, timing.retry_max),
        };
        self.cancel_retry(ctx);
        self.retry = Some(ctx.run_later(delay, |act, ctx| {
            act.retry = None;
            act.begin_mount(ctx);
        }));
    }

    /// Mounts again when the kernel no longer serves the mount (external
    /// `fusermount3 -u`, an aborted connection, a lazy unmount, a killed
    /// rclone).
    fn watch(&mut self, ctx: &mut Context<Self>) {
        if self.state != MountState::Active {
            return;
        }
        let alive = self.spec.engine.is_serving() && is_mount_point(&self.spec.mount_path);
        if !alive {
            let reason = match self.spec.engine.lost_reason() {
                Some(why) => format!("the mount vanished ({why}); remounting"),
                None => "the mount vanished; remounting".to_string(),
            };
            tracing::warn!(mount = %self.spec.id, %reason, "mounting again");
            self.mount_again(&reason, ctx);
        }
    }
}

impl Actor for MountActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.services.book.register(
            KIND,
            &self.spec.id,
            Some(&self.spec.org),
            self.state.as_str(),
        );
        ctx.run_interval(WATCH_INTERVAL, |act, ctx| act.watch(ctx));
        match self.state {
            MountState::Mounting { .. } => self.begin_mount(ctx),
            MountState::Error { .. } => self.schedule_retry(ctx),
            _ => {}
        }
    }
}

impl Supervised for MountActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        let cause = self
            .panic_cause
            .take()
            .unwrap_or_else(|| "stopped unexpectedly".into());
        self.services
            .book
            .record_restart(KIND, &self.spec.id, &cause);
        // The old context's timers died with it; `started` schedules anew.
        self.retry = None;
    }
}

/// Test-only: panics inside a guarded handler.
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

#[cfg(test)]
impl Handler<Crash> for MountActor {
    type Result = ();

    fn handle(&mut self, _msg: Crash, ctx: &mut Context<Self>) {
        if let Err(panic) = crate::guard::guard(|| panic!("injected")) {
            self.contain_panic(panic, ctx);
        }
    }
}

impl Handler<UpdateSettings> for MountActor {
    type Result = ();

    fn handle(&mut self, msg: UpdateSettings, ctx: &mut Context<Self>) {
        self.spec.settings = msg.0;
        let reconfigured = self.spec.engine.reconfigure(&msg.0);
        if reconfigured == Reconfigured::NeedsRemount && self.state == MountState::Active {
            tracing::info!(mount = %self.spec.id, "mounting again to apply new settings");
            // Not a crash: the next mount is not delayed.
            self.active_since = None;
            self.mount_again("mounting again with new settings", ctx);
        }
    }
}

impl Handler<Settled> for MountActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Settled, _ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if matches!(self.state, MountState::Mounting { .. }) {
            self.waiting.push(tx);
        } else {
            let _ = tx.send(());
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Unmount> for MountActor {
    type Result = AtomicResponse<Self, Result<(), String>>;

    fn handle(&mut self, msg: Unmount, ctx: &mut Context<Self>) -> Self::Result {
        self.cancel_retry(ctx);
        self.apply(MountEvent::Unmount, None);
        // Nothing written is dropped: the engine uploads what is pending
        // first, and keeps the mount up (serving) if it cannot.
        let engine = self.spec.engine.clone();
        let path = self.spec.mount_path.clone();
        let work = on_data_runtime(&self.services.data_runtime, async move {
            engine.unmount(&path).await
        });
        let forget = msg.forget;
        AtomicResponse::new(Box::pin(fut::wrap_future::<_, Self>(work).map(
            move |outcome, act, ctx| {
                // A panic keeps the mount up, like a failed flush, and
                // restarts the actor once the caller has its answer.
                let result = outcome.unwrap_or_else(|panic| {
                    act.contain_panic(panic.clone(), ctx);
                    Err(panic)
                });
                match &result {
                    Ok(()) => {
                        act.apply(MountEvent::Unmounted, None);
                        if forget {
                            act.services.book.remove(KIND, &act.spec.id);
                        }
                    }
                    Err(error) => {
                        tracing::error!(mount = %act.spec.id, %error, "unmount failed");
                        act.services
                            .book
                            .set_state(KIND, &act.spec.id, "unmounting", Some(error));
                    }
                }
                result
            },
        )))
    }
}
