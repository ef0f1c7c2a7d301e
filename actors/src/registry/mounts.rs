//! The registry's mounts: creating, listing, reconfiguring and removing
//! persistent FUSE mounts, and unmounting them all (with their pending
//! uploads flushed) when the service stops.

use super::{ready, Registry, Reply};
use crate::error::RegistryError;
use crate::mount::actor::{
    self, MountActor, MountServices, MountSpec, Settled, Unmount, UpdateSettings,
};
use crate::mount::engine::{MountEngine, NativeEngine, RcloneBackend, RcloneEngine};
use crate::mount::{resolve_mount_path, VfsSettings};
use crate::mount_state::MountState;
use actix::prelude::*;
use berth_db::MountRow;
use berth_engines::BackendLookup;
use berth_storage::{normalize_path, SubPath};
use chrono::Utc;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info_span, Span};

/// How long POST waits for the first mount attempt before answering.
const FIRST_MOUNT_WAIT: Duration = Duration::from_secs(30);

/// One mount held by the registry.
pub(super) struct MountEntry {
    pub(super) row: MountRow,
    settings: VfsSettings,
    addr: Addr<MountActor>,
    /// `native` or `rclone`.
    engine: &'static str,
    unmounting: bool,
}

/// A mount as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MountView {
    /// `mount_` + 32 hex.
    pub id: String,
    /// The mounted backend.
    pub backend_id: String,
    /// Optional label.
    pub label: Option<String>,
    /// Where it is mounted.
    pub mount_path: String,
    /// Sub-path of the backend that is mounted.
    pub remote_path: String,
    /// `mounting`, `active`, `unmounting` or `error`.
    pub status: String,
    /// Why the status is `error`.
    pub error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// The VFS settings.
    pub vfs_config: VfsSettings,
    /// What serves it: `native` (berth's VFS) or `rclone` (`rclone mount`).
    pub engine: &'static str,
}

/// Mount a backend.
#[derive(Message)]
#[rtype(result = "Result<MountView, RegistryError>")]
pub struct CreateMount {
    /// The caller's org.
    pub org: String,
    /// The backend to mount.
    pub backend_id: String,
    /// Optional label.
    pub label: Option<String>,
    /// Requested mount path (see `resolve_mount_path`).
    pub mount_path: Option<String>,
    /// Optional sub-path of the backend.
    pub remote_path: Option<String>,
    /// Optional `vfs_config` object.
    pub vfs_config: Option<serde_json::Value>,
    /// The request span.
    pub span: Span,
}

/// The org's mounts, optionally only those with `label`.
#[derive(Message)]
#[rtype(result = "Vec<MountView>")]
pub struct ListMounts {
    /// The caller's org.
    pub org: String,
    /// Exact label filter.
    pub label: Option<String>,
}

/// One mount.
#[derive(Message)]
#[rtype(result = "Result<MountView, RegistryError>")]
pub struct GetMount {
    /// The caller's org.
    pub org: String,
    /// Mount id.
    pub id: String,
}

/// New VFS settings for a live mount.
#[derive(Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct PatchMount {
    /// The caller's org.
    pub org: String,
    /// Mount id.
    pub id: String,
    /// The `vfs_config` object.
    pub vfs_config: serde_json::Value,
}

/// Unmount (after flushing pending uploads) and forget a mount.
#[derive(Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct DeleteMount {
    /// The caller's org.
    pub org: String,
    /// Mount id.
    pub id: String,
    /// The request span.
    pub span: Span,
}

/// The service is stopping: flush and unmount every mount, keeping them as
/// desired state for the next start.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

fn mount_not_found(id: &str) -> RegistryError {
    RegistryError::NotFound(format!("Mount not found: {id}"))
}

fn new_mount_id() -> String {
    format!("mount_{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// Whether one path is the other or lies inside it.
fn nested(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

impl Registry {
    pub(super) fn mount_services(&self) -> MountServices {
        MountServices {
            db: self.settings.db.clone(),
            book: self.settings.book.clone(),
            timing: self.settings.timing,
            data_runtime: self.settings.data_runtime.clone(),
        }
    }

    /// Starts the actor of a stored mount, with the engine that serves its
    /// backend: `rclone mount` for backends rclone serves, berth's VFS
    /// otherwise. Answers the actor and the engine's name.
    pub(super) fn start_mount(
        &self,
        row: &MountRow,
        settings: VfsSettings,
    ) -> Result<(Addr<MountActor>, &'static str), RegistryError> {
        let backend = self
            .backends
            .get(&row.backend_id)
            .filter(|b| b.row.org == row.org)
            .ok_or_else(RegistryError::backend_not_found)?;
        let cache_dir = self.settings.cache_root.join(&row.id);
        let lookup = self.directory.for_org(&row.org);
        let (engine, name): (Arc<dyn MountEngine>, &'static str) =
            if berth_engines::served_by_rclone(&backend.row.slug, &backend.config, &lookup) {
                let source = RcloneBackend {
                    id: row.backend_id.clone(),
                    slug: backend.row.slug.clone(),
                    config: backend.config.clone(),
                    env: self.settings.env.clone(),
                    lookup,
                };
                let engine = RcloneEngine::new(source, row.remote_path.clone(), cache_dir);
                (Arc::new(engine), "rclone")
            } else {
                let storage = lookup
                    .lookup(&row.backend_id)
                    .map_err(|_| RegistryError::backend_not_found())?;
                let storage = SubPath::wrap(storage, &row.remote_path)
                    .map_err(|e| RegistryError::Invalid(format!("Invalid remote_path: {e}")))?;
                let engine = NativeEngine::new(
                    storage,
                    cache_dir,
                    self.settings.data_runtime.clone(),
                    format!("berth:{}", row.backend_id),
                );
                (Arc::new(engine), "native")
            };
        let spec = MountSpec {
            id: row.id.clone(),
            org: row.org.clone(),
            mount_path: row.mount_path.clone().into(),
            settings,
            engine,
        };
        let services = self.mount_services();
        let addr = Supervisor::start(move |_| MountActor::new(spec, services));
        Ok((addr, name))
    }

    /// Restores every stored mount (called once backends are published).
    pub(super) fn restore_mounts(&mut self, rows: Vec<MountRow>) {
        for row in rows {
            let settings = serde_json::from_str(&row.vfs_config).unwrap_or_default();
            match self.start_mount(&row, settings) {
                Ok((addr, engine)) => {
                    self.mounts.insert(
                        row.id.clone(),
                        MountEntry {
                            row,
                            settings,
                            addr,
                            engine,
                            unmounting: false,
                        },
                    );
                }
                Err(err) => tracing::error!(mount = %row.id, error = %err, "cannot restore mount"),
            }
        }
    }

    fn mount_view(&self, entry: &MountEntry) -> MountView {
        let health = self.settings.book.get(actor::KIND, &entry.row.id);
        let status = health
            .as_ref()
            .map_or_else(|| entry.row.status.clone(), |h| h.state.clone());
        let error = health
            .and_then(|h| h.last_error)
            .filter(|_| status == MountState::Error { attempt: 0 }.as_str());
        MountView {
            id: entry.row.id.clone(),
            backend_id: entry.row.backend_id.clone(),
            label: entry.row.label.clone(),
            mount_path: entry.row.mount_path.clone(),
            remote_path: entry.row.remote_path.clone(),
            status,
            error,
            created_at: entry.row.created_at_ms / 1000,
            vfs_config: entry.settings,
            engine: entry.engine,
        }
    }

    fn find_mount(&self, org: &str, id: &str) -> Result<&MountEntry, RegistryError> {
        self.mounts
            .get(id)
            .filter(|m| m.row.org == org)
            .ok_or_else(|| mount_not_found(id))
    }

    /// Mount paths of a backend (for its `mount_paths`).
    pub(super) fn mount_paths_of(&self, backend_id: &str) -> Vec<String> {
        let mut paths: Vec<String> = self
            .mounts
            .values()
            .filter(|m| m.row.backend_id == backend_id)
            .map(|m| m.row.mount_path.clone())
            .collect();
        paths.sort();
        paths
    }

    /// Whether the backend has any mount (active, mounting or unmounting).
    pub(super) fn is_mounted(&self, backend_id: &str) -> bool {
        self.mounts.values().any(|m| m.row.backend_id == backend_id)
    }

    /// 409 while the backend has any mount.
    pub(super) fn refuse_if_mounted(&self, backend_id: &str) -> Result<(), RegistryError> {
        if self.is_mounted(backend_id) {
            return Err(RegistryError::Conflict(
                "Backend has active mounts; unmount first".into(),
            ));
        }
        Ok(())
    }

    fn create_mount(&mut self, msg: CreateMount) -> Reply<MountView> {
        let backend = match self.find(&msg.org, &msg.backend_id) {
            Ok(backend) => backend,
            Err(_) => {
                return ready(Err(RegistryError::NotFound(format!(
                    "Backend not found: {}",
                    msg.backend_id
                ))))
            }
        };
        if backend.busy.is_some() {
            return ready(Err(RegistryError::Conflict(
                "Backend credentials are being rotated; retry later".into(),
            )));
        }
        let settings = match msg
            .vfs_config
            .as_ref()
            .map_or(Ok(VfsSettings::default()), |v| {
                VfsSettings::default().merged(v)
            }) {
            Ok(settings) => settings,
            Err(message) => return ready(Err(RegistryError::Invalid(message))),
        };
        let remote_path = match normalize_path(msg.remote_path.as_deref().unwrap_or("")) {
            Ok(path) => path,
            Err(_) => {
                return ready(Err(RegistryError::Invalid(
                    "Invalid remote_path: '..' is not allowed".into(),
                )))
            }
        };
        let id = new_mount_id();
        let path =
            match resolve_mount_path(&self.settings.mount_root, msg.mount_path.as_deref(), &id) {
                Ok(path) => path,
                Err(message) => return ready(Err(RegistryError::Invalid(message))),
            };
        if let Some(other) = self
            .mounts
            .values()
            .find(|m| nested(Path::new(&m.row.mount_path), &path))
        {
            return ready(Err(RegistryError::Conflict(format!(
                "Mount path {} overlaps mount {} at {}",
                path.display(),
                other.row.id,
                other.row.mount_path
            ))));
        }
        let created_mount_point = !path.exists();
        match std::fs::read_dir(&path).map(|mut entries| entries.next().is_some()) {
            Ok(true) => {
                return ready(Err(RegistryError::Conflict(format!(
                    "Mount path {} is not empty",
                    path.display()
                ))))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotADirectory => {
                return ready(Err(RegistryError::Conflict(format!(
                    "Mount path {} is a file",
                    path.display()
                ))))
            }
            _ => {}
        }
        let row = MountRow {
            id,
            org: msg.org,
            backend_id: msg.backend_id,
            label: msg.label.filter(|l| !l.is_empty()),
            mount_path: path.display().to_string(),
            remote_path,
            vfs_config: serde_json::to_string(&settings).expect("settings serialize"),
            status: MountState::Mounting { attempt: 0 }.as_str().into(),
            last_error: None,
            created_at_ms: Utc::now().timestamp_millis(),
            created_mount_point,
        };
        if let Err(err) = self.settings.db.insert_mount(&row) {
            return ready(Err(super::db_error(err)));
        }
        let (addr, engine) = match self.start_mount(&row, settings) {
            Ok(started) => started,
            Err(err) => {
                let _ = self.settings.db.delete_mount(&row.id);
                return ready(Err(err));
            }
        };
        let id = row.id.clone();
        self.mounts.insert(
            id.clone(),
            MountEntry {
                row,
                settings,
                addr: addr.clone(),
                engine,
                unmounting: false,
            },
        );
        let settled = tokio::time::timeout(FIRST_MOUNT_WAIT, addr.send(Settled));
        Box::pin(
            fut::wrap_future::<_, Self>(settled).map(move |_, act, _ctx| {
                act.mounts
                    .get(&id)
                    .map(|entry| act.mount_view(entry))
                    .ok_or_else(|| mount_not_found(&id))
            }),
        )
    }

    fn delete_mount(&mut self, msg: DeleteMount) -> Reply<()> {
        let entry = match self
            .mounts
            .get_mut(&msg.id)
            .filter(|m| m.row.org == msg.org)
        {
            Some(entry) => entry,
            None => return ready(Err(mount_not_found(&msg.id))),
        };
        entry.unmounting = true;
        let unmount = entry.addr.send(Unmount { forget: true });
        let id = msg.id;
        Box::pin(fut::wrap_future::<_, Self>(unmount).map(move |outcome, act, _ctx| {
            match outcome {
                Ok(Ok(())) => {
                    act.settings.db.delete_mount(&id).map_err(super::db_error)?;
                    if let Some(entry) = act.mounts.remove(&id) {
                        if entry.row.created_mount_point {
                            // Only when empty: never what someone put there.
                            let _ = std::fs::remove_dir(&entry.row.mount_path);
                        }
                    }
                    let cache_dir = act.settings.cache_root.join(&id);
                    if let Err(err) = std::fs::remove_dir_all(&cache_dir) {
                        if err.kind() != std::io::ErrorKind::NotFound {
                            tracing::warn!(mount = %id, error = %err, "could not remove the mount's cache");
                        }
                    }
                    Ok(())
                }
                Ok(Err(message)) => {
                    if let Some(entry) = act.mounts.get_mut(&id) {
                        entry.unmounting = false;
                    }
                    Err(RegistryError::Conflict(format!("Mount kept: {message}")))
                }
                Err(mailbox) => Err(RegistryError::Internal(format!("mount actor unavailable: {mailbox}"))),
            }
        }))
    }
}

impl Handler<CreateMount> for Registry {
    type Result = Reply<MountView>;

    fn handle(&mut self, msg: CreateMount, ctx: &mut Context<Self>) -> Self::Result {
        let span =
            info_span!(parent: &msg.span, "registry.create_mount", backend = %msg.backend_id);
        let _entered = span.enter();
        self.guarded(ctx, |act, _| act.create_mount(msg))
    }
}

impl Handler<ListMounts> for Registry {
    type Result = Vec<MountView>;

    fn handle(&mut self, msg: ListMounts, _ctx: &mut Context<Self>) -> Self::Result {
        let mut entries: Vec<&MountEntry> = self
            .mounts
            .values()
            .filter(|m| m.row.org == msg.org)
            .filter(|m| {
                msg.label
                    .as_ref()
                    .is_none_or(|label| m.row.label.as_ref() == Some(label))
            })
            .collect();
        entries.sort_by_key(|m| (m.row.created_at_ms, &m.row.id));
        entries.into_iter().map(|m| self.mount_view(m)).collect()
    }
}

impl Handler<GetMount> for Registry {
    type Result = Result<MountView, RegistryError>;

    fn handle(&mut self, msg: GetMount, _ctx: &mut Context<Self>) -> Self::Result {
        self.find_mount(&msg.org, &msg.id)
            .map(|m| self.mount_view(m))
    }
}

impl Handler<PatchMount> for Registry {
    type Result = Result<(), RegistryError>;

    fn handle(&mut self, msg: PatchMount, _ctx: &mut Context<Self>) -> Self::Result {
        let entry = self
            .mounts
            .get_mut(&msg.id)
            .filter(|m| m.row.org == msg.org)
            .ok_or_else(|| mount_not_found(&msg.id))?;
        let settings = entry
            .settings
            .merged(&msg.vfs_config)
            .map_err(RegistryError::Invalid)?;
        let text = serde_json::to_string(&settings).expect("settings serialize");
        self.settings
            .db
            .update_mount_vfs_config(&msg.id, &text)
            .map_err(super::db_error)?;
        entry.settings = settings;
        entry.row.vfs_config = text;
        entry.addr.do_send(UpdateSettings(settings));
        Ok(())
    }
}

impl Handler<DeleteMount> for Registry {
    type Result = Reply<()>;

    fn handle(&mut self, msg: DeleteMount, ctx: &mut Context<Self>) -> Self::Result {
        let span = info_span!(parent: &msg.span, "registry.delete_mount", mount = %msg.id);
        let _entered = span.enter();
        self.guarded(ctx, |act, _| act.delete_mount(msg))
    }
}

impl Handler<Shutdown> for Registry {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Shutdown, _ctx: &mut Context<Self>) -> Self::Result {
        let unmounts: Vec<_> = self
            .mounts
            .values()
            .map(|m| (m.row.id.clone(), m.addr.send(Unmount { forget: false })))
            .collect();
        let unmounted = async move {
            for (id, unmount) in unmounts {
                match unmount.await {
                    Ok(Ok(())) => tracing::info!(mount = %id, "unmounted for shutdown"),
                    Ok(Err(error)) => {
                        tracing::error!(mount = %id, %error, "could not unmount cleanly")
                    }
                    Err(error) => tracing::error!(mount = %id, %error, "mount actor unavailable"),
                }
            }
        };
        // rclone children may have refreshed tokens until they exited.
        Box::pin(
            fut::wrap_future::<_, Self>(unmounted).map(|(), act, _| act.keep_refreshed_tokens()),
        )
    }
}

/// Test-only: the address of a mount actor.
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "Option<Addr<MountActor>>")]
pub struct MountAddr(pub String);

#[cfg(test)]
impl Handler<MountAddr> for Registry {
    type Result = Option<Addr<MountActor>>;

    fn handle(&mut self, msg: MountAddr, _ctx: &mut Context<Self>) -> Self::Result {
        self.mounts.get(&msg.0).map(|entry| entry.addr.clone())
    }
}
