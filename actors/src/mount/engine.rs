//! What serves a mount, behind the one interface the mount actor drives:
//! berth's own VFS over the backend's storage ([`NativeEngine`]), or an
//! `rclone mount` child for backends that rclone serves ([`RcloneEngine`]).
//! The actor owns the lifecycle (states, retries, watching); an engine does
//! the work, on the data runtime, and never loses what waits to upload.

use super::settings::VfsSettings;
use crate::directory::OrgLookup;
use async_trait::async_trait;
use berth_engines::{BuildContext, EngineEnv};
use berth_rclone::RcloneMount;
use berth_storage::catalog::Config;
use berth_storage::Storage;
use berth_vfs::{mount, MountHandle, MountOptions, Vfs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long rclone gets to show its mount in the kernel's table.
const RCLONE_MOUNT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an unmount of an rclone mount waits for rclone's upload queue
/// to empty before it gives up and leaves the mount up.
const RCLONE_DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

/// How new settings reach a live mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconfigured {
    /// The live mount uses them now.
    Live,
    /// They take effect when the engine mounts again.
    NeedsRemount,
}

/// An engine that serves one mount.
#[async_trait]
pub trait MountEngine: Send + Sync {
    /// Mounts at `path` with `settings` and returns once the kernel serves
    /// it. Whatever the engine still held from an earlier mount (a lost
    /// session, a child whose mount vanished) is let go of first, without
    /// dropping what waits to upload. A dead FUSE mount left at `path` is
    /// cleared and a missing directory created; any other mount there, or a
    /// non-empty directory, fails.
    async fn mount(&self, path: &Path, settings: &VfsSettings) -> Result<(), String>;
    /// Whether the engine's side of the mount still runs (the actor checks
    /// the kernel's mount table too).
    fn is_serving(&self) -> bool;
    /// Why the engine's side stopped, when it can tell (shown in the actor
    /// book until the mount is back).
    fn lost_reason(&self) -> Option<String> {
        None
    }
    /// Applies new settings to the live mount, or says when they apply.
    fn reconfigure(&self, settings: &VfsSettings) -> Reconfigured;
    /// Uploads everything pending, then unmounts `path`. On failure the
    /// mount stays up and serving.
    async fn unmount(&self, path: &Path) -> Result<(), String>;
}

/// Detaches a dead FUSE mount left at `path` by an earlier run that died
/// (its directory answers ENOTCONN; `stat` alone may still succeed from the
/// kernel's attribute cache, so the directory is opened). Returns whether
/// something was detached.
pub fn clear_stale_mount(path: &Path) -> bool {
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

/// Makes `path` ready to be mounted on: a dead mount is cleared, a missing
/// directory created; a live mount or a non-empty directory is refused.
fn prepare_mount_point(path: &Path) -> Result<(), String> {
    clear_stale_mount(path);
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    if is_mount_point(path) {
        return Err(format!("{} is already a mount point", path.display()));
    }
    let not_empty = std::fs::read_dir(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .next()
        .is_some();
    if not_empty {
        return Err(format!("mount path {} is not empty", path.display()));
    }
    Ok(())
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("mount task failed: {e}"))?
}

/// berth's VFS over the backend's storage, served by fuser. The `Vfs` (and
/// with it the write cache and its pending uploads) lives as long as the
/// engine, across remounts.
pub struct NativeEngine {
    storage: Arc<dyn Storage>,
    cache_dir: PathBuf,
    runtime: tokio::runtime::Handle,
    fsname: String,
    vfs: Mutex<Option<Arc<Vfs>>>,
    session: Mutex<Option<MountHandle>>,
}

impl NativeEngine {
    /// An engine over `storage` (already rooted at the mount's remote path),
    /// caching under `cache_dir`, serving FUSE requests on `runtime`.
    pub fn new(
        storage: Arc<dyn Storage>,
        cache_dir: PathBuf,
        runtime: tokio::runtime::Handle,
        fsname: String,
    ) -> Self {
        NativeEngine {
            storage,
            cache_dir,
            runtime,
            fsname,
            vfs: Mutex::new(None),
            session: Mutex::new(None),
        }
    }

    fn vfs(&self) -> Option<Arc<Vfs>> {
        self.vfs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn take_session(&self) -> Option<MountHandle> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

#[async_trait]
impl MountEngine for NativeEngine {
    async fn mount(&self, path: &Path, settings: &VfsSettings) -> Result<(), String> {
        let old_session = self.take_session();
        let vfs = match self.vfs() {
            Some(vfs) => {
                vfs.update_config(settings.vfs_config());
                vfs
            }
            None => {
                let vfs = Vfs::new(
                    self.storage.clone(),
                    settings.vfs_config(),
                    self.cache_dir.clone(),
                    self.runtime.clone(),
                )
                .map_err(|e| e.to_string())?;
                *self.vfs.lock().unwrap_or_else(|e| e.into_inner()) = Some(vfs.clone());
                vfs
            }
        };
        let options = MountOptions {
            fsname: self.fsname.clone(),
            ..MountOptions::default()
        };
        let path = path.to_path_buf();
        let session = blocking(move || {
            // The kernel side of a lost session is gone; joining its threads is quick.
            drop(old_session);
            prepare_mount_point(&path)?;
            mount(vfs, &path, options).map_err(|e| e.to_string())
        })
        .await?;
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(session);
        Ok(())
    }

    fn is_serving(&self) -> bool {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|s| s.is_alive())
    }

    fn reconfigure(&self, settings: &VfsSettings) -> Reconfigured {
        if let Some(vfs) = self.vfs() {
            vfs.update_config(settings.vfs_config());
        }
        Reconfigured::Live
    }

    async fn unmount(&self, path: &Path) -> Result<(), String> {
        if let Some(vfs) = self.vfs() {
            vfs.flush_all()
                .await
                .map_err(|e| format!("pending uploads failed: {e}"))?;
        }
        let session = self.take_session();
        let path = path.to_path_buf();
        blocking(move || {
            match session {
                Some(session) => session.unmount().map_err(|e| e.to_string())?,
                // Never mounted by this run: detach what a dead one left.
                None => {
                    clear_stale_mount(&path);
                }
            }
            Ok(())
        })
        .await
    }
}

/// The backend an [`RcloneEngine`] mounts, as the backend actor builds it:
/// the remote definition is made anew for each mount (a local root is
/// checked again each time).
pub struct RcloneBackend {
    /// Backend id (its remote's name derives from it).
    pub id: String,
    /// Provider slug.
    pub slug: String,
    /// Validated config (plaintext, in memory only).
    pub config: Config,
    /// Engine settings (the rclone binary).
    pub env: EngineEnv,
    /// The org's other backends.
    pub lookup: OrgLookup,
}

/// `rclone mount` of a backend rclone serves, as a child process. Its VFS
/// cache lives in the mount's cache directory under a remote name that is
/// stable for the backend, so a new child uploads what an earlier one left
/// queued (after a crash, or an external kill).
pub struct RcloneEngine {
    backend: RcloneBackend,
    remote_path: String,
    cache_dir: PathBuf,
    child: tokio::sync::Mutex<Option<RcloneMount>>,
}

impl RcloneEngine {
    /// An engine mounting `remote_path` of `backend`, keeping rclone's cache
    /// and run directory (remote-control socket, log) under `cache_dir`.
    pub fn new(backend: RcloneBackend, remote_path: String, cache_dir: PathBuf) -> Self {
        RcloneEngine {
            backend,
            remote_path,
            cache_dir,
            child: tokio::sync::Mutex::new(None),
        }
    }
}

/// `root/sub` with neither part's slashes doubled.
fn join_remote_path(root: &str, sub: &str) -> String {
    let sub = sub.trim_matches('/');
    if sub.is_empty() {
        return root.to_string();
    }
    if root.is_empty() {
        return sub.to_string();
    }
    format!("{}/{sub}", root.trim_end_matches('/'))
}

#[async_trait]
impl MountEngine for RcloneEngine {
    async fn mount(&self, path: &Path, settings: &VfsSettings) -> Result<(), String> {
        let mut child = self.child.lock().await;
        // A child whose mount vanished may still hold queued uploads (an
        // aborted FUSE connection leaves rclone running): drained first.
        if let Some(old) = child.as_mut() {
            old.unmount(RCLONE_DRAIN_TIMEOUT)
                .await
                .map_err(|e| format!("the previous rclone mount did not stop: {e}"))?;
            *child = None;
        }
        let backend = &self.backend;
        let ctx = BuildContext {
            backend_id: &backend.id,
            env: &backend.env,
            backends: &backend.lookup,
        };
        let source = berth_engines::rclone_mount_source(&backend.slug, &backend.config, &ctx)
            .await
            .map_err(|e| e.message)?;
        let target = join_remote_path(&source.root, &self.remote_path);
        let prepared = path.to_path_buf();
        blocking(move || prepare_mount_point(&prepared)).await?;
        let mut started = RcloneMount::spawn(
            &source.rclone,
            &source.remotes,
            &target,
            path,
            &settings.rclone_flags(),
            &self.cache_dir.join("vfs"),
            &self.cache_dir.join("run"),
        )
        .await
        .map_err(|e| e.to_string())?;
        // On failure the child is dropped, which stops it.
        started
            .wait_mounted(RCLONE_MOUNT_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        *child = Some(started);
        Ok(())
    }

    fn is_serving(&self) -> bool {
        // Busy means mounting or unmounting: not lost.
        self.child.try_lock().map_or(true, |mut child| {
            child.as_mut().is_some_and(|c| c.is_alive())
        })
    }

    fn lost_reason(&self) -> Option<String> {
        self.child
            .try_lock()
            .ok()?
            .as_mut()
            .and_then(RcloneMount::exit_reason)
    }

    fn reconfigure(&self, _settings: &VfsSettings) -> Reconfigured {
        // rclone takes its VFS flags at start only.
        Reconfigured::NeedsRemount
    }

    async fn unmount(&self, path: &Path) -> Result<(), String> {
        let mut child = self.child.lock().await;
        match child.as_mut() {
            Some(running) => {
                running
                    .unmount(RCLONE_DRAIN_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string())?;
                *child = None;
                Ok(())
            }
            None => {
                let path = path.to_path_buf();
                blocking(move || {
                    clear_stale_mount(&path);
                    Ok(())
                })
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::join_remote_path;

    #[test]
    fn remote_paths_join_without_doubled_slashes() {
        assert_eq!(join_remote_path("", ""), "");
        assert_eq!(join_remote_path("", "bucket/dir/"), "bucket/dir");
        assert_eq!(join_remote_path("/srv/data", ""), "/srv/data");
        assert_eq!(join_remote_path("/srv/data/", "/sub"), "/srv/data/sub");
        assert_eq!(join_remote_path("/", "sub"), "/sub");
        assert_eq!(join_remote_path("/", ""), "/");
        assert_eq!(join_remote_path("base", "sub"), "base/sub");
    }
}
