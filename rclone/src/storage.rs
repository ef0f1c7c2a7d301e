//! [`RcloneStorage`]: berth's [`Storage`] trait served by rclone commands,
//! one bounded child per call.

use std::fmt;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use berth_storage::{
    join_path, normalize_path, ByteStream, Capability, Entry, EntryKind, ErrorKind, ListPage,
    Result, Storage, StorageError, Usage,
};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::binary::{output, spawn, Rclone, RunError};
use crate::probe::{classify, error_text, matching, ProbeErrorKind};
use crate::remote::Remotes;
use crate::secret::Scrubber;
use crate::stderr::gist;

/// How long `copy`, `rename` and a write's upload may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(3600);
/// Largest piece of a read body (a pipe holds 64 KiB).
const CHUNK: usize = 64 << 10;
/// rclone's exit code for a temporary error.
const EXIT_TEMPORARY: i32 = 5;
/// How object stores refuse a range that starts past the end (HTTP 416),
/// which berth reads as empty.
const PAST_THE_END: &[&str] = &["invalidrange", "range not satisfiable"];

/// Lower-case fragments of rclone's error lines that berth classifies
/// before the probe classifier (whose kinds know no conflicts). Go's system
/// errors read `op /path: is a directory`; rclone's own `is a directory
/// not a file` and `is a file not a directory`; `deletefile` of a missing
/// file says `... is a directory or doesn't exist: object not found`,
/// which must stay `NotFound`.
const PATTERNS: &[(ErrorKind, &[&str])] = &[
    (
        ErrorKind::Conflict,
        &[
            "directory not empty",
            "is a directory not a file",
            ": is a directory",
            "is a file not a directory",
            ": not a directory",
            "file exists",
            "already exists",
        ],
    ),
    (
        ErrorKind::Quota,
        &[
            "no space left on device",
            "quota exceeded",
            "insufficient storage",
        ],
    ),
    (
        ErrorKind::Unsupported,
        &[
            "doesn't support",
            "not supported",
            "can't set modified time",
        ],
    ),
];

/// The capabilities of an rclone backend type (see [`RcloneStorage`]).
fn capability_of(rclone_type: &str) -> Capability {
    Capability {
        directories: matches!(
            rclone_type,
            "local" | "sftp" | "smb" | "ftp" | "webdav" | "drive" | "onedrive" | "dropbox" | "box"
        ),
        ranged_read: true,
        copy: true,
        atomic_rename: rclone_type == "local",
        set_mtime: matches!(rclone_type, "local" | "sftp" | "smb" | "drive" | "onedrive"),
        usage: matches!(
            rclone_type,
            "local" | "smb" | "drive" | "onedrive" | "dropbox" | "box"
        ),
        append: false,
    }
}

/// A backend served by rclone: every [`Storage`] call runs one bounded
/// rclone command (two or three where rclone alone cannot tell berth's
/// conflicts apart) with the remotes defined in the child's environment
/// only. Each child costs about 50 ms of CPU (rclone's start-up), so this
/// suits control paths (probes, credential checks) and wrappers better than
/// many small files. rclone's `memory` remote cannot be served: every call
/// would start with an empty store.
///
/// How each call maps to rclone, and why:
/// - **stat, list**: `lsjson --stat` and `lsjson` (one level), with
///   `--use-server-modtime` so that object stores need no request per
///   object to read times. A listing is sorted by name and paged in memory:
///   every page lists the whole directory again, and `next` is the last name
///   of the page (entries after it follow). `lsjson` of a file path lists
///   that file; a listing of exactly one file named like the directory is
///   checked with a stat, and a file is a `Conflict`. Where directories are
///   implied (object stores), rclone's stat calls any missing path a
///   directory: a directory found there is listed, and exists only if
///   something is in it.
/// - **read**: `cat --offset --count`, streamed from the child's stdout,
///   the object named on stdin (`--files-from-raw - --no-traverse`), not in
///   the remote path: `cat` of a directory path prints every file below it,
///   while a listed name that is a directory or missing prints nothing. So
///   `read` waits for the first bytes; when none come, a stat tells an
///   empty object from a directory (`Conflict`) or nothing (`NotFound`);
///   a range starting past the end, which object stores refuse (HTTP 416),
///   reads empty the same way. The body ends with an error if rclone fails; dropping it kills the
///   child. Names holding a line break cannot be listed that way
///   (`Unsupported`).
/// - **write**: `rcat` fed from the body on stdin, with `--disable
///   PutStream`: rclone then keeps up to 100 KiB in memory and spools larger
///   bodies to a private directory (removed afterwards) before it uploads
///   with the size known, instead of streaming into the target, which on
///   filesystem remotes (`local`, `sftp`, ...) truncates the old content
///   first. A body that fails kills rclone before it has written anything,
///   so the previous state stays. The returned entry is a stat of the
///   result.
/// - **delete** `deletefile` (a directory is told from a missing file with a
///   stat), **mkdir**, **rmdir**, **rename** `moveto`, **copy** `copyto`
///   (after a stat: rclone would copy a directory's tree), **usage** `about
///   --json`, **set_modified** `touch --no-create --timestamp`, **probe**
///   [`Rclone::probe`]. `rename` first stats both ends: rclone merges a
///   directory into an existing one and moves a file into a directory,
///   where berth answers `Conflict`.
/// - **Bounds**: every child gets `--retries 1 --low-level-retries 1` and
///   rclone's connect and idle timeouts (80% of the storage's timeout,
///   [`RcloneStorage::DEFAULT_TIMEOUT`] unless set). Commands that move no
///   data are killed at the timeout, as is a read that sends no first byte;
///   `copy`, `rename` and the upload after a write's body at one hour.
/// - **Errors**: rclone's stderr, scrubbed of every secret of the remotes
///   and of the `scrub` list, is classified: `Conflict` (directory not
///   empty, is a directory, not a directory, exists), `Quota`,
///   `Unsupported` (no `about`, cannot set times), then the probe
///   classifier's kinds (network failures and timeouts `Transient`, refused
///   credentials `Permission`, missing `NotFound`, rclone refusing the
///   remote definition `InvalidConfig`), then rclone's exit codes (3 and 4
///   `NotFound`, 5 `Transient`).
/// - **Paths** are normalized ([`normalize_path`]: no `..`) and joined
///   under the root into `name:root/path`, one argv element each: nothing
///   is quoted, no shell is involved, and no secret is ever in argv.
///
/// **Capabilities**, claimed per rclone backend type, conservatively: only
/// what rclone's backend is known to do, and what this adapter was checked
/// against (the behaviour suite runs over `local` and `s3`).
///
/// - `directories`: filesystems and drives whose rclone backend keeps empty
///   directories (`local`, `sftp`, `smb`, `ftp`, `webdav`, `drive`,
///   `onedrive`, `dropbox`, `box`); everything else, object stores and
///   wrappers whose answer depends on their upstreams included, is treated
///   as having implied directories.
/// - `ranged_read`: always; `cat --offset --count` asks the backend for the
///   range (backends without ranged reads skip the start inside rclone,
///   never in berth).
/// - `copy`: always; `copyto` is server-side where the backend can, else
///   rclone streams the object itself, never through berth.
/// - `atomic_rename`: `local` (one `rename(2)`).
/// - `set_mtime`: where the time `touch` sets is the time listings show with
///   `--use-server-modtime` (`local`, `sftp`, `smb`, `drive`, `onedrive`).
///   Object stores keep rclone's time in metadata that berth does not read.
/// - `usage`: backends whose `about` reports total and free space (`local`,
///   `smb`, `drive`, `onedrive`, `dropbox`, `box`); others answer
///   `Unsupported` without asking.
pub struct RcloneStorage {
    rclone: Arc<Rclone>,
    remotes: Remotes,
    /// The path inside the main remote that is the backend's root, without
    /// trailing `/` (except `/` itself).
    root: String,
    /// Extra values cut out of rclone's messages.
    scrub: Vec<String>,
    timeout: Duration,
    spool_dir: PathBuf,
    capability: Capability,
}

impl fmt::Debug for RcloneStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcloneStorage")
            .field("remote", &self.remotes.main_name())
            .field("type", &self.remotes.main_type())
            .field("root", &self.root)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RcloneStorage {
    /// The bound of commands that move no data, unless
    /// [`with_timeout`](Self::with_timeout) sets another.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

    /// Serves `root`, a path inside the main remote of `remotes` (`""` for
    /// most backends, the directory for `local`), with `rclone`. Every
    /// secret of `remotes` and each value of `scrub` is cut out of rclone's
    /// messages. Large write bodies are spooled under the system's temp
    /// directory (see [`with_spool_dir`](Self::with_spool_dir)).
    pub fn new(
        rclone: Arc<Rclone>,
        remotes: Remotes,
        root: String,
        scrub: Vec<String>,
    ) -> RcloneStorage {
        let trimmed = root.trim_end_matches('/');
        let root = if trimmed.is_empty() && !root.is_empty() {
            "/".to_owned()
        } else {
            trimmed.to_owned()
        };
        RcloneStorage {
            capability: capability_of(remotes.main_type()),
            rclone,
            remotes,
            root,
            scrub,
            timeout: Self::DEFAULT_TIMEOUT,
            spool_dir: std::env::temp_dir(),
        }
    }

    /// Bounds commands that move no data (and a read's first byte) by
    /// `timeout`; rclone's connect and idle timeouts are 80% of it.
    pub fn with_timeout(mut self, timeout: Duration) -> RcloneStorage {
        self.timeout = timeout;
        self
    }

    /// Where rclone spools write bodies over 100 KiB, one private (`0700`)
    /// directory per write, removed when the write ends.
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> RcloneStorage {
        self.spool_dir = dir.into();
        self
    }

    /// `name:root/path` for a normalized path.
    fn target(&self, path: &str) -> String {
        let inside = match (self.root.as_str(), path) {
            (root, "") => root.to_owned(),
            ("/", path) => format!("/{path}"),
            (root, path) => join_path(root, path),
        };
        self.remotes.target(&inside)
    }

    /// A bounded command and the scrubber for its secrets and `scrub`.
    fn command(&self) -> (Command, Scrubber) {
        let (cmd, scrubber) = self.rclone.bounded_command(&self.remotes, self.timeout);
        let extra: Vec<&str> = self.scrub.iter().map(String::as_str).collect();
        (cmd, scrubber.with(&extra))
    }

    /// Runs `rclone <args>` within `bound`; its stdout when it succeeds.
    async fn run(&self, op: &str, path: &str, bound: Duration, args: &[&str]) -> Result<Vec<u8>> {
        let (mut cmd, scrubber) = self.command();
        cmd.args(args).stdout(Stdio::piped());
        let out = output(cmd, bound)
            .await
            .map_err(|e| run_failure(op, path, &scrubber, e))?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            let stderr = scrubber.scrub(&String::from_utf8_lossy(&out.stderr));
            Err(failure(op, path, &scrubber, &stderr, out.status.code()))
        }
    }

    /// The entry at a normalized path.
    async fn entry(&self, path: &str) -> Result<Entry> {
        let target = self.target(path);
        let args = [
            "lsjson",
            "--stat",
            "--no-mimetype",
            "--use-server-modtime",
            &target,
        ];
        let out = self.run("stat", path, self.timeout, &args).await?;
        let item: Item = parse("stat", path, &out)?;
        let entry = item.into_entry(path.to_owned());
        // Where directories are implied, rclone calls any missing path a
        // directory: one exists when something is in it.
        if entry.kind == EntryKind::Dir && !path.is_empty() && !self.capability.directories {
            let args = ["lsjson", "--no-mimetype", "--no-modtime", &target];
            let out = self.run("stat", path, self.timeout, &args).await?;
            let items: Vec<Item> = parse("stat", path, &out)?;
            if items.is_empty() {
                return Err(StorageError::not_found(path));
            }
        }
        Ok(entry)
    }

    /// The empty body of an object that `cat` printed nothing of: a stat
    /// says whether it is one.
    async fn empty_body(&self, path: &str) -> Result<ByteStream> {
        match self.entry(path).await?.kind {
            EntryKind::File => Ok(futures::stream::empty().boxed()),
            EntryKind::Dir => Err(is_a_directory("read", path)),
        }
    }

    /// Starts `rclone cat` of a normalized path and waits for its first
    /// bytes.
    async fn cat(&self, path: &str, offset: u64, count: Option<u64>) -> Result<ByteStream> {
        let (mut cmd, scrubber) = self.command();
        cmd.args(["cat", "--no-traverse", "--files-from-raw", "-", "--offset"])
            .arg(offset.min(i64::MAX as u64).to_string());
        if let Some(count) = count {
            cmd.arg("--count")
                .arg(count.min(i64::MAX as u64).to_string());
        }
        cmd.arg(self.target(""))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut running = Running::start(cmd, scrubber, "read", path).await?;
        let (Some(mut stdin), Some(mut stdout)) =
            (running.child.stdin.take(), running.child.stdout.take())
        else {
            return Err(running.error(RunError::Wait(io::ErrorKind::BrokenPipe.into())));
        };
        let name = format!("{path}\n");
        let first = tokio::time::timeout(self.timeout, async {
            // rclone reads the whole list (up to EOF) before it prints.
            stdin.write_all(name.as_bytes()).await?;
            drop(stdin);
            read_chunk(&mut stdout).await
        })
        .await
        .map_err(|_| running.error(RunError::Timeout(self.timeout)))?;
        match first {
            Ok(Some(first)) => {
                let rest = Body {
                    stdout,
                    running,
                    bound: self.timeout,
                };
                Ok(futures::stream::once(async move { Ok(first) })
                    .chain(rest.into_stream())
                    .boxed())
            }
            // Nothing, or a range past the end that the store refused:
            // a stat tells an empty read from a directory or nothing.
            Ok(None) => {
                running.finish(self.timeout, PAST_THE_END).await?;
                self.empty_body(path).await
            }
            // rclone closed its end early: its exit status says why.
            Err(error) => {
                running.finish(self.timeout, &[]).await?;
                Err(StorageError::from_io(error, path))
            }
        }
    }
}

#[async_trait]
impl Storage for RcloneStorage {
    fn capability(&self) -> Capability {
        self.capability
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        self.entry(&normalize_path(path)?).await
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        let dir = normalize_path(dir)?;
        let target = self.target(&dir);
        let args = ["lsjson", "--no-mimetype", "--use-server-modtime", &target];
        let items: Vec<Item> = match self.run("list", &dir, self.timeout, &args).await {
            // Object stores have no directories to miss: nothing is there.
            Err(e) if e.kind == ErrorKind::NotFound && !self.capability.directories => Vec::new(),
            result => parse("list", &dir, &result?)?,
        };
        if let [only] = items.as_slice() {
            let leaf = dir.rsplit('/').next().unwrap_or_default();
            if !dir.is_empty()
                && !only.is_dir
                && only.name == leaf
                && self.entry(&dir).await?.kind == EntryKind::File
            {
                return Err(StorageError::new(
                    ErrorKind::Conflict,
                    format!("list {dir}: not a directory"),
                ));
            }
        }
        let mut entries: Vec<Entry> = items
            .into_iter()
            .map(|item| {
                let path = join_path(&dir, &item.name);
                item.into_entry(path)
            })
            .collect();
        entries.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(page(entries, cursor.as_deref(), limit))
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Err(is_a_directory("read", &path));
        }
        if path.contains(['\n', '\r']) {
            return Err(StorageError::unsupported(format!(
                "read {path:?}: rclone cannot be given a name with a line break"
            )));
        }
        match range {
            Some((_, 0)) => self.empty_body(&path).await,
            Some((offset, len)) => self.cat(&path, offset, Some(len)).await,
            None => self.cat(&path, 0, None).await,
        }
    }

    async fn write(&self, path: &str, mut body: ByteStream) -> Result<Entry> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Err(is_a_directory("write", &path));
        }
        let spool = Spool::create(&self.spool_dir)
            .map_err(|e| StorageError::from_io(e, &self.spool_dir.display().to_string()))?;
        let (mut cmd, scrubber) = self.command();
        cmd.args(["rcat", "--disable", "PutStream", "--temp-dir"])
            .arg(&spool.0)
            .arg(self.target(&path))
            .stdin(Stdio::piped());
        let mut running = Running::start(cmd, scrubber, "write", &path).await?;
        let Some(mut stdin) = running.child.stdin.take() else {
            return Err(running.error(RunError::Wait(io::ErrorKind::BrokenPipe.into())));
        };
        if let Err(error) = feed(&mut stdin, &mut body).await {
            // Killed while its input is still open, so it never sees an end
            // and writes nothing: closing the input first raced the kill
            // with rclone uploading what it had (the suite caught it once).
            running.kill().await;
            drop(stdin);
            return Err(error);
        }
        drop(stdin);
        running.finish(TRANSFER_TIMEOUT, &[]).await?;
        drop(spool);
        self.entry(&path).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Err(is_a_directory("delete", &path));
        }
        let target = self.target(&path);
        match self
            .run("delete", &path, self.timeout, &["deletefile", &target])
            .await
        {
            // rclone says the same of a directory and of nothing.
            Err(e) if e.kind == ErrorKind::NotFound => match self.entry(&path).await {
                Ok(entry) if entry.kind == EntryKind::Dir => Err(is_a_directory("delete", &path)),
                _ => Err(e),
            },
            result => result.map(drop),
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (normalize_path(from)?, normalize_path(to)?);
        if self.entry(&from).await?.kind == EntryKind::Dir {
            return Err(is_a_directory("copy", &from));
        }
        if to.is_empty() {
            return Err(is_a_directory("copy", &to));
        }
        if from == to {
            return Ok(());
        }
        let (source, target) = (self.target(&from), self.target(&to));
        // --ignore-times: copy even when size and time match.
        let args = ["copyto", "--ignore-times", &source, &target];
        self.run("copy", &from, TRANSFER_TIMEOUT, &args)
            .await
            .map(drop)
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (normalize_path(from)?, normalize_path(to)?);
        if from.is_empty() || to.is_empty() {
            return Err(StorageError::new(
                ErrorKind::Permission,
                "cannot rename the root directory",
            ));
        }
        let source = self.entry(&from).await?;
        if from == to {
            return Ok(());
        }
        if source.kind == EntryKind::Dir && to.starts_with(&format!("{from}/")) {
            return Err(StorageError::new(
                ErrorKind::Conflict,
                format!("rename {from}: cannot move a directory into itself ({to})"),
            ));
        }
        match self.entry(&to).await {
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
            Ok(target) => match (source.kind, target.kind) {
                (EntryKind::File, EntryKind::File) => {}
                // An empty directory is replaced; rmdir refuses others.
                (EntryKind::Dir, EntryKind::Dir) if self.capability.directories => {
                    self.rmdir(&to).await?
                }
                _ => {
                    return Err(StorageError::new(
                        ErrorKind::Conflict,
                        format!("rename {from}: {to} exists"),
                    ))
                }
            },
        }
        let (source, target) = (self.target(&from), self.target(&to));
        self.run(
            "rename",
            &from,
            TRANSFER_TIMEOUT,
            &["moveto", &source, &target],
        )
        .await
        .map(drop)
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        let target = self.target(&path);
        self.run("mkdir", &path, self.timeout, &["mkdir", &target])
            .await
            .map(drop)
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Err(StorageError::new(
                ErrorKind::Permission,
                "cannot remove the root directory",
            ));
        }
        let target = self.target(&path);
        self.run("rmdir", &path, self.timeout, &["rmdir", &target])
            .await
            .map(drop)
    }

    async fn usage(&self) -> Result<Usage> {
        if !self.capability.usage {
            return Err(StorageError::unsupported(format!(
                "rclone's {} backend reports no free space to berth",
                self.remotes.main_type()
            )));
        }
        let target = self.target("");
        let out = self
            .run("usage", "", self.timeout, &["about", "--json", &target])
            .await?;
        let about: About = parse("usage", "", &out)?;
        Ok(Usage {
            total: about.total,
            used: about.used,
            free: about.free,
        })
    }

    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        let path = normalize_path(path)?;
        if !self.capability.set_mtime {
            return Err(StorageError::unsupported(format!(
                "{path}: rclone's {} backend cannot set modification times",
                self.remotes.main_type()
            )));
        }
        if self.entry(&path).await?.kind == EntryKind::Dir {
            return Err(StorageError::unsupported(format!(
                "{path}: rclone cannot set a directory's modification time"
            )));
        }
        let stamp = chrono::DateTime::<chrono::Utc>::from(time)
            .format("%Y-%m-%dT%H:%M:%S%.9f")
            .to_string();
        let target = self.target(&path);
        let args = ["touch", "--no-create", "--timestamp", &stamp, &target];
        self.run("set_modified", &path, self.timeout, &args)
            .await
            .map(drop)
    }

    /// [`Rclone::probe`] of the root: classified, scrubbed, bounded.
    async fn probe(&self) -> Result<()> {
        let scrub: Vec<&str> = self.scrub.iter().map(String::as_str).collect();
        self.rclone
            .probe(&self.remotes, &self.root, self.timeout, &scrub)
            .await
            .map_err(|e| StorageError::new(kind_of(e.kind), e.message))
    }
}

/// One entry of `rclone lsjson`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Item {
    name: String,
    #[serde(default)]
    size: i64,
    #[serde(default)]
    mod_time: Option<String>,
    #[serde(default)]
    is_dir: bool,
}

impl Item {
    fn into_entry(self, path: String) -> Entry {
        let modified = self
            .mod_time
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(SystemTime::from);
        Entry {
            path,
            kind: if self.is_dir {
                EntryKind::Dir
            } else {
                EntryKind::File
            },
            // rclone shows -1 for directories and unknown sizes.
            size: if self.is_dir {
                0
            } else {
                u64::try_from(self.size).unwrap_or(0)
            },
            modified,
        }
    }
}

/// `rclone about --json`.
#[derive(Deserialize)]
struct About {
    total: Option<u64>,
    used: Option<u64>,
    free: Option<u64>,
}

fn parse<T: serde::de::DeserializeOwned>(op: &str, path: &str, out: &[u8]) -> Result<T> {
    serde_json::from_slice(out).map_err(|e| {
        StorageError::new(
            ErrorKind::Other,
            format!("{op} {}: unexpected answer from rclone: {e}", shown(path)),
        )
    })
}

/// The page of sorted `entries` after `cursor`, at most `limit` long (`0`:
/// all).
fn page(mut entries: Vec<Entry>, cursor: Option<&str>, limit: usize) -> ListPage {
    let start = cursor.map_or(0, |c| entries.partition_point(|e| e.name() <= c));
    let mut rest = entries.split_off(start);
    let next = if limit > 0 && rest.len() > limit {
        rest.truncate(limit);
        rest.last().map(|e| e.name().to_owned())
    } else {
        None
    };
    ListPage {
        entries: rest,
        next,
    }
}

/// A running child of one storage call, its stderr collected aside (so a
/// full pipe never stalls it).
struct Running {
    child: Child,
    stderr: JoinHandle<Vec<u8>>,
    scrubber: Scrubber,
    op: &'static str,
    path: String,
}

impl Running {
    async fn start(
        cmd: Command,
        scrubber: Scrubber,
        op: &'static str,
        path: &str,
    ) -> Result<Running> {
        let mut child = spawn(cmd)
            .await
            .map_err(|e| run_failure(op, path, &scrubber, RunError::Spawn(e)))?;
        let stderr = child.stderr.take();
        let stderr = tokio::spawn(async move {
            let mut text = Vec::new();
            if let Some(mut stderr) = stderr {
                let _ = stderr.read_to_end(&mut text).await;
            }
            text
        });
        Ok(Running {
            child,
            stderr,
            scrubber,
            op,
            path: path.to_owned(),
        })
    }

    /// Waits for the exit (killing the child at `bound`); rclone's
    /// classified error if it failed, unless an error line holds one of
    /// the (lower-case) `tolerated` fragments.
    async fn finish(mut self, bound: Duration, tolerated: &[&str]) -> Result<()> {
        let status = tokio::time::timeout(bound, self.child.wait())
            .await
            .map_err(|_| self.error(RunError::Timeout(bound)))?
            .map_err(|e| self.error(RunError::Wait(e)))?;
        if status.success() {
            return Ok(());
        }
        let stderr = self.stderr.await.unwrap_or_default();
        let stderr = self.scrubber.scrub(&String::from_utf8_lossy(&stderr));
        if matching(&[((), tolerated)], &error_text(&stderr)).is_some() {
            return Ok(());
        }
        Err(failure(
            self.op,
            &self.path,
            &self.scrubber,
            &stderr,
            status.code(),
        ))
    }

    /// The error of this run when it gave no exit status.
    fn error(&self, error: RunError) -> StorageError {
        run_failure(self.op, &self.path, &self.scrubber, error)
    }

    /// Kills the child and waits for it to be gone.
    async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// What is left of a read body after its first bytes.
struct Body {
    stdout: ChildStdout,
    running: Running,
    bound: Duration,
}

impl Body {
    /// The remaining bytes, then rclone's error if it failed. Dropping the
    /// stream kills rclone.
    fn into_stream(self) -> ByteStream {
        futures::stream::unfold(Some(self), |body| async move {
            let mut body = body?;
            match read_chunk(&mut body.stdout).await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(body))),
                Ok(None) => match body.running.finish(body.bound, &[]).await {
                    Ok(()) => None,
                    Err(error) => Some((Err(error), None)),
                },
                Err(error) => Some((Err(StorageError::from_io(error, &body.running.path)), None)),
            }
        })
        .boxed()
    }
}

/// The next piece of `stdout`; `None` at its end.
async fn read_chunk(stdout: &mut ChildStdout) -> io::Result<Option<Bytes>> {
    let mut chunk = BytesMut::with_capacity(CHUNK);
    let read = stdout.read_buf(&mut chunk).await?;
    Ok((read > 0).then(|| chunk.freeze()))
}

/// Copies `body` into rclone's stdin. Fails only when the body does; if
/// rclone closes its stdin early, it gave up, and its exit status says why.
async fn feed(stdin: &mut ChildStdin, body: &mut ByteStream) -> Result<()> {
    while let Some(chunk) = body.next().await {
        if stdin.write_all(&chunk?).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// A private directory for one `rcat`'s spool file, removed with what is in
/// it when dropped (rclone leaves its spool behind when killed).
struct Spool(PathBuf);

impl Spool {
    fn create(parent: &Path) -> io::Result<Spool> {
        std::fs::create_dir_all(parent)?;
        let dir = parent.join(format!("berth-rclone-{:016x}", rand::random::<u64>()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(Spool(dir))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `path` as messages show it.
fn shown(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

fn is_a_directory(op: &str, path: &str) -> StorageError {
    StorageError::new(
        ErrorKind::Conflict,
        format!("{op} {}: is a directory", shown(path)),
    )
}

/// The storage kind of a probe classifier's kind.
fn kind_of(kind: ProbeErrorKind) -> ErrorKind {
    match kind {
        ProbeErrorKind::UnknownHost
        | ProbeErrorKind::ConnectionRefused
        | ProbeErrorKind::Unreachable
        | ProbeErrorKind::Timeout => ErrorKind::Transient,
        ProbeErrorKind::Auth => ErrorKind::Permission,
        ProbeErrorKind::NotFound => ErrorKind::NotFound,
        ProbeErrorKind::Config => ErrorKind::InvalidConfig,
        ProbeErrorKind::Tls | ProbeErrorKind::Other => ErrorKind::Other,
    }
}

/// The error of an rclone run that failed with `stderr` and `exit_code`:
/// `op path: <the gist of rclone's message>`, scrubbed.
fn failure(
    op: &str,
    path: &str,
    scrubber: &Scrubber,
    stderr: &str,
    exit_code: Option<i32>,
) -> StorageError {
    let kind = matching(PATTERNS, &error_text(stderr)).unwrap_or_else(|| {
        match classify(stderr, exit_code).kind {
            ProbeErrorKind::Other if exit_code == Some(EXIT_TEMPORARY) => ErrorKind::Transient,
            kind => kind_of(kind),
        }
    });
    let message = format!("{op} {}: {}", shown(path), gist(stderr));
    let error = StorageError::new(kind, scrubber.scrub(&message));
    tracing::debug!(op, path, kind = ?error.kind, message = %error.message, "rclone command failed");
    error
}

/// The error of an rclone run that gave no exit status.
fn run_failure(op: &str, path: &str, scrubber: &Scrubber, error: RunError) -> StorageError {
    let (kind, why) = match error {
        RunError::Spawn(e) => (ErrorKind::Other, format!("cannot run rclone: {e}")),
        RunError::Timeout(bound) => (
            ErrorKind::Transient,
            format!("rclone gave no answer within {bound:?}"),
        ),
        RunError::Wait(e) => (ErrorKind::Other, format!("rclone: {e}")),
    };
    StorageError::new(
        kind,
        scrubber.scrub(&format!("{op} {}: {why}", shown(path))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(names: &[&str]) -> Vec<Entry> {
        names
            .iter()
            .map(|name| Entry {
                path: format!("d/{name}"),
                kind: EntryKind::File,
                size: 0,
                modified: None,
            })
            .collect()
    }

    fn names(page: &ListPage) -> Vec<&str> {
        page.entries.iter().map(Entry::name).collect()
    }

    #[test]
    fn pages_follow_the_cursor() {
        let all = entries(&["a", "b", "c", "d", "e"]);
        let first = page(all.clone(), None, 2);
        assert_eq!(
            (names(&first), first.next.as_deref()),
            (vec!["a", "b"], Some("b"))
        );
        let last = page(all.clone(), Some("c"), 2);
        assert_eq!((names(&last), last.next.as_deref()), (vec!["d", "e"], None));
        let between = page(all.clone(), Some("bb"), 0);
        assert_eq!(names(&between), ["c", "d", "e"]);
        assert!(page(all.clone(), Some("zzz"), 1).entries.is_empty());
        assert_eq!(page(all, None, 5).next, None);
    }

    /// stderr of rclone v1.75.2 on a `local` remote, per command and case.
    #[test]
    fn classifies_rclone_failures_of_storage_commands() {
        let scrubber = Scrubber::new(["s3cr3t"]);
        let cases: &[(&str, i32, ErrorKind, &str)] = &[
            (
                "2026/12/04 06:44:07 ERROR : Attempt 1/1 failed with 1 errors and: b:/srv/x/nope is a directory or doesn't exist: object not found\n",
                4,
                ErrorKind::NotFound,
                "delete nope: b:/srv/x/nope is a directory or doesn't exist: object not found",
            ),
            (
                "2026/12/04 06:44:07 ERROR : Attempt 1/1 failed with 1 errors and: remove /srv/x/dir: directory not empty\n",
                1,
                ErrorKind::Conflict,
                "rmdir dir: remove /srv/x/dir: directory not empty",
            ),
            (
                "2026/12/04 06:44:07 CRITICAL: Failed to create file system for \"b:/srv/x/top\": is a file not a directory\n",
                1,
                ErrorKind::Conflict,
                "mkdir top: is a file not a directory",
            ),
            (
                "2026/12/04 06:45:47 ERROR : dir: Post request rcat error: open /srv/x/dir: is a directory\n",
                1,
                ErrorKind::Conflict,
                "write dir: dir: Post request rcat error: open /srv/x/dir: is a directory",
            ),
            (
                "2026/12/04 06:42:59 ERROR : a/x: --files-from failed to read file: is a directory not a file\n",
                1,
                ErrorKind::Conflict,
                "read a/x: a/x: --files-from failed to read file: is a directory not a file",
            ),
            (
                "2026/12/04 06:44:17 NOTICE: Failed to about: Memory root '' doesn't support about\n",
                1,
                ErrorKind::Unsupported,
                "usage /: Failed to about: Memory root '' doesn't support about",
            ),
            (
                "2026/12/04 06:42:09 NOTICE: Failed to lsjson: directory not found\n",
                3,
                ErrorKind::NotFound,
                "stat nope: Failed to lsjson: directory not found",
            ),
            (
                "2026/12/04 06:36:12 ERROR : error listing: couldn't list files: Propfind \"http://s3cr3t@127.0.0.1:1/\": dial tcp 127.0.0.1:1: connect: connection refused\n",
                5,
                ErrorKind::Transient,
                "list /: couldn't list files: Propfind \"http://***@127.0.0.1:1/\": dial tcp 127.0.0.1:1: connect: connection refused",
            ),
            ("2026/12/04 06:36:12 ERROR : something odd\n", 5, ErrorKind::Transient, "copy a: something odd"),
            ("2026/12/04 06:36:12 ERROR : something odd\n", 1, ErrorKind::Other, "copy a: something odd"),
        ];
        for (stderr, code, kind, message) in cases {
            let (op, path) = message.split_once(": ").unwrap().0.split_once(' ').unwrap();
            let path = if path == "/" { "" } else { path };
            let error = failure(op, path, &scrubber, stderr, Some(*code));
            assert_eq!(
                (error.kind, error.message.as_str()),
                (*kind, *message),
                "{stderr}"
            );
        }
    }

    #[test]
    fn capabilities_are_conservative_per_type() {
        let local = capability_of("local");
        assert!(local.directories && local.usage && local.set_mtime && local.atomic_rename);
        for bucket in ["s3", "memory", "azureblob", "union", "nosuchtype"] {
            let cap = capability_of(bucket);
            assert!(!cap.directories && !cap.usage && !cap.set_mtime && !cap.atomic_rename);
            assert!(cap.ranged_read && cap.copy && !cap.append);
        }
    }
}
