//! One actor per mount: mounts the backend's storage through the VFS, watches
//! that the kernel still serves it (remounting when it vanished behind our
//! back), applies new settings live, and unmounts only after every pending
//! upload is flushed. The data path never passes through this actor: FUSE
//! requests go from the kernel to the `Vfs` on the data runtime.

use super::settings::{CacheModeName, VfsSettings};
use crate::book::ActorBook;
use crate::guard::guard_future;
use crate::mount_state::{transition, MountEvent, MountState};
use crate::state::backoff;
use crate::Timing;
use actix::prelude::*;
use berth_db::Db;
use berth_storage::Storage;
use berth_vfs::{mount, CacheMode, MountHandle, MountOptions, Vfs, VfsConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The actor kind name in the actor book.
pub const KIND: &str = "mount";

/// How often a live mount is checked.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Everything a mount actor needs to start.
pub struct MountSpec {
    /// `mount_` + 32 hex.
    pub id: String,
    /// Owning org.
    pub org: String,
    /// The mounted backend's id.
    pub backend_id: String,
    /// Absolute mount point inside the mount root.
    pub mount_path: PathBuf,
    /// The VFS settings.
    pub settings: VfsSettings,
    /// The backend's live storage, already rooted at the mount's remote path.
    pub storage: Arc<dyn Storage>,
    /// This mount's own cache directory.
    pub cache_dir: PathBuf,
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
    vfs: Option<Arc<Vfs>>,
    session: Option<MountHandle>,
    retry: Option<SpawnHandle>,
    created_dir: bool,
    waiting: Vec<tokio::sync::oneshot::Sender<()>>,
    panic_cause: Option<String>,
}

/// Apply new settings to the live mount.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateSettings(pub VfsSettings);

/// Answers once the mount left `mounting` (active or error).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Settled;

/// Flush pending uploads, then unmount. `forget` also removes the mount
/// point berth created (DELETE); without it the mount stays desired state
/// for the next start (shutdown).
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Unmount {
    /// Remove the mount for good.
    pub forget: bool,
}

/// Files waiting in the write cache of a mount.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct PendingUploads;

/// The VFS settings for the crate's config type.
pub fn vfs_config(settings: &VfsSettings) -> VfsConfig {
    VfsConfig {
        cache_mode: match settings.cache_mode {
            CacheModeName::Off => CacheMode::Off,
            CacheModeName::Minimal => CacheMode::Minimal,
            CacheModeName::Writes => CacheMode::Writes,
            CacheModeName::Full => CacheMode::Full,
        },
        cache_max_age: Duration::from_secs(settings.cache_max_age),
        cache_max_size: settings.cache_max_size,
        dir_cache_time: Duration::from_secs(settings.dir_cache_time),
        ..VfsConfig::default()
    }
}

/// Detaches a dead FUSE mount left at `path` by an earlier run that died
/// (its directory answers ENOTCONN; `stat` alone may still succeed from the
/// kernel's attribute cache, so the directory is opened). Returns whether
/// something was detached.
fn clear_stale_mount(path: &Path) -> bool {
    if !is_mount_point(path) {
        return false;
    }
    match std::fs::read_dir(path) {
        Err(err)
            if matches!(
                err.raw_os_error(),
                Some(libc::ENOTCONN) | Some(libc::ECONNABORTED)
            ) =>
        {
            let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
                return false;
            };
            // SAFETY: a valid NUL-terminated path; umount2 touches no other memory.
            let detached = unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) } == 0;
            if !detached {
                let _ = std::process::Command::new("fusermount3")
                    .arg("-uz")
                    .arg(path)
                    .status();
            }
            tracing::warn!(path = %path.display(), "cleared a dead mount left by an earlier run");
            true
        }
        _ => false,
    }
}

/// Whether `path` is a mount point in this process's mount namespace.
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.to_string_lossy();
    // Field 5 is the mount point, with spaces and friends octal-escaped.
    info.lines().any(|line| {
        line.split(' ').nth(4).is_some_and(|field| {
            field
                .replace("\\040", " ")
                .replace("\\011", "\t")
                .replace("\\012", "\n")
                .replace("\\134", "\\")
                == wanted
        })
    })
}

/// The blocking part of a mount attempt.
struct MountJob {
    path: PathBuf,
    vfs: Option<Arc<Vfs>>,
    storage: Arc<dyn Storage>,
    config: VfsConfig,
    cache_dir: PathBuf,
    runtime: tokio::runtime::Handle,
    fsname: String,
}

impl MountJob {
    fn run(self) -> Result<(Arc<Vfs>, MountHandle, bool), String> {
        clear_stale_mount(&self.path);
        let created = !self.path.exists();
        std::fs::create_dir_all(&self.path)
            .map_err(|e| format!("cannot create {}: {e}", self.path.display()))?;
        if is_mount_point(&self.path) {
            return Err(format!("{} is already a mount point", self.path.display()));
        }
        let not_empty = std::fs::read_dir(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?
            .next()
            .is_some();
        if not_empty {
            return Err(format!("mount path {} is not empty", self.path.display()));
        }
        let vfs = match self.vfs {
            Some(vfs) => vfs,
            None => Vfs::new(self.storage, self.config, self.cache_dir, self.runtime)
                .map_err(|e| e.to_string())?,
        };
        let options = MountOptions {
            fsname: self.fsname,
            ..MountOptions::default()
        };
        let session = mount(vfs.clone(), &self.path, options).map_err(|e| e.to_string())?;
        Ok((vfs, session, created))
    }
}

impl MountActor {
    /// Creates the actor (start it under a `Supervisor`).
    pub fn new(spec: MountSpec, services: MountServices) -> Self {
        MountActor {
            spec,
            services,
            state: MountState::Mounting { attempt: 0 },
            vfs: None,
            session: None,
            retry: None,
            created_dir: false,
            waiting: Vec::new(),
            panic_cause: None,
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
        let job = MountJob {
            path: self.spec.mount_path.clone(),
            vfs: self.vfs.clone(),
            storage: self.spec.storage.clone(),
            config: vfs_config(&self.spec.settings),
            cache_dir: self.spec.cache_dir.clone(),
            runtime: self.services.data_runtime.clone(),
            fsname: format!("berth:{}", self.spec.backend_id),
        };
        let attempt = guard_future(async move {
            tokio::task::spawn_blocking(move || job.run())
                .await
                .map_err(|e| format!("mount task failed: {e}"))?
        });
        ctx.wait(fut::wrap_future::<_, Self>(attempt).map(|outcome, act, ctx| {
            match outcome {
                Ok(Ok((vfs, session, created))) => {
                    act.vfs = Some(vfs);
                    act.session = Some(session);
                    act.created_dir |= created;
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
    /// actor. The live session and the `Vfs` are kept: the mount goes on
    /// serving through the restart.
    fn contain_panic(&mut self, panic: String, ctx: &mut Context<Self>) {
        tracing::error!(mount = %self.spec.id, %panic, "mount actor panicked; restarting");
        self.panic_cause = Some(panic);
        ctx.stop();
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

    /// Remounts when the kernel no longer serves the mount (external
    /// `fusermount3 -u`, an aborted connection, a lazy unmount).
    fn watch(&mut self, ctx: &mut Context<Self>) {
        if self.state != MountState::Active {
            return;
        }
        let alive = self.session.as_ref().is_some_and(|s| s.is_alive())
            && is_mount_point(&self.spec.mount_path);
        if !alive {
            tracing::warn!(mount = %self.spec.id, "mount vanished; mounting again");
            self.services.book.set_state(
                KIND,
                &self.spec.id,
                "mounting",
                Some("the mount vanished; remounting"),
            );
            if let Some(session) = self.session.take() {
                // The kernel side is gone; joining the session threads is quick.
                std::thread::spawn(move || drop(session));
            }
            self.apply(MountEvent::Lost, Some("the mount vanished; remounting"));
            self.begin_mount(ctx);
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

    fn handle(&mut self, msg: UpdateSettings, _ctx: &mut Context<Self>) {
        self.spec.settings = msg.0;
        if let Some(vfs) = &self.vfs {
            vfs.update_config(vfs_config(&msg.0));
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

impl Handler<PendingUploads> for MountActor {
    type Result = usize;

    fn handle(&mut self, _msg: PendingUploads, _ctx: &mut Context<Self>) -> usize {
        self.vfs.as_ref().map_or(0, |vfs| vfs.pending_uploads())
    }
}

impl Handler<Unmount> for MountActor {
    type Result = AtomicResponse<Self, Result<(), String>>;

    fn handle(&mut self, msg: Unmount, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(retry) = self.retry.take() {
            ctx.cancel_future(retry);
        }
        self.apply(MountEvent::Unmount, None);
        // Nothing written is dropped: pending uploads finish first, and the
        // mount stays up (serving) if they cannot.
        let vfs = self.vfs.clone();
        let flush = async move {
            match vfs {
                Some(vfs) => vfs
                    .flush_all()
                    .await
                    .map_err(|e| format!("pending uploads failed: {e}")),
                None => Ok(()),
            }
        };
        let remove_dir = msg.forget && self.created_dir;
        let work =
            fut::wrap_future::<_, Self>(guard_future(flush)).then(move |flushed, act, _ctx| {
                // A panic keeps the mount up, like a failed flush, and
                // restarts the actor once the caller has its answer.
                let flushed = flushed.unwrap_or_else(|panic| {
                    act.panic_cause = Some(panic.clone());
                    Err(panic)
                });
                let session = if flushed.is_ok() {
                    act.session.take()
                } else {
                    None
                };
                let path = act.spec.mount_path.clone();
                fut::wrap_future::<_, Self>(async move {
                    flushed?;
                    tokio::task::spawn_blocking(move || {
                        match session {
                            Some(session) => session.unmount().map_err(|e| e.to_string())?,
                            // Never mounted by this run: detach what a dead one left.
                            None => {
                                clear_stale_mount(&path);
                            }
                        }
                        if remove_dir {
                            let _ = std::fs::remove_dir(&path);
                        }
                        Ok::<_, String>(())
                    })
                    .await
                    .map_err(|e| format!("unmount task failed: {e}"))?
                })
            });
        let forget = msg.forget;
        AtomicResponse::new(Box::pin(work.map(move |result, act, ctx| {
            if let Some(panic) = act.panic_cause.take() {
                act.contain_panic(panic, ctx);
            }
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
        })))
    }
}
