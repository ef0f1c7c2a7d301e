//! `union`: several upstreams merged into one tree, with rclone's union
//! semantics.
//!
//! - **Listings** merge every upstream; when a name appears in several, the
//!   search policy picks the entry shown (with the default `ff`, the first
//!   upstream in configured order wins). Upstreams where the directory is
//!   missing are skipped; it is `NotFound` only when it is missing everywhere.
//! - **Searches** (`stat`, `read`, the source of `copy`) look at the
//!   upstreams where the path exists and take the one the search policy picks.
//! - **Creates** (writing a new file, `mkdir`, the target of a `copy`) go to
//!   the upstreams the create policy picks among those accepting new files
//!   (neither `:ro` nor `:nc`). Path-preserving policies (`ep*`, `newest`)
//!   only consider upstreams where the parent directory exists; when none
//!   has it they fall back to the deepest existing ancestor, and create the
//!   missing directories on the upstreams picked there (as rclone does).
//! - **Actions** (overwriting an existing file, `delete`, `rename`, `rmdir`,
//!   `set_modified`) apply to the upstreams the action policy picks among
//!   the writable (not `:ro`) upstreams where the path exists. Overwriting a
//!   file that exists only on `:ro` upstreams creates it instead.
//!
//! A write to several upstreams (create policy `all`/`epall`, or an
//! overwrite under `epall`) streams the body to all of them at once; when one
//! of them fails, a new file is removed again from the others.
//!
//! Free space, used space and object counts are cached per upstream for
//! `cache_time` seconds. Free and used space come from each upstream's
//! `usage`; when an upstream does not report used space, and for object
//! counts (which the storage interface does not report), the upstream is
//! walked. `min_free_space` excludes upstreams with less free space from
//! `lfs`/`eplfs` when creating (searches and actions never hide or skip an
//! existing file because its upstream is full).

pub mod policy;
#[cfg(test)]
mod tests;

use crate::{all_caps, conflict, context, denied, label, stream_copy, sum_usage, text};
use async_trait::async_trait;
use berth_storage::catalog::Config;
use berth_storage::remote::{parse_union_upstreams, UpstreamMode};
use berth_storage::units::parse_size;
use berth_storage::{
    normalize_path, ByteStream, Capability, Entry, EntryKind, ErrorKind, ListPage, Resolve, Result,
    Storage, StorageError, Usage,
};
use bytes::Bytes;
use futures::future::join_all;
use futures::StreamExt;
use policy::{select, Candidate, Criterion, Need, Policy};
use rand::Rng;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Page size used when `list` is called with `limit == 0`.
const DEFAULT_PAGE: usize = 1000;
/// Chunks buffered per upstream when one body is written to several.
const TEE_DEPTH: usize = 4;

/// The policies and thresholds of a union.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Picks the upstream a search reads from.
    pub search: Policy,
    /// Picks the upstreams a new file or directory is created on.
    pub create: Policy,
    /// Picks the upstreams an action on an existing path applies to.
    pub action: Policy,
    /// How long usage figures are reused.
    pub cache_time: Duration,
    /// Upstreams with less free space are not picked by `lfs`/`eplfs` creates.
    pub min_free: u64,
}

impl Options {
    /// Reads `search_policy`, `create_policy`, `action_policy`, `cache_time`
    /// and `min_free_space` from a validated config.
    pub fn from_config(config: &Config) -> Result<Options> {
        let policy = |key: &str| {
            let name = text(config, key);
            Policy::parse(name).ok_or_else(|| {
                StorageError::invalid_config(format!("{key}: unknown union policy '{name}'"))
            })
        };
        let cache_time = config
            .get("cache_time")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| StorageError::invalid_config("cache_time: expected whole seconds"))?;
        let min_free = parse_size(text(config, "min_free_space"))
            .map_err(|e| StorageError::invalid_config(format!("min_free_space: {e}")))?;
        Ok(Options {
            search: policy("search_policy")?,
            create: policy("create_policy")?,
            action: policy("action_policy")?,
            cache_time: Duration::from_secs(cache_time),
            min_free,
        })
    }
}

/// Objects and bytes found by walking an upstream.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    objects: u64,
    bytes: u64,
}

/// Cached figures of one upstream, each with the time it was measured.
#[derive(Debug, Default)]
struct Figures {
    usage: Option<(Instant, Usage)>,
    tally: Option<(Instant, Option<Tally>)>,
}

/// One upstream of the union.
#[derive(Debug)]
struct Upstream {
    remote: String,
    mode: UpstreamMode,
    storage: Arc<dyn Storage>,
    figures: tokio::sync::Mutex<Figures>,
}

impl Upstream {
    /// Actions may change it (not `:ro`).
    fn writable(&self) -> bool {
        self.mode != UpstreamMode::ReadOnly
    }

    /// New files may be created on it (neither `:ro` nor `:nc`).
    fn creatable(&self) -> bool {
        self.mode == UpstreamMode::ReadWrite
    }
}

/// Several upstreams merged into one tree.
pub struct Union {
    upstreams: Vec<Upstream>,
    options: Options,
}

impl fmt::Debug for Union {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let upstreams: Vec<String> = self
            .upstreams
            .iter()
            .map(|u| match u.mode {
                UpstreamMode::ReadWrite => u.remote.clone(),
                UpstreamMode::ReadOnly => format!("{}:ro", u.remote),
                UpstreamMode::NoCreate => format!("{}:nc", u.remote),
            })
            .collect();
        f.debug_struct("Union")
            .field("upstreams", &upstreams)
            .field("search", &self.options.search.to_string())
            .field("create", &self.options.create.to_string())
            .field("action", &self.options.action.to_string())
            .finish()
    }
}

/// Opens every upstream of the config; a failure names the upstream.
pub async fn build(config: &Config, resolve: &dyn Resolve) -> Result<Arc<dyn Storage>> {
    let options = Options::from_config(config)?;
    let parsed = parse_union_upstreams("upstreams", text(config, "upstreams"))
        .map_err(StorageError::invalid_config)?;
    let mut upstreams = Vec::with_capacity(parsed.len());
    for up in parsed {
        let remote = label(&up.remote);
        let storage = resolve
            .open(&up.remote)
            .await
            .map_err(|e| context(&format!("union upstream '{remote}'"), e))?;
        upstreams.push((remote, up.mode, storage));
    }
    Ok(Arc::new(Union::new(upstreams, options)))
}

/// The parent directory of a normalized path (`""` for top-level names).
fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

/// The first error of `results`, if any.
fn first_error<T>(results: Vec<Result<T>>) -> Result<()> {
    results.into_iter().try_for_each(|r| r.map(|_| ()))
}

/// Up to `limit` entries of `dir` after `cursor`, following pages; and
/// whether the upstream may hold more.
async fn take_entries(
    storage: &dyn Storage,
    dir: &str,
    mut cursor: Option<String>,
    limit: usize,
) -> Result<(Vec<Entry>, bool)> {
    let mut out = Vec::new();
    loop {
        let page = storage.list(dir, cursor, limit - out.len()).await?;
        out.extend(page.entries);
        match page.next {
            None => return Ok((out, false)),
            Some(_) if out.len() >= limit => {
                out.truncate(limit);
                return Ok((out, true));
            }
            Some(next) => cursor = Some(next),
        }
    }
}

/// Counts the objects and bytes below the root of `storage`.
async fn walk(storage: &dyn Storage) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        let mut cursor = None;
        loop {
            let page = storage.list(&dir, cursor, 0).await?;
            for entry in page.entries {
                match entry.kind {
                    EntryKind::File => {
                        tally.objects += 1;
                        tally.bytes += entry.size;
                    }
                    EntryKind::Dir => dirs.push(entry.path),
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(tally)
}

impl Union {
    /// A union of `(remote label, mode, storage)` upstreams, in search order.
    pub fn new(upstreams: Vec<(String, UpstreamMode, Arc<dyn Storage>)>, options: Options) -> Self {
        let upstreams: Vec<Upstream> = upstreams
            .into_iter()
            .map(|(remote, mode, storage)| Upstream {
                remote,
                mode,
                storage,
                figures: Default::default(),
            })
            .collect();
        Union { upstreams, options }
    }

    fn name(&self, i: usize) -> String {
        format!("union upstream '{}'", self.upstreams[i].remote)
    }

    /// Runs `op` on the upstreams `targets` at once; the first error, naming
    /// its upstream.
    async fn on_each<'a, F, Fut>(&'a self, targets: &[usize], op: F) -> Result<()>
    where
        F: Fn(&'a dyn Storage) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let results = join_all(targets.iter().map(|&i| {
            let fut = op(self.upstreams[i].storage.as_ref());
            async move { fut.await.map_err(|e| context(&self.name(i), e)) }
        }))
        .await;
        first_error(results)
    }

    /// `(upstream, entry)` for every upstream where `path` exists, in
    /// configured order. Upstreams answering `NotFound` (or `Conflict`: a
    /// parent is a file there) are skipped; other failures fail the call.
    async fn found(&self, path: &str) -> Result<Vec<(usize, Entry)>> {
        let results = join_all(self.upstreams.iter().map(|u| u.storage.stat(path))).await;
        let mut out = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(entry) => out.push((i, entry)),
                Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Conflict) => {}
                Err(e) => return Err(context(&self.name(i), e)),
            }
        }
        Ok(out)
    }

    /// `(upstream, mtime)` for every upstream where `dir` is a directory (the
    /// root is one everywhere); `Conflict` when it is a file on any.
    async fn dir_on(&self, dir: &str) -> Result<Vec<(usize, Option<SystemTime>)>> {
        if dir.is_empty() {
            let roots = join_all(self.upstreams.iter().map(|u| u.storage.stat(""))).await;
            return Ok(roots
                .into_iter()
                .enumerate()
                .map(|(i, r)| (i, r.ok().and_then(|e| e.modified)))
                .collect());
        }
        let found = self.found(dir).await?;
        if found.iter().any(|(_, e)| e.kind == EntryKind::File) {
            return Err(conflict(dir, "not a directory"));
        }
        Ok(found.into_iter().map(|(i, e)| (i, e.modified)).collect())
    }

    async fn usage_of(&self, i: usize) -> Usage {
        let up = &self.upstreams[i];
        let mut figures = up.figures.lock().await;
        if let Some((at, usage)) = figures.usage {
            if at.elapsed() < self.options.cache_time {
                return usage;
            }
        }
        let usage = up.storage.usage().await.unwrap_or_default();
        figures.usage = Some((Instant::now(), usage));
        usage
    }

    async fn tally_of(&self, i: usize) -> Option<Tally> {
        let up = &self.upstreams[i];
        let mut figures = up.figures.lock().await;
        if let Some((at, tally)) = figures.tally {
            if at.elapsed() < self.options.cache_time {
                return tally;
            }
        }
        let tally = walk(up.storage.as_ref()).await.ok();
        figures.tally = Some((Instant::now(), tally));
        tally
    }

    /// The figure `need` asks for, when upstream `i` knows it.
    async fn metric(&self, i: usize, need: Need) -> Option<u64> {
        match need {
            Need::Nothing => None,
            Need::Free => self.usage_of(i).await.free,
            Need::Used => match self.usage_of(i).await.used {
                Some(used) => Some(used),
                None => self.tally_of(i).await.map(|t| t.bytes),
            },
            Need::Objects => self.tally_of(i).await.map(|t| t.objects),
        }
    }

    /// Applies `criterion` to `(upstream, mtime)` candidates.
    async fn choose(
        &self,
        criterion: Criterion,
        candidates: &[(usize, Option<SystemTime>)],
        min_free: u64,
    ) -> Vec<usize> {
        let need = criterion.need();
        let metrics = join_all(candidates.iter().map(|&(i, _)| self.metric(i, need))).await;
        let candidates: Vec<Candidate> = candidates
            .iter()
            .zip(metrics)
            .map(|(&(upstream, modified), metric)| Candidate {
                upstream,
                modified,
                metric,
            })
            .collect();
        select(criterion, &candidates, min_free, |n| {
            rand::rng().random_range(0..n)
        })
    }

    /// The entry the search policy picks among `found` (`None` if empty).
    async fn pick_entry(&self, found: &[(usize, Entry)]) -> Option<(usize, Entry)> {
        if found.len() <= 1 {
            return found.first().cloned();
        }
        let criterion = match self.options.search.criterion {
            Criterion::All => Criterion::First,
            other => other,
        };
        let candidates: Vec<_> = found.iter().map(|(i, e)| (*i, e.modified)).collect();
        let chosen = *self.choose(criterion, &candidates, 0).await.first()?;
        found.iter().find(|(i, _)| *i == chosen).cloned()
    }

    /// The upstream and entry a search for `path` uses; `NotFound` if none.
    async fn search(&self, path: &str) -> Result<(usize, Entry)> {
        let found = self.found(path).await?;
        self.pick_entry(&found)
            .await
            .ok_or_else(|| StorageError::not_found(path))
    }

    /// The upstreams an action on `path` applies to, among `found` (where it
    /// exists); `Permission` when it exists only on `:ro` upstreams.
    async fn action_targets(&self, found: &[(usize, Entry)], path: &str) -> Result<Vec<usize>> {
        let writable: Vec<_> = found
            .iter()
            .filter(|(i, _)| self.upstreams[*i].writable())
            .map(|(i, e)| (*i, e.modified))
            .collect();
        if writable.is_empty() {
            return Err(denied(format!(
                "{path}: exists only on read-only upstreams of this union"
            )));
        }
        let chosen = self
            .choose(self.options.action.criterion, &writable, 0)
            .await;
        if chosen.is_empty() {
            return Err(StorageError::not_found(path));
        }
        Ok(chosen)
    }

    /// The upstreams a new `path` is created on; with a path-preserving
    /// policy the missing parent directories are created there first.
    async fn create_targets(&self, path: &str) -> Result<Vec<usize>> {
        let policy = self.options.create;
        let creatable = |i: &usize| self.upstreams[*i].creatable();
        if !self.upstreams.iter().any(Upstream::creatable) {
            return Err(denied(format!(
                "{path}: no upstream of this union accepts new files (all are :ro or :nc)"
            )));
        }
        let parent = parent_of(path);
        let (at, candidates) = if policy.existing_path {
            let mut dir = parent;
            loop {
                let here: Vec<_> = self
                    .dir_on(dir)
                    .await?
                    .into_iter()
                    .filter(|(i, _)| creatable(i))
                    .collect();
                if !here.is_empty() || dir.is_empty() {
                    break (dir, here);
                }
                dir = parent_of(dir);
            }
        } else {
            if !parent.is_empty() {
                self.dir_on(parent).await?;
            }
            let every: Vec<_> = (0..self.upstreams.len())
                .filter(creatable)
                .map(|i| (i, None))
                .collect();
            (parent, every)
        };
        let min_free = match policy.criterion {
            Criterion::LeastFree => self.options.min_free,
            _ => 0,
        };
        let chosen = self.choose(policy.criterion, &candidates, min_free).await;
        if chosen.is_empty() {
            return Err(StorageError::new(
                ErrorKind::Quota,
                format!(
                    "{path}: no upstream of this union has min_free_space ({min_free} bytes) free"
                ),
            ));
        }
        if at != parent {
            self.on_each(&chosen, |s| s.mkdir(parent)).await?;
        }
        Ok(chosen)
    }

    /// Where a write of `path` goes: the action policy's pick among the
    /// writable copies, or the create policy's when there is none; and
    /// whether the file is new.
    async fn write_targets(&self, path: &str) -> Result<(Vec<usize>, bool)> {
        let found = self.found(path).await?;
        if found.iter().any(|(_, e)| e.kind == EntryKind::Dir) {
            return Err(conflict(path, "is a directory"));
        }
        if found.iter().any(|(i, _)| self.upstreams[*i].writable()) {
            Ok((self.action_targets(&found, path).await?, false))
        } else {
            Ok((self.create_targets(path).await?, true))
        }
    }

    /// Writes one body to several upstreams at once.
    async fn tee_write(
        &self,
        targets: &[usize],
        path: &str,
        mut body: ByteStream,
    ) -> Vec<Result<Entry>> {
        let mut senders = Vec::with_capacity(targets.len());
        let mut writes = Vec::with_capacity(targets.len());
        for &i in targets {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(TEE_DEPTH);
            senders.push(Some(tx));
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            })
            .boxed();
            writes.push(self.upstreams[i].storage.write(path, stream));
        }
        let feed = async move {
            while let Some(item) = body.next().await {
                let failed = item.is_err();
                for slot in senders.iter_mut() {
                    if let Some(tx) = slot {
                        if tx.send(item.clone()).await.is_err() {
                            *slot = None;
                        }
                    }
                }
                if failed || senders.iter().all(Option::is_none) {
                    break;
                }
            }
        };
        let ((), results) = futures::join!(feed, join_all(writes));
        results
    }

    /// Writes `body` to `targets`; when one fails and the file is `new`, the
    /// copies that landed are removed again.
    async fn write_to(
        &self,
        targets: &[usize],
        path: &str,
        body: ByteStream,
        new: bool,
    ) -> Result<Entry> {
        if let [only] = targets {
            return self.upstreams[*only]
                .storage
                .write(path, body)
                .await
                .map_err(|e| context(&self.name(*only), e));
        }
        let results = self.tee_write(targets, path, body).await;
        let failed = results
            .iter()
            .zip(targets)
            .find_map(|(r, &i)| r.as_ref().err().map(|e| context(&self.name(i), e.clone())));
        match failed {
            None => results
                .into_iter()
                .next()
                .unwrap_or_else(|| Err(StorageError::not_found(path))),
            Some(err) => {
                if new {
                    let landed: Vec<usize> = results
                        .iter()
                        .zip(targets)
                        .filter(|(r, _)| r.is_ok())
                        .map(|(_, &i)| i)
                        .collect();
                    if let Err(e) = self.on_each(&landed, |s| s.delete(path)).await {
                        tracing::warn!(error = %e, "union: removing a partly written file failed");
                    }
                }
                Err(err)
            }
        }
    }

    /// Whether the directory `dir` has no entry on any upstream.
    async fn is_empty_dir(&self, dir: &str) -> Result<bool> {
        Ok(self.list(dir, None, 1).await?.entries.is_empty())
    }
}

#[async_trait]
impl Storage for Union {
    /// Derived from the upstreams' capabilities at each call (they follow
    /// their backends, which may be reconnected with other settings).
    fn capability(&self) -> Capability {
        let every: Vec<Capability> = self
            .upstreams
            .iter()
            .map(|u| u.storage.capability())
            .collect();
        let writable: Vec<Capability> = self
            .upstreams
            .iter()
            .filter(|u| u.writable())
            .map(|u| u.storage.capability())
            .collect();
        let (read, write) = (all_caps(&every), all_caps(&writable));
        Capability {
            directories: read.directories,
            ranged_read: read.ranged_read,
            // Copies between upstreams stream through this process; copies
            // within one use the upstream's copy.
            copy: write.copy,
            // A rename touches every upstream the action policy picks.
            atomic_rename: write.atomic_rename && writable.len() == 1,
            set_mtime: write.set_mtime,
            usage: read.usage,
            append: false,
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Ok(Entry {
                path,
                kind: EntryKind::Dir,
                size: 0,
                modified: None,
            });
        }
        Ok(self.search(&path).await?.1)
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        let dir = normalize_path(dir)?;
        let limit = if limit == 0 { DEFAULT_PAGE } else { limit };
        let results = join_all(
            self.upstreams
                .iter()
                .map(|u| take_entries(u.storage.as_ref(), &dir, cursor.clone(), limit)),
        )
        .await;
        let mut merged: BTreeMap<String, Vec<(usize, Entry)>> = BTreeMap::new();
        let mut more = false;
        let mut listed = false;
        let mut missing: Option<StorageError> = None;
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok((entries, has_more)) => {
                    listed = true;
                    more |= has_more;
                    for entry in entries {
                        merged
                            .entry(entry.name().to_string())
                            .or_default()
                            .push((i, entry));
                    }
                }
                Err(e) if e.kind == ErrorKind::NotFound => {}
                // A file here; an error only if no upstream has the directory.
                Err(e) if e.kind == ErrorKind::Conflict => {
                    missing.get_or_insert(context(&self.name(i), e));
                }
                Err(e) => return Err(context(&self.name(i), e)),
            }
        }
        if !listed {
            return Err(missing.unwrap_or_else(|| StorageError::not_found(&dir)));
        }
        let more = more || merged.len() > limit;
        let mut entries = Vec::with_capacity(merged.len().min(limit));
        for copies in merged.into_values().take(limit) {
            if let Some((_, entry)) = self.pick_entry(&copies).await {
                entries.push(entry);
            }
        }
        let next = match more {
            true => entries.last().map(|e| e.name().to_string()),
            false => None,
        };
        Ok(ListPage { entries, next })
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Err(conflict("", "is a directory"));
        }
        let (i, entry) = self.search(&path).await?;
        if entry.kind == EntryKind::Dir {
            return Err(conflict(&path, "is a directory"));
        }
        self.upstreams[i]
            .storage
            .read(&path, range)
            .await
            .map_err(|e| context(&self.name(i), e))
    }

    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Err(conflict("", "is a directory"));
        }
        let (targets, new) = self.write_targets(&path).await?;
        self.write_to(&targets, &path, body, new).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Err(conflict("", "is a directory"));
        }
        let found = self.found(&path).await?;
        if found.is_empty() {
            return Err(StorageError::not_found(&path));
        }
        let files: Vec<_> = found
            .into_iter()
            .filter(|(_, e)| e.kind == EntryKind::File)
            .collect();
        if files.is_empty() {
            return Err(conflict(&path, "is a directory"));
        }
        let targets = self.action_targets(&files, &path).await?;
        self.on_each(&targets, |s| s.delete(&path)).await
    }

    /// The search policy picks the source; the copy goes where a write of
    /// `to` would. Within one upstream it is the upstream's copy; between two
    /// it streams through this process.
    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        if !self.capability().copy {
            return Err(StorageError::unsupported(
                "a writable upstream of this union cannot copy",
            ));
        }
        let from = normalize_path(from)?;
        let to = normalize_path(to)?;
        if from.is_empty() {
            return Err(conflict("", "is a directory"));
        }
        let (src, entry) = self.search(&from).await?;
        if entry.kind == EntryKind::Dir {
            return Err(conflict(&from, "is a directory"));
        }
        if to.is_empty() {
            return Err(conflict("", "is a directory"));
        }
        let (targets, new) = self.write_targets(&to).await?;
        let source = self.upstreams[src].storage.as_ref();
        let results = join_all(targets.iter().map(|&t| {
            let target = self.upstreams[t].storage.as_ref();
            let (from, to) = (&from, &to);
            async move {
                let done = match t == src {
                    true => target.copy(from, to).await,
                    false => stream_copy(source, from, target, to).await.map(|_| ()),
                };
                done.map_err(|e| context(&self.name(t), e))
            }
        }))
        .await;
        if new && results.iter().any(Result::is_err) {
            let landed: Vec<usize> = results
                .iter()
                .zip(&targets)
                .filter(|(r, _)| r.is_ok())
                .map(|(_, &t)| t)
                .collect();
            if let Err(e) = self.on_each(&landed, |s| s.delete(&to)).await {
                tracing::warn!(error = %e, "union: removing a partly copied file failed");
            }
        }
        first_error(results)
    }

    /// Renames on each upstream the action policy picks among the writable
    /// ones holding `from`. Copies of a replaced file `to` on other writable
    /// upstreams are removed, so the renamed file is the one seen.
    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let from = normalize_path(from)?;
        let to = normalize_path(to)?;
        if from.is_empty() {
            return Err(denied("cannot rename the root directory"));
        }
        let found = self.found(&from).await?;
        let (_, source) = self
            .pick_entry(&found)
            .await
            .ok_or_else(|| StorageError::not_found(&from))?;
        if to.is_empty() {
            return Err(conflict("", "is a directory"));
        }
        if from == to {
            return Ok(());
        }
        if to.starts_with(&format!("{from}/")) {
            return Err(conflict(&to, "cannot move a directory into itself"));
        }
        let existing = self.found(&to).await?;
        let kind_at_target = |kind| existing.iter().any(|(_, e)| e.kind == kind);
        match source.kind {
            EntryKind::File if kind_at_target(EntryKind::Dir) => {
                return Err(conflict(&to, "is a directory"))
            }
            EntryKind::Dir if kind_at_target(EntryKind::File) => {
                return Err(conflict(&to, "not a directory"))
            }
            EntryKind::Dir if kind_at_target(EntryKind::Dir) && !self.is_empty_dir(&to).await? => {
                return Err(conflict(&to, "directory not empty"))
            }
            _ => {}
        }
        let same_kind: Vec<_> = found
            .into_iter()
            .filter(|(_, e)| e.kind == source.kind)
            .collect();
        let targets = self.action_targets(&same_kind, &from).await?;
        self.on_each(&targets, |s| s.rename(&from, &to)).await?;
        let stale: Vec<usize> = existing
            .iter()
            .filter(|(i, e)| {
                e.kind == EntryKind::File && self.upstreams[*i].writable() && !targets.contains(i)
            })
            .map(|(i, _)| *i)
            .collect();
        self.on_each(&stale, |s| s.delete(&to)).await
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Ok(());
        }
        let found = self.found(&path).await?;
        if found.iter().any(|(_, e)| e.kind == EntryKind::File) {
            return Err(conflict(&path, "not a directory"));
        }
        if !found.is_empty() {
            return Ok(());
        }
        let targets = self.create_targets(&path).await?;
        self.on_each(&targets, |s| s.mkdir(&path)).await
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Err(denied("cannot remove the root directory"));
        }
        let found = self.found(&path).await?;
        if found.is_empty() {
            return Err(StorageError::not_found(&path));
        }
        let dirs: Vec<_> = found
            .into_iter()
            .filter(|(_, e)| e.kind == EntryKind::Dir)
            .collect();
        if dirs.is_empty() {
            return Err(conflict(&path, "not a directory"));
        }
        if !self.is_empty_dir(&path).await? {
            return Err(conflict(&path, "directory not empty"));
        }
        let targets = self.action_targets(&dirs, &path).await?;
        self.on_each(&targets, |s| s.rmdir(&path)).await
    }

    /// The sum over the upstreams (as rclone's union reports); a figure is
    /// known only when every upstream knows it, and `Unsupported` when no
    /// upstream reports anything.
    async fn usage(&self) -> Result<Usage> {
        let results = join_all(self.upstreams.iter().map(|u| u.storage.usage())).await;
        let mut parts = Vec::with_capacity(results.len());
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(u) => parts.push(u),
                Err(e) if e.kind == ErrorKind::Unsupported => parts.push(Usage::default()),
                Err(e) => return Err(context(&self.name(i), e)),
            }
        }
        if parts.iter().all(|u| *u == Usage::default()) {
            return Err(StorageError::unsupported(
                "no upstream of this union reports its usage",
            ));
        }
        Ok(sum_usage(&parts))
    }

    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Err(StorageError::unsupported(
                "the root has no modification time",
            ));
        }
        let found = self.found(&path).await?;
        if found.is_empty() {
            return Err(StorageError::not_found(&path));
        }
        let targets = self.action_targets(&found, &path).await?;
        self.on_each(&targets, |s| s.set_modified(&path, time))
            .await
    }

    /// Probes every upstream; a failure names the upstream.
    async fn probe(&self) -> Result<()> {
        let results = join_all(self.upstreams.iter().map(|u| u.storage.probe())).await;
        for (i, result) in results.into_iter().enumerate() {
            result.map_err(|e| context(&self.name(i), e))?;
        }
        Ok(())
    }
}
