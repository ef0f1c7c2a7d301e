//! `rclone mount` as a supervised child.

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::process::Child;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::binary::{spawn, OnParentDeath, Rclone};
use crate::rc::{self, RcClient};
use crate::remote::Remotes;
use crate::secret::Scrubber;
use crate::stderr::{gist, parse_line};
use crate::RcloneError;

/// rclone's filesystem type in `/proc/self/mountinfo`.
const FSTYPE: &str = "fuse.rclone";
/// Name of the rc socket in the mount's run directory.
const RC_SOCKET: &str = "rc.sock";
/// Name of rclone's log (its stderr) in the mount's run directory.
const LOG_FILE: &str = "rclone.log";
/// How often the log is read for new lines.
const LOG_POLL: Duration = Duration::from_millis(200);
/// The log is emptied once it has grown past this many bytes.
const LOG_MAX: u64 = 4 << 20;
/// How much of the log's end an error message is made from.
const LOG_TAIL: u64 = 64 << 10;
/// Longest unix socket path (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// How often mount state and the upload queue are polled.
const POLL: Duration = Duration::from_millis(100);
/// How long rclone gets to unmount and exit after `SIGTERM`.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// rclone's `--vfs-cache-mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CacheMode {
    /// No disk cache.
    Off,
    /// Only files opened for read and write go through the cache.
    Minimal,
    /// Files opened for writing go through the cache, uploaded `write_back`
    /// after their last close.
    #[default]
    Writes,
    /// All reads and writes go through the cache.
    Full,
}

impl CacheMode {
    fn as_str(self) -> &'static str {
        match self {
            CacheMode::Off => "off",
            CacheMode::Minimal => "minimal",
            CacheMode::Writes => "writes",
            CacheMode::Full => "full",
        }
    }
}

/// The VFS settings of a mount, as rclone flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfsFlags {
    /// `--vfs-cache-mode`.
    pub cache_mode: CacheMode,
    /// `--vfs-cache-max-age`.
    pub cache_max_age: Duration,
    /// `--vfs-cache-max-size`, in bytes.
    pub cache_max_size: u64,
    /// `--dir-cache-time`.
    pub dir_cache_time: Duration,
    /// `--vfs-write-back` (rclone's default, 5 s, when `None`).
    pub write_back: Option<Duration>,
}

impl Default for VfsFlags {
    /// berth's API defaults: `writes`, 1 h, 10 GiB, 5 min, rclone's write-back.
    fn default() -> Self {
        VfsFlags {
            cache_mode: CacheMode::Writes,
            cache_max_age: Duration::from_secs(3600),
            cache_max_size: 10 << 30,
            dir_cache_time: Duration::from_secs(300),
            write_back: None,
        }
    }
}

impl VfsFlags {
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--vfs-cache-mode".into(),
            self.cache_mode.as_str().into(),
            "--vfs-cache-max-age".into(),
            duration_arg(self.cache_max_age),
            "--vfs-cache-max-size".into(),
            size_arg(self.cache_max_size),
            "--dir-cache-time".into(),
            duration_arg(self.dir_cache_time),
        ];
        if let Some(write_back) = self.write_back {
            args.extend(["--vfs-write-back".into(), duration_arg(write_back)]);
        }
        args
    }
}

/// A duration as rclone parses it (`90s`, `1500ms`).
fn duration_arg(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A size as rclone parses it exactly: rclone reads a bare number as KiB
/// and parses through floating point (`1234B` becomes 1233), so the largest
/// binary unit that divides the size is used, and bytes otherwise.
fn size_arg(bytes: u64) -> String {
    [("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)]
        .into_iter()
        .find(|(_, shift)| bytes != 0 && bytes % (1u64 << shift) == 0)
        .map_or_else(
            || format!("{bytes}B"),
            |(unit, shift)| format!("{}{unit}", bytes >> shift),
        )
}

/// A running `rclone mount`.
///
/// Dropping it sends `SIGTERM`: rclone unmounts and exits; uploads still
/// queued then stay in the cache directory, and the next `rclone mount` of
/// the same remote name with the same cache directory uploads them. Call
/// [`unmount`](Self::unmount) to upload them first.
#[derive(Debug)]
pub struct RcloneMount {
    child: Child,
    mount_point: PathBuf,
    rc: RcClient,
    log: PathBuf,
    scrubber: Scrubber,
    /// Dropping it ends the log follower (after a last read).
    stop_log: Option<oneshot::Sender<()>>,
    log_follower: Option<JoinHandle<()>>,
}

impl RcloneMount {
    /// Starts `rclone mount <main remote>:<remote_path> <mount_point>` with
    /// `vfs` and `--cache-dir cache_dir`. `run_dir`, one per mount, is made
    /// `0700` and must belong to berth's user: it holds the remote-control
    /// socket `rc.sock` (no auth: only berth's user can reach it) and
    /// rclone's stderr, `rclone.log`. Its stderr goes to a file, not a pipe,
    /// because rclone dies of `SIGPIPE` on its next log line once the pipe's
    /// reader is gone: if berth died, rclone could not unmount on the
    /// parent-death signal. The log's lines go to tracing (scrubbed).
    /// Creates the directories that are missing. Returns once the child
    /// runs: see [`wait_mounted`](Self::wait_mounted).
    pub async fn spawn(
        rclone: &Rclone,
        remotes: &Remotes,
        remote_path: &str,
        mount_point: &Path,
        vfs: &VfsFlags,
        cache_dir: &Path,
        run_dir: &Path,
    ) -> Result<RcloneMount, RcloneError> {
        create_private_dir(cache_dir)?;
        let socket = prepare_run_dir(run_dir)?;
        let log = run_dir.join(LOG_FILE);
        let stderr = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&log)
            .and_then(|file| file.set_len(0).map(|()| file))
            .map_err(|e| prepare_error(&log, e))?;
        std::fs::create_dir_all(mount_point).map_err(|e| prepare_error(mount_point, e))?;
        let mount_point = mount_point
            .canonicalize()
            .map_err(|e| prepare_error(mount_point, e))?;
        if mounted_fstype(&mount_point).is_some() {
            return Err(RcloneError::Prepare {
                path: mount_point,
                reason: "already a mount point".into(),
            });
        }
        let (mut cmd, scrubber) = rclone.command(remotes, OnParentDeath::Interrupt);
        let mut rc_addr = OsString::from("unix://");
        rc_addr.push(&socket);
        cmd.arg("mount")
            .arg(remotes.target(remote_path))
            .arg(&mount_point)
            .arg("--cache-dir")
            .arg(cache_dir)
            .args(vfs.args())
            .args(["--rc", "--rc-no-auth", "--rc-addr"])
            .arg(rc_addr)
            .stderr(stderr);
        let child = spawn(cmd).await?;
        let (stop_log, stopped) = oneshot::channel();
        let log_follower = tokio::spawn(follow_log(
            log.clone(),
            scrubber.clone(),
            mount_point.clone(),
            stopped,
        ));
        tracing::info!(
            remote = remotes.main_name(),
            mount_point = %mount_point.display(),
            pid = child.id(),
            "rclone mount started"
        );
        Ok(RcloneMount {
            child,
            mount_point,
            rc: RcClient::new(socket, scrubber.clone()),
            log,
            scrubber,
            stop_log: Some(stop_log),
            log_follower: Some(log_follower),
        })
    }

    /// The mount point (canonical).
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// The child's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits until the kernel shows the mount in `/proc/self/mountinfo`.
    /// Fails at once, with the gist of rclone's log, if the child exits
    /// first; after `timeout` the child is left running (drop it to stop it).
    pub async fn wait_mounted(&mut self, timeout: Duration) -> Result<(), RcloneError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(RcloneError::Exited {
                    status: status.to_string(),
                    stderr: self.log_gist(),
                });
            }
            if self.rclone_mounted() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(RcloneError::MountTimeout(timeout));
            }
            tokio::time::sleep(POLL.min(deadline - Instant::now())).await;
        }
    }

    /// Why the child is gone, once it has exited: its exit status and the
    /// gist of the end of its log (scrubbed); `None` while it runs.
    pub fn exit_reason(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok()??;
        Some(format!("rclone exited ({status}): {}", self.log_gist()))
    }

    /// The child still runs and its mount is in `/proc/self/mountinfo`.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None)) && self.rclone_mounted()
    }

    fn rclone_mounted(&self) -> bool {
        mounted_fstype(&self.mount_point).as_deref() == Some(FSTYPE)
    }

    /// Uploads in progress plus queued (rc `vfs/stats`).
    pub async fn pending_uploads(&self) -> Result<u64, RcloneError> {
        let stats = self.rc.call("vfs/stats", serde_json::json!({})).await?;
        rc::pending_uploads(&stats).map_err(|e| rc_parse_error("vfs/stats", e))
    }

    /// Uploads everything queued, then unmounts and waits for the child.
    ///
    /// Files waiting for their write-back delay are made due at once
    /// (`vfs/queue-set-expiry`), and the queue is polled until empty. If it
    /// does not empty within `drain_timeout`, this fails with
    /// [`RcloneError::DrainTimeout`] and leaves the mount up: nothing
    /// queued is ever dropped (try again, or drop the handle, which keeps
    /// the queue in the cache directory). Then `SIGTERM` (rclone unmounts
    /// and exits; `SIGKILL` after 10 s), and `fusermount3 -uz` if the mount
    /// point is still mounted. Files still open for writing are not in the
    /// queue yet; close them first. If rclone had already exited, only the
    /// mount point is cleaned.
    pub async fn unmount(&mut self, drain_timeout: Duration) -> Result<(), RcloneError> {
        if self.child.try_wait()?.is_none() {
            self.drain(drain_timeout).await?;
            self.stop().await?;
        } else {
            tracing::warn!(
                mount_point = %self.mount_point.display(),
                "rclone had exited; what it had not uploaded stays in its cache directory"
            );
        }
        self.stop_following_log().await;
        if self.rclone_mounted() {
            let _ = tokio::process::Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.mount_point)
                .status()
                .await;
            if self.rclone_mounted() {
                return Err(RcloneError::Unmount {
                    path: self.mount_point.clone(),
                    reason: "still mounted after rclone exited and fusermount3 -uz".into(),
                });
            }
        }
        tracing::info!(mount_point = %self.mount_point.display(), "rclone mount stopped");
        Ok(())
    }

    async fn drain(&self, timeout: Duration) -> Result<(), RcloneError> {
        let start = Instant::now();
        loop {
            let pending = self.pending_uploads().await?;
            if pending == 0 {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(RcloneError::DrainTimeout {
                    pending,
                    waited: start.elapsed(),
                });
            }
            if let Err(error) = self.expedite().await {
                tracing::debug!(%error, "could not hurry the upload queue");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Makes every queued upload that waits for its write-back delay due now.
    async fn expedite(&self) -> Result<(), RcloneError> {
        let queue = self.rc.call("vfs/queue", serde_json::json!({})).await?;
        let ids = rc::waiting_ids(&queue).map_err(|e| rc_parse_error("vfs/queue", e))?;
        for id in ids {
            // Fails harmlessly when the item started uploading meanwhile.
            let params = serde_json::json!({ "id": id, "expiry": 0 });
            if let Err(error) = self.rc.call("vfs/queue-set-expiry", params).await {
                tracing::debug!(%error, "queue item left as is");
            }
        }
        Ok(())
    }

    /// `SIGTERM`, then `SIGKILL` if rclone has not exited within 10 s.
    async fn stop(&mut self) -> Result<(), RcloneError> {
        self.signal(libc::SIGTERM);
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(mount_point = %self.mount_point.display(), "rclone ignored SIGTERM; killing it");
            self.child.kill().await?;
        }
        Ok(())
    }

    fn signal(&self, signal: libc::c_int) {
        // `id()` is `None` once the child has been reaped, so the pid is
        // still ours.
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid; no memory involved.
            unsafe { libc::kill(pid as libc::pid_t, signal) };
        }
    }

    /// The gist of the end of rclone's log, scrubbed.
    fn log_gist(&self) -> String {
        let tail = std::fs::File::open(&self.log).and_then(|mut file| {
            let len = file.metadata()?.len();
            file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)))?;
            let mut tail = Vec::new();
            file.read_to_end(&mut tail)?;
            Ok(tail)
        });
        match tail {
            Ok(tail) => gist(&self.scrubber.scrub(&String::from_utf8_lossy(&tail))),
            Err(e) => format!("cannot read {}: {e}", self.log.display()),
        }
    }

    /// Ends the log follower once it has read what rclone wrote last.
    async fn stop_following_log(&mut self) {
        self.stop_log.take();
        if let Some(follower) = self.log_follower.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), follower).await;
        }
    }
}

impl Drop for RcloneMount {
    fn drop(&mut self) {
        self.signal(libc::SIGTERM);
    }
}

/// Follows rclone's log until `stop` fires or is dropped (then reads one
/// last time): each line scrubbed and sent to tracing, errors as warnings.
/// The file is emptied when it grows past 4 MiB (rclone appends, so it goes
/// on writing at the new end).
async fn follow_log(
    path: PathBuf,
    scrubber: Scrubber,
    mount_point: PathBuf,
    mut stop: oneshot::Receiver<()>,
) {
    let opened = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .await;
    let Ok(mut file) = opened else { return };
    let mut partial = Vec::new();
    loop {
        let last = tokio::select! {
            _ = &mut stop => true,
            () = tokio::time::sleep(LOG_POLL) => false,
        };
        if file.read_to_end(&mut partial).await.is_err() {
            return;
        }
        let complete = if last {
            partial.len()
        } else {
            partial
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1)
        };
        let text = String::from_utf8_lossy(&partial[..complete]).into_owned();
        partial.drain(..complete);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let line = scrubber.scrub(line);
            let (level, message) = parse_line(&line);
            if matches!(
                level,
                Some("ERROR" | "CRITICAL" | "ALERT" | "EMERGENCY") | None
            ) {
                tracing::warn!(mount_point = %mount_point.display(), "rclone: {message}");
            } else {
                tracing::debug!(mount_point = %mount_point.display(), "rclone: {message}");
            }
        }
        if last {
            return;
        }
        if file.stream_position().await.is_ok_and(|at| at > LOG_MAX)
            && (file.set_len(0).await.is_err() || file.rewind().await.is_err())
        {
            return;
        }
    }
}

fn prepare_error(path: &Path, error: std::io::Error) -> RcloneError {
    RcloneError::Prepare {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

fn rc_parse_error(command: &str, error: serde_json::Error) -> RcloneError {
    RcloneError::Rc {
        command: command.into(),
        message: format!("unexpected answer: {error}"),
    }
}

/// Creates `dir` (and missing parents) owner-only if it does not exist.
fn create_private_dir(dir: &Path) -> Result<(), RcloneError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| prepare_error(dir, e))
}

/// Makes `dir` a `0700` directory of berth's user and returns the absolute
/// rc socket path in it, with any stale socket removed.
fn prepare_run_dir(dir: &Path) -> Result<PathBuf, RcloneError> {
    create_private_dir(dir)?;
    let dir = &dir.canonicalize().map_err(|e| prepare_error(dir, e))?;
    let meta = std::fs::metadata(dir).map_err(|e| prepare_error(dir, e))?;
    // SAFETY: geteuid cannot fail and touches no memory.
    if meta.uid() != unsafe { libc::geteuid() } {
        return Err(RcloneError::Prepare {
            path: dir.into(),
            reason: "the run directory belongs to another user".into(),
        });
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| prepare_error(dir, e))?;
    let socket = dir.join(RC_SOCKET);
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(RcloneError::Prepare {
            path: socket,
            reason: format!("longer than the {MAX_SOCKET_PATH} bytes a unix socket path may have"),
        });
    }
    match std::fs::remove_file(&socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(prepare_error(&socket, e)),
        _ => Ok(socket),
    }
}

/// The filesystem type of the topmost mount at `point` in this process's
/// mount namespace.
fn mounted_fstype(point: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    fstype_at(&info, point).map(str::to_owned)
}

/// The filesystem type of the last mount at `point` in a mountinfo text
/// (`36 35 0:40 / /mnt/x rw,relatime - fuse.rclone b_1:dir rw,...`).
fn fstype_at<'a>(mountinfo: &'a str, point: &Path) -> Option<&'a str> {
    mountinfo.lines().rev().find_map(|line| {
        let mount_point = line.split(' ').nth(4)?;
        let fstype = line.split_once(" - ")?.1.split(' ').next()?;
        (unescape(mount_point) == point).then_some(fstype)
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_vfs_settings_to_rclone_flags() {
        let flags = VfsFlags {
            cache_mode: CacheMode::Full,
            cache_max_age: Duration::from_millis(1500),
            cache_max_size: 10 << 30,
            dir_cache_time: Duration::from_secs(300),
            write_back: Some(Duration::from_secs(30)),
        };
        assert_eq!(
            flags.args().join(" "),
            "--vfs-cache-mode full --vfs-cache-max-age 1500ms --vfs-cache-max-size 10Gi \
             --dir-cache-time 300s --vfs-write-back 30s"
        );
        let defaults = VfsFlags {
            cache_mode: CacheMode::Off,
            ..VfsFlags::default()
        };
        assert_eq!(
            defaults.args().join(" "),
            "--vfs-cache-mode off --vfs-cache-max-age 3600s --vfs-cache-max-size 10Gi --dir-cache-time 300s"
        );
        let modes = [
            CacheMode::Off,
            CacheMode::Minimal,
            CacheMode::Writes,
            CacheMode::Full,
        ];
        assert_eq!(
            modes.map(CacheMode::as_str),
            ["off", "minimal", "writes", "full"]
        );
    }

    #[test]
    fn sizes_use_the_largest_exact_unit() {
        assert_eq!(size_arg(0), "0B");
        assert_eq!(size_arg(1234), "1234B");
        assert_eq!(size_arg(1024), "1Ki");
        assert_eq!(size_arg(3 << 20), "3Mi");
        assert_eq!(size_arg((1 << 30) + 1024), "1048577Ki");
        assert_eq!(size_arg(5 << 50), "5Pi");
        assert_eq!(duration_arg(Duration::from_micros(1500)), "1ms");
        assert_eq!(duration_arg(Duration::ZERO), "0s");
    }

    #[test]
    fn finds_the_topmost_mount_at_a_point() {
        let info = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
45 22 0:40 / /tmp/rx/mnt rw,nosuid,nodev,relatime - fuse.rclone b_x:/tmp/rx/back rw,user_id=0,group_id=0
46 22 0:41 / /tmp/with\\040space rw,nosuid - fuse.rclone b_y: rw
47 45 0:42 / /tmp/rx/mnt rw shared:7 master:1 - tmpfs tmpfs rw
";
        assert_eq!(fstype_at(info, Path::new("/tmp/rx/mnt")), Some("tmpfs"));
        assert_eq!(
            fstype_at(info, Path::new("/tmp/with space")),
            Some("fuse.rclone")
        );
        assert_eq!(fstype_at(info, Path::new("/")), Some("ext4"));
        assert_eq!(fstype_at(info, Path::new("/tmp")), None);
        assert_eq!(unescape("a\\134b\\011c\\9"), PathBuf::from("a\\b\tc\\9"));
    }
}
