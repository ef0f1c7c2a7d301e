//! Finding the rclone binary, and starting every rclone child the same way.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::remote::{base_env, Remotes};
use crate::secret::Scrubber;
use crate::tokens::TokenVault;
use crate::RcloneError;

/// An rclone version (`v1.75.2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

/// The oldest rclone berth runs: remote control on a unix socket
/// (`--rc-addr unix://...`) and the `vfs/queue` + `vfs/queue-set-expiry` rc
/// calls the drain before unmounting relies on are not in older releases
/// (Debian 12's 1.60 has neither).
pub const MIN_VERSION: Version = Version {
    major: 1,
    minor: 65,
    patch: 0,
};

impl Version {
    /// Parses the first line of `rclone version` (`rclone v1.75.2`,
    /// `rclone v1.66.0-DEV`).
    fn parse(output: &str) -> Option<Version> {
        let rest = output.lines().next()?.trim().strip_prefix("rclone v")?;
        let core = rest
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?;
        let mut parts = core.split('.').map(str::parse::<u32>);
        Some(Version {
            major: parts.next()?.ok()?,
            minor: parts.next()?.ok()?,
            patch: parts.next().unwrap_or(Ok(0)).ok()?,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A located, version-checked rclone binary.
#[derive(Debug, Clone)]
pub struct Rclone {
    path: PathBuf,
    version: Version,
    tokens: Option<Arc<TokenVault>>,
}

impl Rclone {
    /// The binary run when none is configured (looked up on `PATH`).
    pub const DEFAULT_BINARY: &'static str = "rclone";

    /// Runs `<configured or rclone> version` once, and checks the version is
    /// at least [`MIN_VERSION`].
    pub async fn locate(configured: Option<&Path>) -> Result<Rclone, RcloneError> {
        let path =
            configured.map_or_else(|| PathBuf::from(Self::DEFAULT_BINARY), Path::to_path_buf);
        let missing = |source| RcloneError::Missing {
            path: path.clone(),
            source,
        };
        let mut cmd = command(&path, OnParentDeath::Kill);
        cmd.arg("version").stdout(Stdio::piped()).kill_on_drop(true);
        let child = spawn(cmd).await.map_err(missing)?;
        let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .map_err(|_| missing(io::ErrorKind::TimedOut.into()))?
            .map_err(missing)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let version = Version::parse(&stdout)
            .filter(|_| output.status.success())
            .ok_or_else(|| RcloneError::NotRclone {
                path: path.clone(),
                answer: stdout
                    .lines()
                    .next()
                    .map_or_else(|| output.status.to_string(), str::to_owned),
            })?;
        if version < MIN_VERSION {
            return Err(RcloneError::TooOld {
                path,
                found: version,
                minimum: MIN_VERSION,
            });
        }
        tracing::debug!(path = %path.display(), %version, "rclone located");
        Ok(Rclone {
            path,
            version,
            tokens: None,
        })
    }

    /// This rclone with OAuth tokens kept in `vault`: every child defining a
    /// remote with a token reads it from there and writes refreshed ones
    /// back ([`TokenVault`]).
    pub fn keeping_tokens_in(self, vault: Arc<TokenVault>) -> Rclone {
        Rclone {
            tokens: Some(vault),
            ..self
        }
    }

    /// Where OAuth tokens are kept, if anywhere.
    pub fn token_vault(&self) -> Option<&Arc<TokenVault>> {
        self.tokens.as_ref()
    }

    /// The version `rclone version` reported.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The binary.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A command running this binary for `remotes` (see [`command`]); the
    /// scrubber covers every secret of `remotes`.
    pub(crate) fn command(
        &self,
        remotes: &Remotes,
        on_parent_death: OnParentDeath,
    ) -> (Command, Scrubber) {
        let env = remotes.env(self.tokens.as_deref());
        let mut cmd = command(&self.path, on_parent_death);
        cmd.envs(env.vars);
        (cmd, env.scrubber)
    }

    /// A command for a short-lived child serving `remotes` (see
    /// [`command`](Self::command)): one attempt (`--retries 1
    /// --low-level-retries 1`), rclone's connect and idle I/O timeouts at
    /// 80% of `timeout` (so rclone reports a stalled remote itself before
    /// berth gives up on it), `SIGKILL` when berth dies or drops the handle.
    /// It holds only these global flags: the caller adds the subcommand and
    /// its arguments.
    pub(crate) fn bounded_command(
        &self,
        remotes: &Remotes,
        timeout: Duration,
    ) -> (Command, Scrubber) {
        let (mut cmd, scrubber) = self.command(remotes, OnParentDeath::Kill);
        let rclone_timeout = format!("{}ms", timeout.mul_f64(0.8).as_millis().max(1));
        cmd.args(["--retries", "1", "--low-level-retries", "1"])
            .args([
                "--contimeout",
                &rclone_timeout,
                "--timeout",
                &rclone_timeout,
            ])
            .kill_on_drop(true);
        (cmd, scrubber)
    }
}

/// Why [`output`] has no exit status to show.
#[derive(Debug)]
pub(crate) enum RunError {
    /// The child could not be started.
    Spawn(io::Error),
    /// It ran past its time and was killed.
    Timeout(Duration),
    /// Waiting for it failed.
    Wait(io::Error),
}

/// Runs `cmd` to its end and collects what it wrote to its pipes; at
/// `timeout` the child is killed (dropped, so `cmd` must kill on drop).
pub(crate) async fn output(cmd: Command, timeout: Duration) -> Result<Output, RunError> {
    let child = spawn(cmd).await.map_err(RunError::Spawn)?;
    tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| RunError::Timeout(timeout))?
        .map_err(RunError::Wait)
}

/// What a child gets when berth dies.
///
/// Linux sends the parent-death signal each time the thread that is the
/// child's parent exits, re-parenting the child to a sibling thread: a
/// dying berth sends it once per thread that outlives the spawner thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnParentDeath {
    /// `SIGKILL`: for short-lived children that hold nothing (probes).
    Kill,
    /// `SIGINT`, ignored at exec: for `rclone mount`. rclone's exit handler
    /// takes the first `SIGINT` (it unmounts and exits), then stops
    /// listening, and Go restores the inherited disposition, ignore, so the
    /// following ones cannot kill rclone while it unmounts. With `SIGTERM`,
    /// whose default action Go restores, the second one did, leaving a dead
    /// mount (1 run in 12 here).
    Interrupt,
}

/// A command running `path` with berth's environment minus every `RCLONE_*`
/// variable (see [`base_env`]), stdin closed, stderr piped, in its own
/// process group (a Ctrl-C meant for berth does not unmount behind its
/// back), and `on_parent_death`.
fn command(path: &Path, on_parent_death: OnParentDeath) -> Command {
    let mut cmd = Command::new(path);
    cmd.env_clear()
        .envs(base_env(std::env::vars_os()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let parent = std::process::id() as libc::pid_t;
    let signal = match on_parent_death {
        OnParentDeath::Kill => libc::SIGKILL,
        OnParentDeath::Interrupt => libc::SIGINT,
    };
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if signal == libc::SIGINT && libc::signal(signal, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // berth died between fork and prctl: the signal will never come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    cmd
}

type Job = Box<dyn FnOnce() + Send>;

/// Starts `cmd` from berth's spawner thread.
///
/// Linux sends the parent-death signal when the *thread* that forked the
/// child exits, not the process: a child forked from a tokio blocking-pool
/// thread (or any short-lived thread) would be killed when that thread
/// retires. Every child is therefore forked from one thread that lives as
/// long as the process, inside the caller's runtime (for tokio's child
/// reaping).
pub(crate) async fn spawn(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("berth-rclone-spawner".into())
            .spawn(move || rx.into_iter().for_each(|job| job()))
            .expect("cannot start the rclone spawner thread");
        tx
    });
    let runtime = tokio::runtime::Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawner
        .send(Box::new(move || {
            let _entered = runtime.enter();
            let _ = tx.send(cmd.spawn());
        }))
        .map_err(|_| io::Error::other("the rclone spawner thread is gone"))?;
    rx.await
        .map_err(|_| io::Error::other("the rclone spawner thread dropped a request"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rclone_version_lines() {
        let v = |s| Version::parse(s);
        assert_eq!(
            v("rclone v1.75.2\n- os/version: debian 12.11 (64 bit)\n"),
            Some(Version {
                major: 1,
                minor: 75,
                patch: 2
            })
        );
        assert_eq!(
            v("rclone v1.60.1-DEV\n"),
            Some(Version {
                major: 1,
                minor: 60,
                patch: 1
            })
        );
        assert_eq!(
            v("rclone v1.66\n").map(|v| v.to_string()).as_deref(),
            Some("v1.66.0")
        );
        assert_eq!(v("rsync  version 3.2.7"), None);
        assert_eq!(v(""), None);
        assert!(v("rclone v1.64.2").unwrap() < MIN_VERSION);
        assert!(v("rclone v1.65.0").unwrap() >= MIN_VERSION);
        assert!(v("rclone v2.0.0").unwrap() >= MIN_VERSION);
    }

    /// The gotcha `spawn` avoids: a child started from a thread that then
    /// exits must live on.
    #[test]
    fn child_outlives_the_thread_that_asked_for_it() {
        let pid = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut cmd = command(Path::new("sleep"), OnParentDeath::Kill);
                cmd.arg("30");
                spawn(cmd).await.unwrap().id().unwrap() as libc::pid_t
            })
        })
        .join()
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = state.rsplit(") ").next().unwrap().chars().next().unwrap();
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(
            state, 'S',
            "the child was killed when its requester thread exited"
        );
    }
}
