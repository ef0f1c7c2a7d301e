//! `chunker`: files larger than `chunk_size` are stored on the upstream as
//! numbered chunk files plus, by default, a small metadata object under the
//! file's own name, in rclone's layout: a directory written by rclone's
//! chunker reads back through berth and the other way round.
//!
//! - A file of at most `chunk_size` bytes is stored as is (no metadata),
//!   unless its content could be mistaken for metadata or the hash type is
//!   `md5all`/`sha1all`: then it becomes a composite file of one chunk (as
//!   rclone does). With `meta_format: none` every file is stored as chunks.
//! - Listings hide chunk files and show each composite file once, with the
//!   total size of its chunks and the metadata object's modification time.
//! - Reads assemble the chunks (ranges may span chunk boundaries); delete,
//!   rename and copy act on the metadata object and every chunk.
//! - A composite file is valid when its chunks are numbered without gaps
//!   from the first and, with metadata, their count and total size match it.
//!   A damaged one is left out of listings with a warning (`fail_hard:
//!   false`) or fails the listing (`fail_hard: true`); either way `stat` and
//!   `read` answer an error naming it, and `delete` removes what is left.
//! - Names that parse as chunk names are hidden: `stat` says `NotFound`, and
//!   writing, creating, renaming or copying to such a name is refused with
//!   `Permission`.
//! - A small file's content is only taken for metadata when it is at most
//!   255 bytes, decodes as rclone's metadata and chunks of it exist; a larger
//!   file is never composite (stray chunk files next to it stay hidden).
//!
//! Writes stream: each chunk is sent to the upstream as it arrives (nothing
//! bigger than 1 MiB is held in memory), under a temporary name ending in
//! `_<transaction id>` so an unfinished upload never shows. A failed body
//! removes the chunks uploaded so far and leaves the previous file intact.
//!
//! # Options
//!
//! | option | decision |
//! |---|---|
//! | `remote` | the upstream. |
//! | `chunk_size` | honoured; must be positive. |
//! | `name_format` | honoured with rclone's rules: one `*` first, one run of `#` (e.g. `*.hoody-vfs_chunk.###`), no `/`; anything else is refused at build. |
//! | `start_from` | honoured; negative values are refused. |
//! | `meta_format` | `simplejson` (rclone's format, versions 1 and 2) or `none` (composite files are their chunks only). |
//! | `hash_type` | `none`: no hash in metadata. `md5`/`sha1`: the hash of a composite file is computed while writing and kept in its metadata. `md5all`/`sha1all`: the same, and every file gets metadata (berth's stores expose no hashes of their own). `md5quick`/`sha1quick`: rclone records a hash only when the source of a copy already knows one; uploads through berth never carry one, so no hash is recorded (as rclone does for streamed uploads). Every type but `none` needs `meta_format: simplejson`, else the build is refused. |
//! | `transactions` | `rename`: chunks are uploaded under temporary names and renamed into place, then the metadata (version 1) is written. `norename`: chunks keep their temporary names and the metadata (version 2) names the transaction; needs metadata. `auto`: `norename` when the upstream's rename is not atomic (object stores) and metadata is on, else `rename`. |
//! | `fail_hard` | honoured as above. |
//! | `description` | metadata only. |

mod meta;
mod names;
mod split;

use crate::digest::HashType;
use crate::options::{flag, int, size, text};
use crate::{open_remote, LayerContext};
use async_trait::async_trait;
use berth_storage::catalog::Config;
use berth_storage::{
    collect, join_path, normalize_path, once, ByteStream, Capability, Entry, EntryKind, ErrorKind,
    ListPage, Result, Storage, StorageError, Usage,
};
use futures::{StreamExt, TryStreamExt};
use meta::{Metadata, MAX_METADATA_SIZE};
use names::{base36, NameFormat, MAX_CHUNKS};
use split::Splitter;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Page size used when `list` is called with `limit == 0`.
const DEFAULT_PAGE: usize = 1000;
/// Bodies up to this size (and `chunk_size`) are buffered to be written in
/// one piece.
const SMALL_BODY: u64 = 1024 * 1024;
/// Attempts at finding an unused transaction id.
const XACT_PROBES: usize = 100;

/// One data chunk file found next to a file.
#[derive(Debug, Clone)]
struct Found {
    index: u64,
    xact: Option<String>,
    entry: Entry,
}

/// A valid composite file.
#[derive(Debug)]
struct Composite {
    /// The file as shown.
    entry: Entry,
    /// The upstream file under the composite's name: the metadata object
    /// (or, without metadata, a stale plain file), if any.
    file: Option<Entry>,
    /// Transaction id of the active chunks.
    txn: Option<String>,
    /// The data chunks, in order.
    chunks: Vec<Entry>,
}

/// What a path is, seen through the chunker.
#[derive(Debug)]
enum Resolved {
    Missing,
    Dir(Entry),
    Plain(Entry),
    Composite(Composite),
    /// A composite file that cannot be assembled: why, and its upstream files.
    Damaged {
        reason: String,
        files: Vec<String>,
    },
}

impl Resolved {
    /// Upstream chunk files that belong to this file (to clean up when it is
    /// replaced).
    fn chunk_paths(&self) -> Vec<String> {
        match self {
            Resolved::Composite(c) => c.chunks.iter().map(|e| e.path.clone()).collect(),
            Resolved::Damaged { files, .. } => files.clone(),
            _ => Vec::new(),
        }
    }
}

/// Entries of one name gathered while listing.
#[derive(Debug, Default)]
struct Pending {
    dir: Option<Entry>,
    file: Option<Entry>,
    found: Vec<Found>,
}

fn conflict(path: &str, what: &str) -> StorageError {
    let shown = if path.is_empty() { "/" } else { path };
    StorageError::new(ErrorKind::Conflict, format!("{shown}: {what}"))
}

fn damaged(path: &str, reason: &str) -> StorageError {
    StorageError::new(
        ErrorKind::Other,
        format!("{path}: composite file is damaged: {reason}"),
    )
}

/// Splits a normalized, non-empty path into (parent, name).
fn split_path(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// A fresh transaction id as rclone makes them: 4 base-36 digits of the
/// time (seconds modulo a prime close to 36^4) and 2 random ones.
fn xact_id() -> String {
    const CIRCLE: u64 = 1_679_609;
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let random: u64 = rand::random_range(0..36 * 36);
    format!("{:0>4}{:0>2}", base36(secs % CIRCLE), base36(random))
}

/// Checks that chunks are numbered 0, 1, ... without gaps; returns them in
/// order. Messages use the numbers in the names (`first` is `start_from`).
fn in_order(mut found: Vec<Found>, first: u64) -> std::result::Result<Vec<Entry>, String> {
    found.sort_by_key(|f| f.index);
    for (at, f) in found.iter().enumerate() {
        match (at as u64).cmp(&f.index) {
            std::cmp::Ordering::Equal => {}
            std::cmp::Ordering::Less => {
                return Err(format!("chunk number {} is missing", at as u64 + first))
            }
            std::cmp::Ordering::Greater => {
                return Err(format!("chunk number {} is present twice", f.index + first))
            }
        }
    }
    Ok(found.into_iter().map(|f| f.entry).collect())
}

/// The `chunker` layer.
#[derive(Debug)]
pub struct Chunker {
    upstream: Arc<dyn Storage>,
    format: NameFormat,
    chunk_size: u64,
    use_meta: bool,
    /// The hash kept in metadata, computed while writing.
    hash: Option<HashType>,
    /// Every file gets metadata (`md5all`, `sha1all`).
    hash_all: bool,
    /// Chunks keep their transaction names (`norename`).
    norename: bool,
    fail_hard: bool,
}

impl Chunker {
    /// Builds the layer from its validated config.
    pub async fn build(config: &Config, ctx: &LayerContext<'_>) -> Result<Chunker> {
        let chunk_size = size(config, "chunk_size")?;
        if chunk_size == 0 {
            return Err(StorageError::invalid_config(
                "Invalid chunk_size: must be larger than 0",
            ));
        }
        let format = NameFormat::parse(text(config, "name_format"), int(config, "start_from")?)
            .map_err(StorageError::invalid_config)?;
        let use_meta = match text(config, "meta_format") {
            "simplejson" => true,
            "none" => false,
            other => {
                return Err(StorageError::invalid_config(format!(
                    "Invalid meta_format: '{other}' is not one of none, simplejson"
                )))
            }
        };
        let hash_type = text(config, "hash_type");
        let (hash, hash_all) = match hash_type {
            "none" | "md5quick" | "sha1quick" => (None, false),
            "md5" => (Some(HashType::Md5), false),
            "sha1" => (Some(HashType::Sha1), false),
            "md5all" => (Some(HashType::Md5), true),
            "sha1all" => (Some(HashType::Sha1), true),
            other => {
                return Err(StorageError::invalid_config(format!(
                    "Invalid hash_type: '{other}' is not one of none, md5, sha1, md5all, sha1all, md5quick, sha1quick"
                )))
            }
        };
        if hash_type != "none" && !use_meta {
            return Err(StorageError::invalid_config(format!(
                "hash_type '{hash_type}' requires meta_format simplejson"
            )));
        }
        let upstream = open_remote(config, ctx).await?;
        let norename = match text(config, "transactions") {
            "rename" => false,
            "norename" if !use_meta => {
                return Err(StorageError::invalid_config(
                    "transactions 'norename' requires meta_format simplejson",
                ))
            }
            "norename" => true,
            "auto" => use_meta && !upstream.capability().atomic_rename,
            other => {
                return Err(StorageError::invalid_config(format!(
                    "Invalid transactions: '{other}' is not one of rename, norename, auto"
                )))
            }
        };
        Ok(Chunker {
            upstream,
            format,
            chunk_size,
            use_meta,
            hash,
            hash_all,
            norename,
            fail_hard: flag(config, "fail_hard"),
        })
    }

    fn is_chunk_name(&self, path: &str) -> bool {
        !path.is_empty() && self.format.parse_name(split_path(path).1).is_some()
    }

    fn refuse_chunk_name(&self, path: &str) -> Result<()> {
        if self.is_chunk_name(path) {
            return Err(StorageError::new(
                ErrorKind::Permission,
                format!("{path}: the name is reserved for chunk files (name_format)"),
            ));
        }
        Ok(())
    }

    /// Without metadata a composite file has no upstream file of its own,
    /// so nothing stops the upstream from creating a directory of that name:
    /// refuse `path` when it or one of its ancestors is a composite file.
    async fn refuse_composite_in_way(&self, path: &str) -> Result<()> {
        if self.use_meta {
            return Ok(());
        }
        let mut at = Some(path);
        while let Some(p) = at.filter(|p| !p.is_empty()) {
            if let Resolved::Composite(_) = self.resolve(p).await? {
                return Err(conflict(p, "not a directory"));
            }
            at = p.rsplit_once('/').map(|(parent, _)| parent);
        }
        Ok(())
    }

    /// Upstream path of chunk `index` of `path`.
    fn chunk_path(&self, path: &str, index: u64, xact: Option<&str>) -> String {
        let (dir, base) = split_path(path);
        join_path(dir, &self.format.chunk_name(base, index, xact))
    }

    /// The data chunks of `path` present on the upstream (active or not),
    /// found by listing its directory from the file's name on: chunk names
    /// all start with `<name><middle>`, so the scan stops right after them.
    async fn scan(&self, path: &str) -> Result<Vec<Found>> {
        let (dir, base) = split_path(path);
        let prefix = self.format.prefix(base);
        let mut found = Vec::new();
        let mut cursor = Some(base.to_string());
        loop {
            let page = match self.upstream.list(dir, cursor.take(), 0).await {
                Ok(page) => page,
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(found),
                Err(e) => return Err(e),
            };
            for entry in page.entries {
                let name = entry.name();
                if !name.starts_with(&prefix) {
                    if name > prefix.as_str() {
                        return Ok(found);
                    }
                    continue;
                }
                if entry.kind != EntryKind::File {
                    continue;
                }
                if let Some(chunk) = self.format.parse_name(name) {
                    if let (true, Some(index)) = (chunk.base == base, chunk.index) {
                        found.push(Found {
                            index,
                            xact: chunk.xact,
                            entry,
                        });
                    }
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(found),
            }
        }
    }

    /// The content of a small upstream file; `None` if it vanished.
    async fn read_small(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let body = match self
            .upstream
            .read(path, Some((0, MAX_METADATA_SIZE + 1)))
            .await
        {
            Ok(body) => body,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match collect(body).await {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Decides what the upstream file `file` (if any) and the chunks `found`
    /// next to it make of `path`. `data` is the file's content when already
    /// read.
    async fn compose(
        &self,
        path: &str,
        file: Option<Entry>,
        found: Vec<Found>,
        data: Option<Vec<u8>>,
    ) -> Result<Resolved> {
        if !self.use_meta {
            let active: Vec<Found> = found.into_iter().filter(|f| f.xact.is_none()).collect();
            if active.is_empty() {
                return Ok(file.map_or(Resolved::Missing, Resolved::Plain));
            }
            let files = active.iter().map(|f| f.entry.path.clone()).collect();
            let chunks = match in_order(active, self.format.start_from()) {
                Ok(chunks) => chunks,
                Err(reason) => return Ok(Resolved::Damaged { reason, files }),
            };
            return Ok(Resolved::Composite(Composite {
                entry: Entry {
                    path: path.to_string(),
                    kind: EntryKind::File,
                    size: chunks.iter().map(|c| c.size).sum(),
                    modified: chunks[0].modified,
                },
                file,
                txn: None,
                chunks,
            }));
        }
        let Some(file) = file else {
            // Chunks without a metadata object are leftovers: hidden.
            return Ok(Resolved::Missing);
        };
        if found.is_empty() || file.size > MAX_METADATA_SIZE {
            return Ok(Resolved::Plain(file));
        }
        let data = match data {
            Some(data) => data,
            None => match self.read_small(path).await? {
                Some(data) => data,
                None => return Ok(Resolved::Missing),
            },
        };
        let Ok(loose) = Metadata::decode(&data, false) else {
            return Ok(Resolved::Plain(file));
        };
        let active: Vec<Found> = found.into_iter().filter(|f| f.xact == loose.txn).collect();
        let mut files = vec![path.to_string()];
        files.extend(active.iter().map(|f| f.entry.path.clone()));
        let info = match Metadata::decode(&data, true) {
            Ok(info) => info,
            Err(reason) => return Ok(Resolved::Damaged { reason, files }),
        };
        let chunks = match in_order(active, self.format.start_from()) {
            Ok(chunks) => chunks,
            Err(reason) => return Ok(Resolved::Damaged { reason, files }),
        };
        let total: u64 = chunks.iter().map(|c| c.size).sum();
        if chunks.len() as u64 != info.chunks || total != info.size {
            return Ok(Resolved::Damaged {
                reason: format!(
                    "metadata says {} bytes in {} chunks, found {total} bytes in {}",
                    info.size,
                    info.chunks,
                    chunks.len()
                ),
                files,
            });
        }
        Ok(Resolved::Composite(Composite {
            entry: Entry {
                path: path.to_string(),
                kind: EntryKind::File,
                size: total,
                modified: file.modified,
            },
            file: Some(file),
            txn: info.txn,
            chunks,
        }))
    }

    /// What `path` (normalized) is.
    async fn resolve(&self, path: &str) -> Result<Resolved> {
        if self.is_chunk_name(path) {
            return Ok(Resolved::Missing);
        }
        let file = match self.upstream.stat(path).await {
            Ok(entry) if entry.kind == EntryKind::Dir => return Ok(Resolved::Dir(entry)),
            Ok(entry) => Some(entry),
            Err(e) if e.kind == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if !self.use_meta {
            let found = self.scan(path).await?;
            return self.compose(path, file, found, None).await;
        }
        let Some(file) = file else {
            return Ok(Resolved::Missing);
        };
        if file.size > MAX_METADATA_SIZE {
            return Ok(Resolved::Plain(file));
        }
        // Only metadata can make a small file composite: look at it first.
        let Some(data) = self.read_small(path).await? else {
            return Ok(Resolved::Missing);
        };
        if Metadata::decode(&data, false).is_err() {
            return Ok(Resolved::Plain(file));
        }
        let found = self.scan(path).await?;
        self.compose(path, Some(file), found, Some(data)).await
    }

    /// Whether no chunk can still arrive for `name` (or, without metadata,
    /// for a prefix of it, which would sort before it) once the upstream
    /// listing has reached `next`.
    fn settled(&self, name: &str, next: &str) -> bool {
        let past = |base: &str| {
            let prefix = self.format.prefix(base);
            !next.starts_with(&prefix) && next > prefix.as_str()
        };
        if self.use_meta {
            return past(name);
        }
        name.char_indices()
            .skip(1)
            .map(|(at, _)| &name[..at])
            .chain([name])
            .all(past)
    }

    /// Moves the settled entries (all of them when `next` is `None`) from
    /// `pending` to `ready`, in name order.
    fn take_settled(
        &self,
        pending: &mut BTreeMap<String, Pending>,
        next: Option<&str>,
        ready: &mut Vec<(String, Pending)>,
    ) {
        while let Some(first) = pending.first_entry() {
            if next.is_some_and(|n| !self.settled(first.key(), n)) {
                break;
            }
            ready.push(first.remove_entry());
        }
    }

    /// Files an upstream entry under the name it belongs to.
    fn classify(&self, entry: Entry, after: Option<&str>, pending: &mut BTreeMap<String, Pending>) {
        let name = entry.name().to_string();
        if entry.kind == EntryKind::File {
            if let Some(chunk) = self.format.parse_name(&name) {
                let (Some(index), false) =
                    (chunk.index, after.is_some_and(|a| chunk.base.as_str() <= a))
                else {
                    // Control chunks are hidden; chunks of names before the
                    // cursor were accounted for on an earlier page.
                    return;
                };
                if self.use_meta && !pending.contains_key(&chunk.base) {
                    return;
                }
                pending.entry(chunk.base).or_default().found.push(Found {
                    index,
                    xact: chunk.xact,
                    entry,
                });
                return;
            }
        }
        let slot = pending.entry(name).or_default();
        match entry.kind {
            EntryKind::Dir => slot.dir = Some(entry),
            EntryKind::File => slot.file = Some(entry),
        }
    }

    /// The listing entry a settled name makes, if any.
    async fn assemble(&self, dir: &str, name: &str, pending: Pending) -> Result<Option<Entry>> {
        if let Some(entry) = pending.dir {
            if pending.file.is_some() || !pending.found.is_empty() {
                tracing::warn!(dir, name, "a directory shadows a file of the same name");
            }
            return Ok(Some(entry));
        }
        let path = join_path(dir, name);
        match self
            .compose(&path, pending.file, pending.found, None)
            .await?
        {
            Resolved::Missing => Ok(None),
            Resolved::Dir(entry) | Resolved::Plain(entry) => Ok(Some(entry)),
            Resolved::Composite(c) => Ok(Some(c.entry)),
            Resolved::Damaged { reason, .. } if self.fail_hard => Err(damaged(&path, &reason)),
            Resolved::Damaged { reason, .. } => {
                tracing::warn!(path, reason, "skipping a damaged composite file");
                Ok(None)
            }
        }
    }

    /// Assembles the `ready` names into `out`, stopping once it holds more
    /// than `limit` entries; returns whether it does.
    async fn emit(
        &self,
        dir: &str,
        ready: &mut Vec<(String, Pending)>,
        out: &mut Vec<Entry>,
        limit: usize,
    ) -> Result<bool> {
        for (name, slot) in ready.drain(..) {
            if let Some(entry) = self.assemble(dir, &name, slot).await? {
                out.push(entry);
                if out.len() > limit {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Deletes upstream files, ignoring those already gone; the first other
    /// failure is returned after trying all.
    async fn remove_all(&self, paths: &[String]) -> Result<()> {
        let mut first = None;
        for path in paths {
            match self.upstream.delete(path).await {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path, error = %e, "removing a chunk file failed");
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Removes the chunk files of a replaced file that the new file did not
    /// take over.
    async fn drop_old(&self, old: Vec<String>, kept: &[String]) {
        let kept: HashSet<&String> = kept.iter().collect();
        let stale: Vec<String> = old.into_iter().filter(|p| !kept.contains(p)).collect();
        // Failures are logged: the new file is in place, leftovers are hidden.
        let _ = self.remove_all(&stale).await;
    }

    /// An unused transaction id for `path`.
    async fn new_xact(&self, path: &str) -> Result<String> {
        for _ in 0..XACT_PROBES {
            let id = xact_id();
            match self
                .upstream
                .stat(&self.chunk_path(path, 0, Some(&id)))
                .await
            {
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(id),
                Err(e) => return Err(e),
                Ok(_) => {}
            }
        }
        Err(StorageError::new(
            ErrorKind::Transient,
            format!("{path}: no free transaction id"),
        ))
    }

    /// Uploads the body as chunks under transaction names; returns their
    /// paths and entries.
    async fn upload(
        &self,
        path: &str,
        xact: &str,
        body: &Splitter,
        uploaded: &mut Vec<(String, Entry)>,
    ) -> Result<()> {
        for index in 0.. {
            if index >= MAX_CHUNKS {
                return Err(StorageError::new(
                    ErrorKind::Quota,
                    format!("{path}: more than {MAX_CHUNKS} chunks"),
                ));
            }
            let temp = self.chunk_path(path, index, Some(xact));
            let entry = self
                .upstream
                .write(&temp, body.part(self.chunk_size))
                .await?;
            uploaded.push((temp, entry));
            if body.exhausted().await {
                break;
            }
        }
        if let Some(e) = body.error().await {
            return Err(e);
        }
        let total: u64 = uploaded.iter().map(|(_, e)| e.size).sum();
        if total != body.handed().await {
            return Err(StorageError::new(
                ErrorKind::Transient,
                format!(
                    "{path}: the upstream stored {total} of {} bytes",
                    body.handed().await
                ),
            ));
        }
        Ok(())
    }

    /// Puts uploaded chunks in place and writes the metadata. Returns the
    /// new file's entry and the chunk paths it uses.
    async fn commit(
        &self,
        path: &str,
        xact: &str,
        body: &Splitter,
        uploaded: &[(String, Entry)],
        lookalike: bool,
    ) -> Result<(Entry, Vec<String>)> {
        let total: u64 = uploaded.iter().map(|(_, e)| e.size).sum();
        let first_modified = uploaded.first().and_then(|(_, e)| e.modified);
        if uploaded.len() == 1 && self.use_meta && !self.hash_all && !lookalike {
            // One chunk and no reason for metadata: the file itself.
            self.upstream.rename(&uploaded[0].0, path).await?;
            let entry = Entry {
                path: path.to_string(),
                kind: EntryKind::File,
                size: total,
                modified: first_modified,
            };
            return Ok((entry, Vec::new()));
        }
        let mut finals = Vec::with_capacity(uploaded.len());
        for (index, (temp, _)) in uploaded.iter().enumerate() {
            if self.norename {
                finals.push(temp.clone());
                continue;
            }
            let target = self.chunk_path(path, index as u64, None);
            self.upstream.rename(temp, &target).await?;
            finals.push(target);
        }
        let modified = if self.use_meta {
            let digest = body.digest().await;
            let info = Metadata {
                size: total,
                chunks: uploaded.len() as u64,
                md5: digest.clone().filter(|_| self.hash == Some(HashType::Md5)),
                sha1: digest.filter(|_| self.hash == Some(HashType::Sha1)),
                txn: self.norename.then(|| xact.to_string()),
            };
            let written = self.upstream.write(path, once(info.encode())).await;
            match written {
                Ok(entry) => entry.modified,
                Err(e) => {
                    // Without metadata the new chunks are leftovers.
                    let _ = self.remove_all(&finals).await;
                    return Err(e);
                }
            }
        } else {
            // A plain file under the composite's name would be stale.
            match self.upstream.delete(path).await {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(path, error = %e, "removing a stale file failed"),
            }
            first_modified
        };
        let entry = Entry {
            path: path.to_string(),
            kind: EntryKind::File,
            size: total,
            modified,
        };
        Ok((entry, finals))
    }

    /// Reads `range` of the file made of `chunks` (of total `size`).
    fn read_chunks(&self, chunks: Vec<Entry>, size: u64, range: Option<(u64, u64)>) -> ByteStream {
        let (start, end) = match range {
            Some((offset, len)) => {
                let start = offset.min(size);
                (start, start.saturating_add(len).min(size))
            }
            None => (0, size),
        };
        let mut parts = Vec::new();
        let mut at = 0u64;
        for chunk in chunks {
            let (from, to) = (at, at + chunk.size);
            at = to;
            if to <= start || from >= end {
                continue;
            }
            let (lo, hi) = (start.max(from), end.min(to));
            let piece = if lo == from && hi == to {
                None
            } else {
                Some((lo - from, hi - lo))
            };
            parts.push((chunk.path, piece));
        }
        let upstream = self.upstream.clone();
        futures::stream::iter(parts)
            .then(move |(path, piece)| {
                let upstream = upstream.clone();
                async move { upstream.read(&path, piece).await }
            })
            .try_flatten()
            .boxed()
    }

    /// Moves or copies a composite file to `to`; returns the new chunk paths.
    async fn transfer(&self, c: &Composite, to: &str, copy: bool) -> Result<Vec<String>> {
        let mut moved = Vec::with_capacity(c.chunks.len());
        for (index, chunk) in c.chunks.iter().enumerate() {
            let target = self.chunk_path(to, index as u64, c.txn.as_deref());
            if copy {
                self.upstream.copy(&chunk.path, &target).await?;
            } else {
                self.upstream.rename(&chunk.path, &target).await?;
            }
            moved.push(target);
        }
        if let (true, Some(file)) = (self.use_meta, &c.file) {
            if copy {
                self.upstream.copy(&file.path, to).await?;
            } else {
                self.upstream.rename(&file.path, to).await?;
            }
        }
        Ok(moved)
    }

    /// Renames or copies the file `from` to `to` (both normalized).
    async fn relocate(&self, from: &str, to: &str, copy: bool) -> Result<()> {
        self.refuse_chunk_name(to)?;
        let source = self.resolve(from).await?;
        let composite = match source {
            Resolved::Missing => return Err(StorageError::not_found(from)),
            Resolved::Damaged { reason, .. } => return Err(damaged(from, &reason)),
            Resolved::Dir(_) if copy => return Err(conflict(from, "is a directory")),
            Resolved::Dir(_) => {
                self.refuse_composite_in_way(to).await?;
                return self.upstream.rename(from, to).await;
            }
            Resolved::Plain(_) => None,
            Resolved::Composite(c) => Some(c),
        };
        if from == to {
            return Ok(());
        }
        let target = self.resolve(to).await?;
        if let Resolved::Dir(_) = target {
            return Err(conflict(to, "is a directory"));
        }
        let old = target.chunk_paths();
        let kept = match composite {
            None if copy => {
                self.upstream.copy(from, to).await?;
                Vec::new()
            }
            None => {
                self.upstream.rename(from, to).await?;
                Vec::new()
            }
            Some(c) => self.transfer(&c, to, copy).await?,
        };
        self.drop_old(old, &kept).await;
        Ok(())
    }
}

#[async_trait]
impl Storage for Chunker {
    fn capability(&self) -> Capability {
        let up = self.upstream.capability();
        Capability {
            directories: up.directories,
            ranged_read: up.ranged_read,
            copy: up.copy,
            atomic_rename: false,
            set_mtime: up.set_mtime,
            usage: up.usage,
            append: false,
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return self.upstream.stat("").await;
        }
        match self.resolve(&path).await? {
            Resolved::Missing => Err(StorageError::not_found(&path)),
            Resolved::Dir(entry) | Resolved::Plain(entry) => Ok(entry),
            Resolved::Composite(c) => Ok(c.entry),
            Resolved::Damaged { reason, .. } => Err(damaged(&path, &reason)),
        }
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        let dir = normalize_path(dir)?;
        let limit = if limit == 0 { DEFAULT_PAGE } else { limit };
        let mut pending = BTreeMap::new();
        let mut out: Vec<Entry> = Vec::new();
        let mut upstream_cursor = cursor.clone();
        'pages: loop {
            let page = match self.upstream.list(&dir, upstream_cursor.take(), 0).await {
                Ok(page) => page,
                Err(e) if e.kind == ErrorKind::NotFound && !self.use_meta && !dir.is_empty() => {
                    // A composite file without metadata has no upstream file.
                    if let Resolved::Composite(_) = self.resolve(&dir).await? {
                        return Err(conflict(&dir, "not a directory"));
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            let exhausted = page.next.is_none();
            let mut ready = Vec::new();
            for entry in page.entries {
                self.take_settled(&mut pending, Some(entry.name()), &mut ready);
                // Assemble as soon as names settle: a full page stops the
                // scan (and the metadata reads) early.
                if self.emit(&dir, &mut ready, &mut out, limit).await? {
                    break 'pages;
                }
                self.classify(entry, cursor.as_deref(), &mut pending);
            }
            if exhausted {
                self.take_settled(&mut pending, None, &mut ready);
                self.emit(&dir, &mut ready, &mut out, limit).await?;
                break;
            }
            upstream_cursor = page.next;
        }
        let next = if out.len() > limit {
            out.truncate(limit);
            out.last().map(|e| e.name().to_string())
        } else {
            None
        };
        Ok(ListPage { entries: out, next })
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        let path = normalize_path(path)?;
        match self.resolve(&path).await? {
            Resolved::Missing => Err(StorageError::not_found(&path)),
            Resolved::Dir(_) => Err(conflict(&path, "is a directory")),
            Resolved::Plain(_) => self.upstream.read(&path, range).await,
            Resolved::Damaged { reason, .. } => Err(damaged(&path, &reason)),
            Resolved::Composite(c) => Ok(self.read_chunks(c.chunks, c.entry.size, range)),
        }
    }

    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Err(conflict("/", "is a directory"));
        }
        self.refuse_chunk_name(&path)?;
        let body = Splitter::new(body, self.hash);
        let small = body.small_body(self.chunk_size.min(SMALL_BODY)).await?;
        let old = self.resolve(&path).await?;
        if let Resolved::Dir(_) = old {
            return Err(conflict(&path, "is a directory"));
        }
        let lookalike = small
            .as_ref()
            .is_some_and(|data| Metadata::decode(data, false).is_ok());
        if let (Some(data), true) = (&small, self.use_meta && !self.hash_all && !lookalike) {
            let entry = self.upstream.write(&path, once(data.clone())).await?;
            self.drop_old(old.chunk_paths(), &[]).await;
            return Ok(entry);
        }
        self.refuse_composite_in_way(split_path(&path).0).await?;
        let xact = self.new_xact(&path).await?;
        let mut uploaded = Vec::new();
        if let Err(e) = self.upload(&path, &xact, &body, &mut uploaded).await {
            let temps: Vec<String> = uploaded.into_iter().map(|(p, _)| p).collect();
            let _ = self.remove_all(&temps).await;
            return Err(body.error().await.unwrap_or(e));
        }
        match self.commit(&path, &xact, &body, &uploaded, lookalike).await {
            Ok((entry, kept)) => {
                self.drop_old(old.chunk_paths(), &kept).await;
                Ok(entry)
            }
            Err(e) => {
                let temps: Vec<String> = uploaded.into_iter().map(|(p, _)| p).collect();
                let _ = self.remove_all(&temps).await;
                Err(e)
            }
        }
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Err(conflict("/", "is a directory"));
        }
        match self.resolve(&path).await? {
            Resolved::Missing => Err(StorageError::not_found(&path)),
            Resolved::Dir(_) | Resolved::Plain(_) => self.upstream.delete(&path).await,
            Resolved::Composite(c) => {
                let mut files: Vec<String> = c.file.iter().map(|f| f.path.clone()).collect();
                files.extend(c.chunks.into_iter().map(|e| e.path));
                self.remove_all(&files).await
            }
            Resolved::Damaged { files, reason } => {
                tracing::warn!(path, reason, "deleting a damaged composite file");
                self.remove_all(&files).await
            }
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (normalize_path(from)?, normalize_path(to)?);
        if !self.upstream.capability().copy {
            return self.upstream.copy(&from, &to).await;
        }
        self.relocate(&from, &to, true).await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (normalize_path(from)?, normalize_path(to)?);
        if from.is_empty() || to.is_empty() {
            return self.upstream.rename(&from, &to).await;
        }
        self.relocate(&from, &to, false).await
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        self.refuse_chunk_name(&path)?;
        self.refuse_composite_in_way(&path).await?;
        self.upstream.mkdir(&path).await
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        if !self.use_meta && !path.is_empty() {
            if let Resolved::Composite(_) = self.resolve(&path).await? {
                return Err(conflict(&path, "not a directory"));
            }
        }
        self.upstream.rmdir(&path).await
    }

    async fn usage(&self) -> Result<Usage> {
        self.upstream.usage().await
    }

    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        let path = normalize_path(path)?;
        match self.resolve(&path).await? {
            Resolved::Missing => Err(StorageError::not_found(&path)),
            Resolved::Damaged { reason, .. } => Err(damaged(&path, &reason)),
            Resolved::Dir(_) | Resolved::Plain(_) => self.upstream.set_modified(&path, time).await,
            Resolved::Composite(c) => {
                // The time shown is the metadata object's, or the first chunk's.
                let target = match (&c.file, self.use_meta) {
                    (Some(file), true) => file.path.clone(),
                    _ => c.chunks[0].path.clone(),
                };
                self.upstream.set_modified(&target, time).await
            }
        }
    }

    async fn probe(&self) -> Result<()> {
        self.upstream.probe().await
    }
}
