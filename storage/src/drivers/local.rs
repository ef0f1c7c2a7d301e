//! `local`: a directory on the server's disk.
//!
//! The backend is confined to its `root`, which must resolve (after symlinks)
//! inside one of the allowed roots (`BERTH_LOCAL_ROOTS`, [`DriverEnv`]).
//! Storage paths are checked with [`normalize_path`] (no `..`), and every
//! path is resolved one component at a time with `lstat`, so a symlink is
//! followed only where an option allows it and only when its canonical target
//! stays inside the root. Files are opened with `O_NOFOLLOW`. (A local process
//! that swaps a directory for a symlink between the check and the use can
//! still race this; API users cannot, since they can only create symlinks
//! through `links`, which refuses targets outside the root.)
//!
//! Writes stream into a hidden temp file (`.berth-tmp-<random>`) in the target
//! directory, are fsynced, then renamed into place: readers see the old or the
//! new content, and a failed or cancelled write leaves no file behind (missing
//! parent directories it created stay). Temp names never show in listings and
//! cannot be used as storage names. Names that are not valid UTF-8, sockets,
//! FIFOs and device nodes are skipped in listings.
//!
//! # Options
//!
//! | option | decision |
//! |---|---|
//! | `root` (berth) | absolute path; `""` means the first of `BERTH_LOCAL_ROOTS`. Must exist, be a directory and resolve inside an allowed root. |
//! | `description` | metadata only. |
//! | `encoding` | only the default `33554434` (`Slash,Dot`, also accepted spelled out) or `""`: names are native, and `/`, `.`, `..` cannot occur in storage names anyway. Anything else is refused. |
//! | `case_sensitive` | accepted: Linux filesystems are case sensitive, so this is what berth does. |
//! | `case_insensitive` | refused: case-insensitive lookups are not implemented on a case-sensitive filesystem. |
//! | `links` | honoured: a symlink `x` shows as a file `x.hoody-vfslink` holding the link target; writing such a file creates the symlink (target must stay inside the root); delete/rename/copy act on the link. Regular files or directories whose names end in `.hoody-vfslink` are skipped. |
//! | `copy_links` | honoured: symlinks are followed when their canonical target stays inside the root; others are skipped in listings (with a warning) and refused with `Permission` on access. delete/rename act on the link itself, rmdir removes a link to an empty directory. Together with `links`: refused. |
//! | `skip_links` | honoured: without `links`/`copy_links` symlinks are skipped in listings with a warning; `skip_links` silences those warnings (and the copy_links ones for unfollowable links). |
//! | `zero_size_links` | refused when true (deprecated): link sizes are always exact. |
//! | `unicode_normalization` | honoured: listed names and incoming paths are NFC-normalized; a lookup that misses falls back to the on-disk name whose NFC form matches; new names are created in NFC. |
//! | `one_file_system` | honoured: directories on another device than the root are not listed and cannot be entered. |
//! | `no_check_updated` | honoured: by default a read fails with `Transient` if the file's size or mtime changed while it was streamed; this option turns the check off. |
//! | `no_set_modtime` | honoured: [`LocalStorage::set_modified`] is refused and [`Capability::set_mtime`] is false. |
//! | `time_type` | honoured: `mtime` (default, also `"0"`/`""`), `atime`, `btime`, `ctime` (or `1`..`3`) choose the time in [`Entry::modified`]. `btime` is refused at build time when the root's filesystem does not report birth times, and falls back to mtime for a single entry that lacks one. |
//! | `no_preallocate`, `no_sparse`, `nounc`, `no_clone` | accepted, satisfied as given: on Linux berth never preallocates, never writes sparse multi-thread downloads, has no UNC paths and never makes reflink copies. |

use super::positional::read_fresh;
use super::streamed::StreamedFile;
use super::{lexical_normalize, DriverEnv};
use crate::{
    join_path, normalize_path, ByteStream, Capability, Entry, EntryKind, ErrorKind, ListPage,
    Result, Storage, StorageError, Usage,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Map, Value};
use std::collections::hash_map::RandomState;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use unicode_normalization::UnicodeNormalization;

/// Prefix of the hidden temp files that writes go through.
pub const TEMP_PREFIX: &str = ".berth-tmp-";
/// Suffix under which `links` shows symlinks.
pub const LINK_SUFFIX: &str = ".hoody-vfslink";
/// The only supported `encoding` (rclone's `Slash,Dot`).
const DEFAULT_ENCODING: &str = "33554434";
const DEFAULT_PAGE: usize = 1000;
const READ_CHUNK: usize = 1024 * 1024;
const MAX_LINK_TARGET: usize = 4096;

/// Which time [`Entry::modified`] reports (`time_type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimeType {
    /// Last modification (the default).
    #[default]
    Mtime,
    /// Last access.
    Atime,
    /// Creation (birth) time.
    Btime,
    /// Last status change.
    Ctime,
}

impl TimeType {
    /// Parses a `time_type` value: a name or rclone's number (`0` = mtime).
    pub fn parse(value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "0" | "mtime" => Ok(Self::Mtime),
            "1" | "atime" => Ok(Self::Atime),
            "2" | "btime" => Ok(Self::Btime),
            "3" | "ctime" => Ok(Self::Ctime),
            _ => Err(StorageError::invalid_config(
                "Invalid time_type: must be one of mtime, atime, btime, ctime",
            )),
        }
    }
}

/// The behaviour-changing options of a `local` backend, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalOptions {
    /// Show symlinks as `<name>.hoody-vfslink` files.
    pub links: bool,
    /// Follow symlinks that stay inside the root.
    pub copy_links: bool,
    /// Do not warn about skipped symlinks.
    pub skip_links: bool,
    /// NFC-normalize names.
    pub unicode_normalization: bool,
    /// Do not cross into other filesystems.
    pub one_file_system: bool,
    /// Do not check that files stay unchanged while read.
    pub no_check_updated: bool,
    /// Never set modification times.
    pub no_set_modtime: bool,
    /// Which time entries report.
    pub time_type: TimeType,
}

fn get_bool(config: &Map<String, Value>, name: &str) -> Result<bool> {
    match config.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" || s.is_empty() => Ok(false),
        Some(_) => Err(StorageError::invalid_config(format!(
            "{name} must be a boolean"
        ))),
    }
}

fn get_str(config: &Map<String, Value>, name: &str) -> Result<String> {
    match config.get(name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(StorageError::invalid_config(format!(
            "{name} must be a string"
        ))),
    }
}

fn check_encoding(value: &str) -> Result<()> {
    let value = value.trim();
    if value.is_empty() || value == DEFAULT_ENCODING {
        return Ok(());
    }
    let mut names: Vec<String> = value
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    names.sort();
    if names == ["dot", "slash"] {
        return Ok(());
    }
    Err(StorageError::invalid_config(format!(
        "encoding '{value}' is not supported by the local driver: only the default {DEFAULT_ENCODING} (Slash,Dot) is"
    )))
}

impl LocalOptions {
    /// Reads and validates every `local` field except `root`.
    pub fn from_config(config: &Map<String, Value>) -> Result<Self> {
        get_str(config, "description")?;
        check_encoding(&get_str(config, "encoding")?)?;
        let case_insensitive = get_bool(config, "case_insensitive")?;
        let case_sensitive = get_bool(config, "case_sensitive")?;
        if case_insensitive && case_sensitive {
            return Err(StorageError::invalid_config(
                "case_insensitive and case_sensitive cannot both be set",
            ));
        }
        if case_insensitive {
            return Err(StorageError::invalid_config(
                "case_insensitive is not supported: the local filesystem is case sensitive",
            ));
        }
        let links = get_bool(config, "links")?;
        let copy_links = get_bool(config, "copy_links")?;
        if links && copy_links {
            return Err(StorageError::invalid_config(
                "links and copy_links cannot both be set",
            ));
        }
        if get_bool(config, "zero_size_links")? {
            return Err(StorageError::invalid_config(
                "zero_size_links is deprecated and not supported: link sizes are always exact",
            ));
        }
        // Satisfied as given on Linux (see the module docs).
        for name in ["nounc", "no_preallocate", "no_sparse", "no_clone"] {
            get_bool(config, name)?;
        }
        Ok(Self {
            links,
            copy_links,
            skip_links: get_bool(config, "skip_links")?,
            unicode_normalization: get_bool(config, "unicode_normalization")?,
            one_file_system: get_bool(config, "one_file_system")?,
            no_check_updated: get_bool(config, "no_check_updated")?,
            no_set_modtime: get_bool(config, "no_set_modtime")?,
            time_type: TimeType::parse(&get_str(config, "time_type")?)?,
        })
    }
}

/// The `local` driver: a directory confined to its root.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    root_dev: u64,
    opts: LocalOptions,
}

/// A resolved storage path.
enum Target {
    /// A file or directory at `host`; `link` is the symlink that led there
    /// when `copy_links` followed one.
    Node {
        host: PathBuf,
        meta: Metadata,
        link: Option<PathBuf>,
    },
    /// `links`: a symlink shown as a `.hoody-vfslink` file.
    Link {
        host: PathBuf,
        target: PathBuf,
        meta: Metadata,
    },
}

/// Where a write goes.
enum WritePlan {
    /// A regular file at `host`, through a temp file in `dir`.
    File { dir: PathBuf, host: PathBuf },
    /// `links`: a symlink at `host` in `dir`.
    Link { dir: PathBuf, host: PathBuf },
}

/// What a read streams.
enum ReadSource {
    Bytes(Bytes),
    File {
        file: File,
        len: u64,
        modified: Option<SystemTime>,
    },
}

/// A temp file removed on drop unless kept.
struct TempPath(Option<PathBuf>);

impl TempPath {
    fn path(&self) -> &Path {
        self.0.as_deref().expect("temp path taken")
    }

    /// Renames the temp file to `host` (replacing what is there) and keeps
    /// it; `shown` names the target in errors.
    fn put_in_place(mut self, host: &Path, shown: &str) -> Result<()> {
        fs::rename(self.path(), host).map_err(|e| StorageError::from_io(e, shown))?;
        self.0 = None;
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(d) = SystemTime::now().duration_since(UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    format!("{TEMP_PREFIX}{:016x}", h.finish())
}

/// Creates a fresh temp file in `dir`.
fn create_temp(dir: &Path, shown: &str) -> Result<(File, TempPath)> {
    let mut last = None;
    for _ in 0..8 {
        let path = dir.join(temp_name());
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((file, TempPath(Some(path)))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(StorageError::from_io(e, shown)),
        }
    }
    Err(StorageError::from_io(
        last.unwrap_or_else(|| io::Error::other("no temp name")),
        shown,
    ))
}

fn open_nofollow(path: &Path, shown: &str) -> Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| StorageError::from_io(e, shown))
}

fn conflict(shown: &str, what: &str) -> StorageError {
    let shown = if shown.is_empty() { "/" } else { shown };
    StorageError::new(ErrorKind::Conflict, format!("{shown}: {what}"))
}

fn permission(shown: &str, what: &str) -> StorageError {
    let shown = if shown.is_empty() { "/" } else { shown };
    StorageError::new(ErrorKind::Permission, format!("{shown}: {what}"))
}

fn unix_time(secs: i64, nanos: i64) -> Option<SystemTime> {
    let nanos = Duration::from_nanos(nanos.clamp(0, 999_999_999) as u64);
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs as u64) + nanos)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))
            .and_then(|t| t.checked_add(nanos))
    }
}

/// Resolves and checks the root against the allowed roots.
fn resolve_root(root: &str, env: &DriverEnv) -> Result<(PathBuf, Metadata)> {
    let raw = if root.is_empty() {
        env.local_roots.first().cloned().ok_or_else(|| {
            StorageError::invalid_config(
                "root is empty and no local roots are configured (BERTH_LOCAL_ROOTS)",
            )
        })?
    } else {
        PathBuf::from(root)
    };
    let canonical = env.confine("root", &raw)?;
    let shown = raw.display();
    let meta = fs::metadata(&canonical)
        .map_err(|e| StorageError::invalid_config(format!("root '{shown}' cannot be read: {e}")))?;
    if !meta.is_dir() {
        return Err(StorageError::invalid_config(format!(
            "root '{shown}' is not a directory"
        )));
    }
    Ok((canonical, meta))
}

impl Inner {
    /// Normalizes a storage path into its shown form and components.
    fn comps(&self, path: &str) -> Result<(String, Vec<String>)> {
        let mut norm = normalize_path(path)?;
        if self.opts.unicode_normalization {
            norm = norm.nfc().collect();
        }
        let comps: Vec<String> = if norm.is_empty() {
            Vec::new()
        } else {
            norm.split('/').map(str::to_string).collect()
        };
        for c in &comps {
            if c.starts_with(TEMP_PREFIX) {
                return Err(permission(
                    &norm,
                    &format!("names starting with '{TEMP_PREFIX}' are reserved"),
                ));
            }
            if c.contains('\0') {
                return Err(permission(&norm, "names cannot contain NUL"));
            }
        }
        Ok((norm, comps))
    }

    /// The stripped name when `name` is a `links` link file name.
    fn link_name<'a>(&self, name: &'a str) -> Option<&'a str> {
        if !self.opts.links {
            return None;
        }
        name.strip_suffix(LINK_SUFFIX).filter(|s| !s.is_empty())
    }

    /// `dir/name`, or with `unicode_normalization` the on-disk name whose NFC
    /// form is `name` when `name` itself does not exist.
    fn child(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        if !self.opts.unicode_normalization || fs::symlink_metadata(&path).is_ok() {
            return path;
        }
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                let os = entry.file_name();
                if let Some(n) = os.to_str() {
                    if n != name && n.nfc().eq(name.chars()) {
                        return dir.join(os);
                    }
                }
            }
        }
        path
    }

    fn same_fs(&self, meta: &Metadata) -> bool {
        !self.opts.one_file_system || meta.dev() == self.root_dev
    }

    /// Follows a symlink, refusing targets outside the root.
    fn follow(&self, link: &Path, shown: &str) -> Result<(PathBuf, Metadata)> {
        let target = fs::canonicalize(link).map_err(|e| StorageError::from_io(e, shown))?;
        if !target.starts_with(&self.root) {
            return Err(permission(shown, "symlink points outside the root"));
        }
        let meta = fs::metadata(&target).map_err(|e| StorageError::from_io(e, shown))?;
        Ok((target, meta))
    }

    /// Resolves the directory made of `comps`, creating missing ones when
    /// `create` is set.
    fn walk(&self, comps: &[String], shown: &str, create: bool) -> Result<PathBuf> {
        let mut cur = self.root.clone();
        for c in comps {
            if self.link_name(c).is_some() {
                return Err(conflict(shown, "not a directory"));
            }
            let path = self.child(&cur, c);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    match fs::create_dir(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(StorageError::from_io(e, shown)),
                    }
                    fs::symlink_metadata(&path).map_err(|e| StorageError::from_io(e, shown))?
                }
                Err(e) => return Err(StorageError::from_io(e, shown)),
            };
            let ft = meta.file_type();
            if ft.is_symlink() {
                if !self.opts.copy_links {
                    return Err(if create {
                        conflict(shown, "a symlink is in the way")
                    } else {
                        StorageError::not_found(shown)
                    });
                }
                let (target, tmeta) = self.follow(&path, shown)?;
                if !tmeta.is_dir() {
                    return Err(conflict(shown, "not a directory"));
                }
                if !self.same_fs(&tmeta) {
                    return Err(permission(shown, "crosses a filesystem boundary"));
                }
                cur = target;
            } else if ft.is_dir() {
                if !self.same_fs(&meta) {
                    return Err(if create {
                        permission(shown, "crosses a filesystem boundary")
                    } else {
                        StorageError::not_found(shown)
                    });
                }
                cur = path;
            } else {
                return Err(conflict(shown, "not a directory"));
            }
        }
        Ok(cur)
    }

    /// Resolves an existing path.
    fn lookup(&self, comps: &[String], shown: &str) -> Result<Target> {
        let Some((last, parent)) = comps.split_last() else {
            let meta = fs::metadata(&self.root).map_err(|e| StorageError::from_io(e, shown))?;
            return Ok(Target::Node {
                host: self.root.clone(),
                meta,
                link: None,
            });
        };
        let dir = self.walk(parent, shown, false)?;
        if let Some(stripped) = self.link_name(last) {
            let host = self.child(&dir, stripped);
            let meta = fs::symlink_metadata(&host).map_err(|e| StorageError::from_io(e, shown))?;
            if !meta.file_type().is_symlink() {
                return Err(StorageError::not_found(shown));
            }
            let target = fs::read_link(&host).map_err(|e| StorageError::from_io(e, shown))?;
            return Ok(Target::Link { host, target, meta });
        }
        let host = self.child(&dir, last);
        let meta = fs::symlink_metadata(&host).map_err(|e| StorageError::from_io(e, shown))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            if !self.opts.copy_links {
                return Err(StorageError::not_found(shown));
            }
            let (target, tmeta) = self.follow(&host, shown)?;
            if !(tmeta.is_file() || (tmeta.is_dir() && self.same_fs(&tmeta))) {
                return Err(StorageError::not_found(shown));
            }
            return Ok(Target::Node {
                host: target,
                meta: tmeta,
                link: Some(host),
            });
        }
        if (ft.is_dir() && !self.same_fs(&meta)) || !(ft.is_dir() || ft.is_file()) {
            return Err(StorageError::not_found(shown));
        }
        Ok(Target::Node {
            host,
            meta,
            link: None,
        })
    }

    fn time_of(&self, meta: &Metadata) -> Option<SystemTime> {
        match self.opts.time_type {
            TimeType::Mtime => meta.modified().ok(),
            TimeType::Atime => meta.accessed().ok(),
            TimeType::Btime => meta.created().or_else(|_| meta.modified()).ok(),
            TimeType::Ctime => unix_time(meta.ctime(), meta.ctime_nsec()),
        }
    }

    fn entry(&self, path: String, target: &Target) -> Entry {
        match target {
            Target::Node { meta, .. } if meta.is_dir() => Entry {
                path,
                kind: EntryKind::Dir,
                size: 0,
                modified: self.time_of(meta),
            },
            Target::Node { meta, .. } => Entry {
                path,
                kind: EntryKind::File,
                size: meta.len(),
                modified: self.time_of(meta),
            },
            Target::Link { target, meta, .. } => Entry {
                path,
                kind: EntryKind::File,
                size: target.as_os_str().len() as u64,
                modified: self.time_of(meta),
            },
        }
    }

    fn stat(&self, path: &str) -> Result<Entry> {
        let (shown, comps) = self.comps(path)?;
        let target = self.lookup(&comps, &shown)?;
        Ok(self.entry(shown, &target))
    }

    /// One listing page, plus warnings to log from the caller's context.
    fn list(
        &self,
        dir: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(ListPage, Vec<String>)> {
        let (shown, comps) = self.comps(dir)?;
        let host = match self.lookup(&comps, &shown)? {
            Target::Node { host, meta, .. } if meta.is_dir() => host,
            _ => return Err(conflict(&shown, "not a directory")),
        };
        let mut warnings = Vec::new();
        let mut candidates: Vec<(String, PathBuf, fs::FileType)> = Vec::new();
        let read = fs::read_dir(&host).map_err(|e| StorageError::from_io(e, &shown))?;
        for item in read {
            let item = item.map_err(|e| StorageError::from_io(e, &shown))?;
            let os = item.file_name();
            let Some(raw) = os.to_str() else {
                warnings.push(format!(
                    "skipping '{}' in '{shown}': name is not valid UTF-8",
                    os.to_string_lossy()
                ));
                continue;
            };
            if raw.starts_with(TEMP_PREFIX) {
                continue;
            }
            let ft = item
                .file_type()
                .map_err(|e| StorageError::from_io(e, &shown))?;
            let mut name = if self.opts.unicode_normalization {
                raw.nfc().collect()
            } else {
                raw.to_string()
            };
            if self.opts.links {
                if ft.is_symlink() {
                    name.push_str(LINK_SUFFIX);
                } else if name.ends_with(LINK_SUFFIX) {
                    warnings.push(format!(
                        "skipping '{}': its name ends in {LINK_SUFFIX} but it is not a symlink",
                        join_path(&shown, &name)
                    ));
                    continue;
                }
            }
            candidates.push((name, item.path(), ft));
        }
        candidates.sort_by(|a, b| a.0.cmp(&b.0));
        candidates.dedup_by(|b, a| {
            let dup = a.0 == b.0;
            if dup {
                warnings.push(format!(
                    "skipping a second entry named '{}' after unicode normalization",
                    join_path(&shown, &b.0)
                ));
            }
            dup
        });
        let start = match cursor {
            Some(c) => candidates.partition_point(|(n, _, _)| n.as_str() <= c),
            None => 0,
        };
        let mut entries = Vec::new();
        for (name, path, ft) in &candidates[start..] {
            if entries.len() > limit {
                break;
            }
            let child = join_path(&shown, name);
            let target = if ft.is_symlink() {
                if self.opts.links {
                    match (fs::symlink_metadata(path), fs::read_link(path)) {
                        (Ok(meta), Ok(target)) => Target::Link {
                            host: path.clone(),
                            target,
                            meta,
                        },
                        _ => continue,
                    }
                } else if self.opts.copy_links {
                    match self.follow(path, &child) {
                        Ok((host, meta))
                            if meta.is_file() || (meta.is_dir() && self.same_fs(&meta)) =>
                        {
                            Target::Node {
                                host,
                                meta,
                                link: Some(path.clone()),
                            }
                        }
                        Ok(_) => continue,
                        Err(e) => {
                            if !self.opts.skip_links {
                                warnings.push(format!("skipping symlink: {e}"));
                            }
                            continue;
                        }
                    }
                } else {
                    if !self.opts.skip_links {
                        warnings.push(format!(
                            "skipping symlink '{child}' (set links or copy_links to expose symlinks, skip_links to silence this)"
                        ));
                    }
                    continue;
                }
            } else if ft.is_dir() || ft.is_file() {
                let Ok(meta) = fs::symlink_metadata(path) else {
                    continue;
                };
                if meta.is_dir() && !self.same_fs(&meta) {
                    continue;
                }
                Target::Node {
                    host: path.clone(),
                    meta,
                    link: None,
                }
            } else {
                continue;
            };
            entries.push(self.entry(child, &target));
        }
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|e| e.name().to_string())
        } else {
            None
        };
        Ok((ListPage { entries, next }, warnings))
    }

    fn open_read(&self, path: &str) -> Result<ReadSource> {
        let (shown, comps) = self.comps(path)?;
        match self.lookup(&comps, &shown)? {
            Target::Link { target, .. } => Ok(ReadSource::Bytes(Bytes::copy_from_slice(
                target.as_os_str().as_bytes(),
            ))),
            Target::Node { meta, .. } if meta.is_dir() => Err(conflict(&shown, "is a directory")),
            Target::Node { host, .. } => {
                let file = open_nofollow(&host, &shown)?;
                let meta = file
                    .metadata()
                    .map_err(|e| StorageError::from_io(e, &shown))?;
                if !meta.is_file() {
                    return Err(conflict(&shown, "not a regular file"));
                }
                Ok(ReadSource::File {
                    file,
                    len: meta.len(),
                    modified: meta.modified().ok(),
                })
            }
        }
    }

    fn prepare_write(&self, comps: &[String], shown: &str) -> Result<WritePlan> {
        let Some((last, parent)) = comps.split_last() else {
            return Err(conflict(shown, "is a directory"));
        };
        let dir = self.walk(parent, shown, true)?;
        if let Some(stripped) = self.link_name(last) {
            let host = self.child(&dir, stripped);
            return Ok(WritePlan::Link { dir, host });
        }
        let host = self.child(&dir, last);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => Err(conflict(shown, "is a directory")),
            Ok(m) if m.file_type().is_symlink() && self.opts.copy_links => {
                let (target, tmeta) = self.follow(&host, shown)?;
                if tmeta.is_dir() {
                    return Err(conflict(shown, "is a directory"));
                }
                let dir = target.parent().map(Path::to_path_buf).unwrap_or(dir);
                Ok(WritePlan::File { dir, host: target })
            }
            Ok(_) => Ok(WritePlan::File { dir, host }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(WritePlan::File { dir, host }),
            Err(e) => Err(StorageError::from_io(e, shown)),
        }
    }

    /// Writes an empty file at `host`: created in place when there is none
    /// (an empty file cannot be seen half-written, and that spares the
    /// rename), else through a temp file renamed over the old one.
    fn write_empty(&self, dir: &Path, host: PathBuf, shown: String) -> Result<Entry> {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&host)
        {
            Ok(file) => {
                let meta = file
                    .metadata()
                    .map_err(|e| StorageError::from_io(e, &shown))?;
                let target = Target::Node {
                    host,
                    meta,
                    link: None,
                };
                return Ok(self.entry(shown, &target));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StorageError::from_io(e, &shown)),
        }
        let (file, tmp) = create_temp(dir, &shown)?;
        drop(file);
        tmp.put_in_place(&host, &shown)?;
        self.stat(&shown)
    }

    /// Checks a `links` target: it must stay inside the root.
    fn check_link_target(&self, dir: &Path, raw: &[u8], shown: &str) -> Result<PathBuf> {
        if raw.is_empty() || raw.contains(&0) {
            return Err(StorageError::new(
                ErrorKind::Other,
                format!("{shown}: a link target must be a non-empty path without NUL"),
            ));
        }
        let target = PathBuf::from(OsStr::from_bytes(raw));
        let resolved = lexical_normalize(&dir.join(&target));
        if !resolved.starts_with(&self.root) {
            return Err(permission(shown, "link target points outside the root"));
        }
        Ok(target)
    }

    /// Creates (or replaces) the symlink `host` -> `target` atomically.
    fn make_link(&self, dir: &Path, host: &Path, target: &Path, shown: &str) -> Result<()> {
        let tmp = TempPath(Some(dir.join(temp_name())));
        std::os::unix::fs::symlink(target, tmp.path())
            .map_err(|e| StorageError::from_io(e, shown))?;
        tmp.put_in_place(host, shown)
    }

    fn write_link(&self, path: &str, raw: &[u8]) -> Result<()> {
        let (shown, comps) = self.comps(path)?;
        match self.prepare_write(&comps, &shown)? {
            WritePlan::Link { dir, host } => {
                let target = self.check_link_target(&dir, raw, &shown)?;
                self.make_link(&dir, &host, &target, &shown)
            }
            WritePlan::File { .. } => Err(StorageError::new(
                ErrorKind::Other,
                format!("{shown}: not a link name"),
            )),
        }
    }

    fn delete(&self, path: &str) -> Result<()> {
        let (shown, comps) = self.comps(path)?;
        let victim = match self.lookup(&comps, &shown)? {
            Target::Link { host, .. } => host,
            Target::Node {
                link: Some(link),
                meta,
                ..
            } if meta.is_file() => link,
            Target::Node { meta, .. } if meta.is_dir() => {
                return Err(conflict(&shown, "is a directory"))
            }
            Target::Node { host, .. } => host,
        };
        fs::remove_file(victim).map_err(|e| StorageError::from_io(e, &shown))
    }

    fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (from_shown, from_comps) = self.comps(from)?;
        let (to_shown, to_comps) = self.comps(to)?;
        let source = self.lookup(&from_comps, &from_shown)?;
        match (source, self.prepare_write(&to_comps, &to_shown)?) {
            (Target::Link { target, .. }, WritePlan::Link { dir, host }) => {
                self.make_link(&dir, &host, &target, &to_shown)
            }
            (Target::Node { meta, .. }, _) if meta.is_dir() => {
                Err(conflict(&from_shown, "is a directory"))
            }
            (Target::Node { host: src, .. }, WritePlan::File { dir, host }) => {
                let mut input = open_nofollow(&src, &from_shown)?;
                let (mut output, tmp) = create_temp(&dir, &to_shown)?;
                io::copy(&mut input, &mut output).map_err(|e| StorageError::from_io(e, &to_shown))?;
                output
                    .sync_all()
                    .map_err(|e| StorageError::from_io(e, &to_shown))?;
                tmp.put_in_place(&host, &to_shown)
            }
            _ => Err(StorageError::unsupported(format!(
                "{to_shown}: links: a {LINK_SUFFIX} file and a regular file cannot be copied into each other"
            ))),
        }
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from_shown, from_comps) = self.comps(from)?;
        let (to_shown, to_comps) = self.comps(to)?;
        if from_comps.is_empty() {
            return Err(permission("/", "cannot rename the root directory"));
        }
        let source = match self.lookup(&from_comps, &from_shown)? {
            Target::Link { host, .. }
            | Target::Node {
                link: Some(host), ..
            } => host,
            Target::Node { host, .. } => host,
        };
        if from_shown == to_shown {
            return Ok(());
        }
        let Some((last, parent)) = to_comps.split_last() else {
            return Err(conflict("/", "is a directory"));
        };
        if to_shown.starts_with(&format!("{from_shown}/")) {
            return Err(conflict(&to_shown, "cannot move a directory into itself"));
        }
        let from_last = from_comps.last().map(String::as_str).unwrap_or_default();
        if self.link_name(from_last).is_some() != self.link_name(last).is_some() {
            return Err(StorageError::unsupported(format!(
                "{to_shown}: links: a {LINK_SUFFIX} file can only be renamed to another {LINK_SUFFIX} name"
            )));
        }
        let dir = self.walk(parent, &to_shown, true)?;
        let dest = self.child(&dir, self.link_name(last).unwrap_or(last));
        fs::rename(&source, &dest).map_err(|e| StorageError::from_io(e, &to_shown))
    }

    fn mkdir(&self, path: &str) -> Result<()> {
        let (shown, comps) = self.comps(path)?;
        self.walk(&comps, &shown, true).map(|_| ())
    }

    fn rmdir(&self, path: &str) -> Result<()> {
        let (shown, comps) = self.comps(path)?;
        if comps.is_empty() {
            return Err(permission("/", "cannot remove the root directory"));
        }
        match self.lookup(&comps, &shown)? {
            Target::Node {
                host,
                meta,
                link: Some(link),
            } if meta.is_dir() => {
                let empty = fs::read_dir(&host)
                    .map_err(|e| StorageError::from_io(e, &shown))?
                    .next()
                    .is_none();
                if !empty {
                    return Err(conflict(&shown, "directory not empty"));
                }
                fs::remove_file(link).map_err(|e| StorageError::from_io(e, &shown))
            }
            Target::Node { host, meta, .. } if meta.is_dir() => {
                fs::remove_dir(host).map_err(|e| StorageError::from_io(e, &shown))
            }
            _ => Err(conflict(&shown, "not a directory")),
        }
    }

    fn usage(&self) -> Result<Usage> {
        let st =
            rustix::fs::statvfs(&self.root).map_err(|e| StorageError::from_io(e.into(), ""))?;
        let frsize = st.f_frsize;
        Ok(Usage {
            total: Some(st.f_blocks.saturating_mul(frsize)),
            used: Some(
                st.f_blocks
                    .saturating_sub(st.f_bfree)
                    .saturating_mul(frsize),
            ),
            free: Some(st.f_bavail.saturating_mul(frsize)),
        })
    }

    fn probe(&self) -> Result<()> {
        let root = self.root.display();
        match fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(StorageError::new(
                    ErrorKind::NotFound,
                    format!("local root '{root}' is no longer a directory"),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StorageError::new(
                    ErrorKind::NotFound,
                    format!("local root '{root}' no longer exists"),
                ))
            }
            Err(e) => {
                let mut err = StorageError::from_io(e, "");
                err.message = format!("local root '{root}' cannot be read: {}", err.message);
                return Err(err);
            }
        }
        fs::read_dir(&self.root).map(|_| ()).map_err(|e| {
            let mut err = StorageError::from_io(e, "");
            err.message = format!("local root '{root}' is not readable: {}", err.message);
            err
        })
    }

    fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        if self.opts.no_set_modtime {
            return Err(StorageError::unsupported(
                "no_set_modtime is set: modification times are not changed",
            ));
        }
        let (shown, comps) = self.comps(path)?;
        match self.lookup(&comps, &shown)? {
            Target::Node { host, .. } => open_nofollow(&host, &shown)?
                .set_modified(time)
                .map_err(|e| StorageError::from_io(e, &shown)),
            Target::Link { .. } => Err(StorageError::unsupported(format!(
                "{shown}: cannot set the modification time of a link"
            ))),
        }
    }
}

impl LocalStorage {
    /// Builds the driver from a `local` provider config (see the module docs
    /// for every field).
    pub async fn from_config(config: &Map<String, Value>, env: &DriverEnv) -> Result<Self> {
        let options = LocalOptions::from_config(config)?;
        let root = get_str(config, "root")?;
        Self::new(&root, options, env).await
    }

    /// Opens `root` (`""`: the first allowed root) with validated options.
    pub async fn new(root: &str, options: LocalOptions, env: &DriverEnv) -> Result<Self> {
        let root = root.to_string();
        let env = env.clone();
        let (root, meta) = tokio::task::spawn_blocking(move || resolve_root(&root, &env))
            .await
            .map_err(|e| {
                StorageError::new(ErrorKind::Other, format!("local root check failed: {e}"))
            })??;
        if options.time_type == TimeType::Btime && meta.created().is_err() {
            return Err(StorageError::invalid_config(format!(
                "time_type 'btime' is not supported: the filesystem at root '{}' does not report birth times",
                root.display()
            )));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                root_dev: meta.dev(),
                root,
                opts: options,
            }),
        })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The options in force.
    pub fn options(&self) -> &LocalOptions {
        &self.inner.opts
    }

    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || f(&inner)).await
    }

    async fn write_file(
        &self,
        dir: PathBuf,
        host: PathBuf,
        shown: String,
        mut body: ByteStream,
    ) -> Result<()> {
        // One blocking-pool thread writes the file (straight to the disk
        // where it can, see `StreamedFile`) while the next pieces arrive:
        // receiving and writing overlap, up to `PIECES_AHEAD` pieces. `None`
        // ends the file; a queue closed without it (the body failed) stops
        // the writer. The temp file belongs to this future: dropped midway,
        // it is removed at once.
        let (file, tmp) = {
            let shown = shown.clone();
            blocking(move || create_temp(&dir, &shown)).await?
        };
        let (pieces, mut queue) = tokio::sync::mpsc::channel::<Option<Bytes>>(PIECES_AHEAD);
        let writer = {
            let (shown, tmp_path) = (shown.clone(), tmp.path().to_path_buf());
            blocking(move || {
                let mut out = StreamedFile::new(file, &tmp_path);
                let io = |e| StorageError::from_io(e, &shown);
                while let Some(item) = queue.blocking_recv() {
                    match item {
                        Some(piece) => out.write(&piece).map_err(io)?,
                        None => return out.finish().map(drop).map_err(io),
                    }
                }
                Err(StorageError::new(
                    ErrorKind::Other,
                    format!("{shown}: the write ended early"),
                ))
            })
        };
        let feed = async move {
            while let Some(piece) = body.next().await {
                if pieces.send(Some(piece?)).await.is_err() {
                    // The writer stopped: its error tells why.
                    return Ok(());
                }
            }
            let _ = pieces.send(None).await;
            Ok::<_, StorageError>(())
        };
        let (fed, written) = futures::join!(feed, writer);
        // The body's own error comes first: the writer's is its echo.
        fed.and(written)?;
        blocking(move || tmp.put_in_place(&host, &shown)).await
    }
}

/// How many pieces of a streamed write may wait for the disk.
const PIECES_AHEAD: usize = 4;

/// Runs blocking file work on the blocking pool.
async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        StorageError::new(ErrorKind::Other, format!("local storage task failed: {e}"))
    })?
}

/// Where a streamed read of a local file is.
struct ReadCursor {
    file: Arc<File>,
    pos: u64,
    /// Bytes still wanted (the end of the range, or `u64::MAX`).
    remaining: u64,
    shown: String,
}

/// Fails a read whose file changed while it was streamed.
fn check_unchanged(file: &File, len: u64, modified: Option<SystemTime>, shown: &str) -> Result<()> {
    let now = file
        .metadata()
        .map_err(|e| StorageError::from_io(e, shown))?;
    if now.len() != len || now.modified().ok() != modified {
        return Err(StorageError::new(
            ErrorKind::Transient,
            format!(
                "{shown}: file changed while being read (size {len} -> {}); set no_check_updated to allow this",
                now.len()
            ),
        ));
    }
    Ok(())
}

#[async_trait]
impl Storage for LocalStorage {
    /// `Unsupported` with `no_set_modtime`.
    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        let path = path.to_string();
        self.run(move |i| i.set_modified(&path, time)).await
    }

    fn capability(&self) -> Capability {
        Capability {
            directories: true,
            ranged_read: true,
            copy: true,
            atomic_rename: true,
            set_mtime: !self.inner.opts.no_set_modtime,
            usage: true,
            append: false,
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        let path = path.to_string();
        self.run(move |i| i.stat(&path)).await
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        let dir = dir.to_string();
        let limit = if limit == 0 { DEFAULT_PAGE } else { limit };
        let (page, warnings) = self
            .run(move |i| i.list(&dir, cursor.as_deref(), limit))
            .await?;
        for w in warnings {
            tracing::warn!(root = %self.inner.root.display(), "{w}");
        }
        Ok(page)
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        let (shown, _) = self.inner.comps(path)?;
        let path = path.to_string();
        let source = self.run(move |i| i.open_read(&path)).await?;
        let (offset, length) = range.unwrap_or((0, u64::MAX));
        match source {
            ReadSource::Bytes(bytes) => {
                let len = bytes.len() as u64;
                let start = offset.min(len);
                let end = start.saturating_add(length).min(len);
                Ok(crate::once(bytes.slice(start as usize..end as usize)))
            }
            ReadSource::File {
                file,
                len,
                modified,
            } => {
                // Positional reads on the blocking pool, each straight into
                // the buffer that is handed on.
                let check = !self.inner.opts.no_check_updated;
                let cursor = ReadCursor {
                    file: Arc::new(file),
                    pos: offset,
                    remaining: length,
                    shown,
                };
                let stream = futures::stream::try_unfold(cursor, move |mut c| async move {
                    let want = c.remaining.min(READ_CHUNK as u64) as usize;
                    let (file, pos, shown) = (c.file.clone(), c.pos, c.shown.clone());
                    let last = want as u64 == c.remaining;
                    let piece = blocking(move || {
                        let piece = if want == 0 {
                            Bytes::new()
                        } else {
                            read_fresh(&file, pos, want)
                                .map(Bytes::from)
                                .map_err(|e| StorageError::from_io(e, &shown))?
                        };
                        let at_end = piece.len() < want || last;
                        if at_end && check {
                            check_unchanged(&file, len, modified, &shown)?;
                        }
                        Ok(piece)
                    })
                    .await?;
                    if piece.is_empty() {
                        return Ok(None);
                    }
                    c.pos += piece.len() as u64;
                    c.remaining -= piece.len() as u64;
                    Ok(Some((piece, c)))
                });
                Ok(stream.into_stream().boxed())
            }
        }
    }

    async fn write(&self, path: &str, mut body: ByteStream) -> Result<Entry> {
        let (shown, comps) = self.inner.comps(path)?;
        // A body without a byte (a file created empty) is written and
        // stated in one go on the blocking pool, not in five hand-overs.
        let Some(first) = first_bytes(&mut body).await? else {
            return self
                .run(move |i| match i.prepare_write(&comps, &shown)? {
                    WritePlan::File { dir, host } => i.write_empty(&dir, host, shown),
                    WritePlan::Link { .. } => {
                        i.write_link(&shown, &[])?;
                        i.stat(&shown)
                    }
                })
                .await;
        };
        let body = futures::stream::once(async { Ok(first) })
            .chain(body)
            .boxed();
        let plan = {
            let (shown, comps) = (shown.clone(), comps.clone());
            self.run(move |i| i.prepare_write(&comps, &shown)).await?
        };
        match plan {
            WritePlan::File { dir, host } => {
                self.write_file(dir, host, shown.clone(), body).await?
            }
            WritePlan::Link { .. } => {
                let raw = collect_limited(body, MAX_LINK_TARGET, &shown).await?;
                let path = shown.clone();
                self.run(move |i| i.write_link(&path, &raw)).await?;
            }
        }
        self.stat(&shown).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let path = path.to_string();
        self.run(move |i| i.delete(&path)).await
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (from.to_string(), to.to_string());
        self.run(move |i| i.copy(&from, &to)).await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (from.to_string(), to.to_string());
        self.run(move |i| i.rename(&from, &to)).await
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        let path = path.to_string();
        self.run(move |i| i.mkdir(&path)).await
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        let path = path.to_string();
        self.run(move |i| i.rmdir(&path)).await
    }

    async fn usage(&self) -> Result<Usage> {
        self.run(|i| i.usage()).await
    }

    /// Fails with a message naming the root when it vanished or is unreadable.
    async fn probe(&self) -> Result<()> {
        self.run(|i| i.probe()).await
    }
}

/// The first non-empty piece of `body`, or `None` when it ends without one.
async fn first_bytes(body: &mut ByteStream) -> Result<Option<Bytes>> {
    while let Some(piece) = body.next().await {
        let piece = piece?;
        if !piece.is_empty() {
            return Ok(Some(piece));
        }
    }
    Ok(None)
}

/// Collects a small body, refusing more than `max` bytes.
async fn collect_limited(mut body: ByteStream, max: usize, shown: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() > max {
            return Err(StorageError::new(
                ErrorKind::Other,
                format!("{shown}: a link target is at most {max} bytes"),
            ));
        }
    }
    Ok(out)
}
