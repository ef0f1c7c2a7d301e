//! One actor per backend: builds its driver, probes the remote, walks the
//! state machine of [`crate::state`], persists every transition and retries
//! failures with capped exponential backoff.

use crate::book::ActorBook;
use crate::directory::OrgLookup;
use crate::guard::guard_future;
use crate::state::{backoff, transition, BackendEvent, BackendState};
use crate::Timing;
use actix::prelude::*;
use berth_db::Db;
use berth_engines::{BuildContext, EngineEnv};
use berth_storage::catalog::Config;
use berth_storage::{ErrorKind, Retry, RetryPolicy, Storage, StorageError, Swappable, Traced};
use std::sync::Arc;
use tracing::{info_span, Instrument, Span};

/// The actor kind name in the actor book.
pub const KIND: &str = "backend";

/// Everything a backend actor needs to start.
pub struct BackendSpec {
    /// Backend id.
    pub id: String,
    /// Owning org.
    pub org: String,
    /// Provider slug.
    pub slug: String,
    /// Validated config (plaintext, in memory only).
    pub config: Config,
    /// State to start in (restored from the database, or connecting).
    pub state: BackendState,
    /// Probe as soon as the actor starts (restored backends).
    pub probe_on_start: bool,
    /// Where the live driver is published for wrappers referencing this backend.
    pub handle: Arc<Swappable>,
    /// The other backends of the org, for wrapper backends.
    pub lookup: OrgLookup,
}

/// Shared services handed to every backend actor.
#[derive(Clone)]
pub struct BackendServices {
    /// Where transitions are persisted.
    pub db: Db,
    /// Where health is reported.
    pub book: ActorBook,
    /// What engines need from the configuration.
    pub env: EngineEnv,
    /// Probe timeout and retry policy.
    pub timing: Timing,
}

/// The backend actor.
pub struct BackendActor {
    spec: BackendSpec,
    services: BackendServices,
    storage: Option<Arc<dyn Storage>>,
    retry: Option<SpawnHandle>,
    panic_cause: Option<String>,
}

/// Probe the remote now; answers with the probe's outcome.
#[derive(Message)]
#[rtype(result = "Result<(), StorageError>")]
pub struct Probe {
    /// The caller's span.
    pub span: Span,
}

/// Build and probe a driver from candidate credentials without touching the
/// live one; answers with the checked driver to [`Adopt`].
#[derive(Message)]
#[rtype(result = "Result<Arc<dyn Storage>, StorageError>")]
pub struct CheckCredentials {
    /// The config with the new credentials.
    pub config: Config,
    /// The caller's span.
    pub span: Span,
}

/// Switch to a config and driver that [`CheckCredentials`] approved.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Adopt {
    /// The new config.
    pub config: Config,
    /// The checked driver.
    pub storage: Arc<dyn Storage>,
}

/// A backend this one's rclone child defines has new credentials: drop the
/// engine and build it again from the current definitions.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Rebuild;

/// The stored config changed without new credentials (a token rclone
/// refreshed): builds from now on use it; the live driver stays.
#[derive(Message)]
#[rtype(result = "()")]
pub struct KeepConfig {
    /// The config as now stored.
    pub config: Config,
}

/// The backend is being deleted: go to `gone`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect;

/// What a probe produced: the driver (when one was built) and the outcome.
type ProbeOutcome = (Option<Arc<dyn Storage>>, Result<(), StorageError>);

/// The inputs of one build-and-probe, owned so the future can outlive the actor's borrow.
struct ProbeJob {
    id: String,
    slug: String,
    config: Config,
    env: EngineEnv,
    lookup: OrgLookup,
    existing: Option<Arc<dyn Storage>>,
    timing: Timing,
}

impl ProbeJob {
    /// Builds the engine (when needed): traced, with transient failures
    /// retried in one layer.
    async fn build(&self) -> Result<Arc<dyn Storage>, StorageError> {
        if let Some(storage) = &self.existing {
            return Ok(storage.clone());
        }
        let ctx = BuildContext {
            backend_id: &self.id,
            env: &self.env,
            backends: &self.lookup,
        };
        let engine = berth_engines::build(&self.slug, &self.config, &ctx).await?;
        let retried: Arc<dyn Storage> = Arc::new(Retry::new(engine, RetryPolicy::default()));
        Ok(Arc::new(Traced::new(retried, self.id.clone())))
    }

    /// Builds (when needed) and probes, bounded by the probe timeout.
    async fn run(self) -> ProbeOutcome {
        let work = async {
            let storage = self.build().await?;
            let probed = storage.probe().await;
            Ok::<_, StorageError>((storage, probed))
        };
        match tokio::time::timeout(self.timing.probe_timeout, work).await {
            Ok(Ok((storage, probed))) => (Some(storage), probed),
            Ok(Err(build_error)) => (None, Err(build_error)),
            Err(_) => (
                None,
                Err(StorageError::new(
                    ErrorKind::Transient,
                    format!(
                        "the remote did not answer within {}s",
                        self.timing.probe_timeout.as_secs()
                    ),
                )),
            ),
        }
    }
}

impl BackendActor {
    /// Creates the actor (start it under a `Supervisor`).
    pub fn new(spec: BackendSpec, services: BackendServices) -> Self {
        BackendActor {
            spec,
            services,
            storage: None,
            retry: None,
            panic_cause: None,
        }
    }

    fn apply(&mut self, event: BackendEvent, error: Option<&str>) {
        match transition(self.spec.state, event) {
            Ok(next) => {
                self.spec.state = next;
                self.services
                    .book
                    .set_state(KIND, &self.spec.id, next.as_str(), error);
                if next != BackendState::Gone {
                    match self
                        .services
                        .db
                        .update_backend_state(&self.spec.id, next.as_str(), error)
                    {
                        // A backend being created is stored only once its
                        // first probe succeeded, with the state it reached.
                        Ok(()) | Err(berth_db::DbError::NotFound(_)) => {}
                        Err(err) => {
                            tracing::error!(backend = %self.spec.id, error = %err, "could not persist backend state")
                        }
                    }
                }
            }
            Err(refused) => {
                tracing::warn!(backend = %self.spec.id, %refused, "ignored backend event");
            }
        }
    }

    fn cancel_retry(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.retry.take() {
            ctx.cancel_future(handle);
        }
    }

    /// Moves a connected or failed backend back to probing.
    fn begin_probe(&mut self, ctx: &mut Context<Self>) {
        self.cancel_retry(ctx);
        if !matches!(self.spec.state, BackendState::Connecting { .. }) {
            self.apply(BackendEvent::Reprobe, None);
        }
    }

    fn job(&self, config: Config, existing: Option<Arc<dyn Storage>>) -> ProbeJob {
        ProbeJob {
            id: self.spec.id.clone(),
            slug: self.spec.slug.clone(),
            config,
            env: self.services.env.clone(),
            lookup: self.spec.lookup.clone(),
            existing,
            timing: self.services.timing,
        }
    }

    /// Installs (or removes) the live driver, for this actor and for wrappers.
    fn install(&mut self, storage: Option<Arc<dyn Storage>>) {
        self.spec.handle.set(storage.clone());
        self.storage = storage;
    }

    /// Probes now; other messages wait until the probe is done.
    fn probe_before_anything_else(&mut self, span: Span, ctx: &mut Context<Self>) {
        let probe = self.probe(span).map(|_, _, _| ());
        ctx.wait(probe);
    }

    /// The probe as an actor future that records its outcome.
    fn probe(&mut self, span: Span) -> impl ActorFuture<Self, Output = Result<(), StorageError>> {
        let fut = self
            .job(self.spec.config.clone(), self.storage.clone())
            .run();
        fut::wrap_future::<_, Self>(guard_future(fut).instrument(span))
            .map(|outcome, act, ctx| act.finish_probe(outcome, ctx))
    }

    fn finish_probe(
        &mut self,
        outcome: Result<ProbeOutcome, String>,
        ctx: &mut Context<Self>,
    ) -> Result<(), StorageError> {
        let (storage, probed) = match outcome {
            Ok(done) => done,
            Err(panic) => {
                self.contain_panic(panic, ctx);
                return Err(StorageError::new(
                    ErrorKind::Other,
                    "internal error while probing; the backend actor was restarted",
                ));
            }
        };
        if storage.is_some() {
            self.install(storage);
        }
        match &probed {
            Ok(()) => self.apply(BackendEvent::ProbeSucceeded, None),
            Err(err) => {
                self.apply(BackendEvent::ProbeFailed, Some(&err.message));
                self.schedule_retry(ctx);
            }
        }
        probed
    }

    /// Records a caught panic and stops, so the supervisor restarts the actor.
    fn contain_panic(&mut self, panic: String, ctx: &mut Context<Self>) {
        tracing::error!(backend = %self.spec.id, %panic, "backend actor panicked; restarting");
        self.panic_cause = Some(panic);
        ctx.stop();
    }

    fn schedule_retry(&mut self, ctx: &mut Context<Self>) {
        let BackendState::Failed { attempt } = self.spec.state else {
            return;
        };
        let timing = self.services.timing;
        let delay = backoff(attempt, timing.retry_base, timing.retry_max);
        self.retry = Some(ctx.run_later(delay, |act, ctx| {
            act.retry = None;
            act.apply(BackendEvent::RetryDue, None);
            let span = info_span!("backend.retry", backend = %act.spec.id);
            act.probe_before_anything_else(span, ctx);
        }));
    }
}

impl Actor for BackendActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let id = self.spec.id.clone();
        self.services
            .book
            .register(KIND, &id, Some(&self.spec.org), self.spec.state.as_str());
        match self.spec.state {
            BackendState::Gone => ctx.stop(),
            BackendState::Failed { .. } => self.schedule_retry(ctx),
            _ if self.spec.probe_on_start => {
                self.begin_probe(ctx);
                let span = info_span!("backend.start_probe", backend = %id);
                self.probe_before_anything_else(span, ctx);
            }
            _ => {}
        }
    }
}

impl Supervised for BackendActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        let cause = self
            .panic_cause
            .take()
            .unwrap_or_else(|| "stopped unexpectedly".into());
        self.services
            .book
            .record_restart(KIND, &self.spec.id, &cause);
        self.retry = None;
        self.install(None);
        self.spec.probe_on_start = true;
    }
}

impl Handler<Probe> for BackendActor {
    type Result = AtomicResponse<Self, Result<(), StorageError>>;

    fn handle(&mut self, msg: Probe, ctx: &mut Context<Self>) -> Self::Result {
        let span = info_span!(parent: &msg.span, "backend.probe", backend = %self.spec.id);
        self.begin_probe(ctx);
        AtomicResponse::new(Box::pin(self.probe(span)))
    }
}

impl Handler<CheckCredentials> for BackendActor {
    type Result = ResponseFuture<Result<Arc<dyn Storage>, StorageError>>;

    fn handle(&mut self, msg: CheckCredentials, _ctx: &mut Context<Self>) -> Self::Result {
        let span =
            info_span!(parent: &msg.span, "backend.check_credentials", backend = %self.spec.id);
        let fut = self.job(msg.config, None).run();
        Box::pin(
            async move {
                match guard_future(fut).await {
                    Ok((Some(storage), Ok(()))) => Ok(storage),
                    Ok((_, Err(err))) => Err(err),
                    Ok((None, Ok(()))) => {
                        Err(StorageError::new(ErrorKind::Other, "no driver was built"))
                    }
                    Err(panic) => Err(StorageError::new(ErrorKind::Other, panic)),
                }
            }
            .instrument(span),
        )
    }
}

impl Handler<Adopt> for BackendActor {
    type Result = ();

    fn handle(&mut self, msg: Adopt, ctx: &mut Context<Self>) {
        self.spec.config = msg.config;
        self.install(Some(msg.storage));
        self.begin_probe(ctx);
        self.apply(BackendEvent::ProbeSucceeded, None);
    }
}

impl Handler<Rebuild> for BackendActor {
    type Result = ();

    fn handle(&mut self, _msg: Rebuild, ctx: &mut Context<Self>) {
        self.install(None);
        self.begin_probe(ctx);
        let span = info_span!("backend.rebuild", backend = %self.spec.id);
        self.probe_before_anything_else(span, ctx);
    }
}

impl Handler<KeepConfig> for BackendActor {
    type Result = ();

    fn handle(&mut self, msg: KeepConfig, _ctx: &mut Context<Self>) {
        self.spec.config = msg.config;
    }
}

impl Handler<Disconnect> for BackendActor {
    type Result = ();

    fn handle(&mut self, _msg: Disconnect, ctx: &mut Context<Self>) {
        self.cancel_retry(ctx);
        self.apply(BackendEvent::Disconnect, None);
        self.install(None);
        self.apply(BackendEvent::Disconnected, None);
        self.services.book.remove(KIND, &self.spec.id);
    }
}

/// Test-only: panics inside a guarded handler.
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

#[cfg(test)]
impl Handler<Crash> for BackendActor {
    type Result = ();

    fn handle(&mut self, _msg: Crash, ctx: &mut Context<Self>) {
        if let Err(panic) = crate::guard::guard(|| panic!("injected")) {
            self.contain_panic(panic, ctx);
        }
    }
}
