//! [`Vfs`]: the filesystem behind a mount, by inode number, testable without
//! FUSE. The fuser adapter in [`crate::fuse`] only translates calls.
//!
//! Hot paths: an open handle is found in a sharded table and carries
//! everything its reads and writes need (the node, its reader, writer or cache
//! item), so data never goes through the inode table's lock. Lookups and
//! `getattr` answer from the table and the cached listings while they are
//! younger than `dir_cache_time`; `opendir` lists the store once and hands
//! the kernel every entry with its attributes (readdirplus). Uploads from the
//! cache wait in a queue ordered by due time, so scheduling one costs
//! `O(log n)` however many wait.

use crate::cache::{CacheItem, DiskCache};
use crate::config::{CacheMode, VfsConfig};
use crate::error::VfsError;
use crate::inode::{
    base_name, parent_path, Attr, ChildMeta, FileKind, Listing, Node, Table, ROOT_INO,
};
use crate::reader::{Reader, BUDGET_KIB, REORDER_SLACK};
use crate::writer::Writer;
use berth_storage::{join_path, once, Capability, Entry, EntryKind, ErrorKind, Storage};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::runtime::Handle as Runtime;
use tokio::sync::{Notify, Semaphore};

/// Uploads from the write cache running at once.
const UPLOAD_SLOTS: usize = 4;
/// Chunks read ahead of a sequential reader in `full` mode.
const CACHE_AHEAD: u64 = 8;
/// Longest wait between upload retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Longest sleep of the background task (it also evicts by age).
const HOUSEKEEPING: Duration = Duration::from_secs(30);
/// Longest name the filesystem accepts.
const NAME_MAX: usize = 255;
const HANDLE_SHARDS: usize = 16;

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// File name (`.` and `..` included).
    pub name: String,
    /// Attributes at the time of `opendir`.
    pub attr: Attr,
}

/// Space accounting for `statfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// Total blocks of `bsize` bytes.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Blocks available to unprivileged users.
    pub bavail: u64,
    /// Total inodes (a large constant: stores have no inode limit).
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Block size.
    pub bsize: u32,
    /// Longest file name.
    pub namelen: u32,
}

#[derive(Debug)]
enum Handle {
    Read {
        node: Arc<Node>,
        reader: tokio::sync::Mutex<Reader>,
    },
    Write {
        node: Arc<Node>,
        writer: tokio::sync::Mutex<Writer>,
    },
    Cached {
        node: Arc<Node>,
        item: Arc<CacheItem>,
        writable: bool,
        /// End of the last read, to detect sequential readers.
        last_end: AtomicU64,
    },
    Dir {
        entries: Vec<DirEntry>,
        nodes: Vec<Option<Arc<Node>>>,
    },
}

impl Handle {
    fn node(&self) -> Option<&Arc<Node>> {
        match self {
            Handle::Read { node, .. }
            | Handle::Write { node, .. }
            | Handle::Cached { node, .. } => Some(node),
            Handle::Dir { .. } => None,
        }
    }
}

/// Open handles, sharded so the data path takes no global lock.
#[derive(Debug)]
struct Handles {
    shards: Vec<Mutex<HashMap<u64, Arc<Handle>>>>,
    next: AtomicU64,
}

impl Handles {
    fn new() -> Self {
        Handles {
            shards: (0..HANDLE_SHARDS).map(|_| Mutex::default()).collect(),
            next: AtomicU64::new(1),
        }
    }

    fn shard(&self, fh: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Handle>>> {
        self.shards[(fh as usize) % HANDLE_SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, h: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.shard(fh).insert(fh, Arc::new(h));
        fh
    }

    fn get(&self, fh: u64) -> Result<Arc<Handle>, VfsError> {
        self.shard(fh)
            .get(&fh)
            .cloned()
            .ok_or_else(|| VfsError::errno_msg(libc::EBADF, format!("no open handle {fh}")))
    }

    fn remove(&self, fh: u64) -> Result<Arc<Handle>, VfsError> {
        self.shard(fh)
            .remove(&fh)
            .ok_or_else(|| VfsError::errno_msg(libc::EBADF, format!("no open handle {fh}")))
    }
}

/// The filesystem of one mount: inodes, listings and attribute caches,
/// streaming reads and writes, the disk cache and its uploads. `Send + Sync`;
/// every operation can run concurrently with the others.
#[derive(Debug)]
pub struct Vfs {
    me: Weak<Vfs>,
    storage: Arc<dyn Storage>,
    caps: Capability,
    config: RwLock<VfsConfig>,
    table: RwLock<Table>,
    handles: Handles,
    cache: Arc<DiskCache>,
    runtime: Runtime,
    budget: Arc<Semaphore>,
    upload_slots: Arc<Semaphore>,
    /// Uploads by due time (entries whose item's `due` differs are stale).
    queue: Mutex<BTreeSet<(Instant, u64)>>,
    /// When the background task plans to wake next.
    next_wake: Mutex<Option<Instant>>,
    wake: Arc<Notify>,
    started: SystemTime,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn enoent(what: &str) -> VfsError {
    VfsError::errno_msg(libc::ENOENT, format!("{what}: no such file or directory"))
}

fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(MAX_BACKOFF)
}

fn check_name(name: &str) -> Result<(), VfsError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(VfsError::errno_msg(
            libc::EINVAL,
            format!("invalid file name {name:?}"),
        ));
    }
    if name.len() > NAME_MAX {
        return Err(VfsError::errno_msg(
            libc::ENAMETOOLONG,
            format!("file name longer than {NAME_MAX} bytes"),
        ));
    }
    Ok(())
}

impl Vfs {
    /// Builds the filesystem over `storage`. `cache_dir` is this mount's own
    /// directory: uploads left in it by a crash are re-queued now and start
    /// at once. Background work (uploads, eviction) runs on `runtime`.
    pub fn new(
        storage: Arc<dyn Storage>,
        config: VfsConfig,
        cache_dir: PathBuf,
        runtime: Runtime,
    ) -> Result<Arc<Vfs>, VfsError> {
        let (cache, recovered) = DiskCache::open(&cache_dir)?;
        let caps = storage.capability();
        let vfs = Arc::new_cyclic(|me| Vfs {
            me: me.clone(),
            storage,
            caps,
            config: RwLock::new(config),
            table: RwLock::new(Table::new()),
            handles: Handles::new(),
            cache: Arc::new(cache),
            runtime: runtime.clone(),
            budget: Arc::new(Semaphore::new(BUDGET_KIB)),
            upload_slots: Arc::new(Semaphore::new(UPLOAD_SLOTS)),
            queue: Mutex::new(BTreeSet::new()),
            next_wake: Mutex::new(None),
            wake: Arc::new(Notify::new()),
            started: SystemTime::now(),
        });
        for r in recovered {
            let now = Instant::now();
            let node = {
                let mut t = vfs.table_w();
                let node = t.upsert(&r.path, FileKind::File, None, now);
                t.set_local(&r.path, true);
                node
            };
            let mtime = r.mtime.unwrap_or_else(SystemTime::now);
            let item = vfs.cache.create(&node, r.size, None, mtime, Some(r.id))?;
            item.state().mtime_explicit = r.mtime.is_some();
            {
                let mut m = node.meta();
                m.size = r.size;
                m.mtime = Some(mtime);
                m.local_attrs = true;
                m.cache = Some(item.clone());
            }
            vfs.schedule(&item, now);
            tracing::info!(path = %r.path, "vfs: re-queued an upload left by a previous run");
        }
        runtime.spawn(background(vfs.me.clone(), vfs.wake.clone()));
        Ok(vfs)
    }

    /// The runtime the filesystem's work runs on.
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    fn table_r(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    fn table_w(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The settings in force.
    pub fn config(&self) -> VfsConfig {
        *self.config.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies new settings to the live filesystem: new opens use the new
    /// cache mode, TTLs and limits apply at once, and the cache is trimmed.
    pub fn update_config(&self, config: VfsConfig) {
        let old = std::mem::replace(
            &mut *self.config.write().unwrap_or_else(|p| p.into_inner()),
            config,
        );
        if old.write_back != config.write_back {
            // What waits is due `write_back` after its close, with the new value.
            for item in self.cache.items() {
                let at = {
                    let st = item.state();
                    st.due.and(st.scheduled_at)
                };
                if let Some(at) = at {
                    self.schedule(&item, at + config.write_back);
                }
            }
        }
        self.wake.notify_one();
    }

    /// Queues the upload of `item` at `due`.
    fn schedule(&self, item: &Arc<CacheItem>, due: Instant) {
        item.state().due = Some(due);
        lock(&self.queue).insert((due, item.id));
        if lock(&self.next_wake).is_none_or(|t| due < t) {
            self.wake.notify_one();
        }
    }

    /// Entry and attribute TTL for the kernel (`dir_cache_time`).
    pub fn ttl(&self) -> Duration {
        self.config().dir_cache_time
    }

    /// Files waiting in the write cache to be uploaded.
    pub fn pending_uploads(&self) -> usize {
        self.cache
            .items()
            .iter()
            .filter(|i| {
                let st = i.state();
                st.dirty && !st.deleted
            })
            .count()
    }

    /// Bytes of file data held in the disk cache.
    pub fn cache_used(&self) -> u64 {
        self.cache.used()
    }

    /// Inodes currently known.
    pub fn known_inodes(&self) -> usize {
        self.table_r().len()
    }

    /// Uploads every file waiting in the write cache now, without the
    /// write-back delay; returns the first failure (failed files stay queued
    /// and in the journal).
    pub async fn flush_all(&self) -> Result<(), VfsError> {
        for _ in 0..3 {
            let dirty: Vec<Arc<CacheItem>> = self
                .cache
                .items()
                .into_iter()
                .filter(|i| {
                    let st = i.state();
                    st.dirty && !st.deleted
                })
                .collect();
            if dirty.is_empty() {
                return Ok(());
            }
            let results = futures::future::join_all(dirty.iter().map(|i| self.upload(i))).await;
            if let Some(err) = results.into_iter().find_map(Result::err) {
                return Err(err);
            }
        }
        Ok(())
    }

    fn node(&self, ino: u64) -> Result<Arc<Node>, VfsError> {
        self.table_r()
            .get(ino)
            .ok_or_else(|| VfsError::errno_msg(libc::ENOENT, format!("unknown inode {ino}")))
    }

    fn dir_node(&self, ino: u64) -> Result<Arc<Node>, VfsError> {
        let node = self.node(ino)?;
        if node.kind != FileKind::Dir {
            return Err(VfsError::errno_msg(libc::ENOTDIR, "not a directory"));
        }
        Ok(node)
    }

    fn attr(&self, node: &Node) -> Attr {
        node.attr(self.started)
    }

    /// Stats `path` on the store; on stores without directories a prefix
    /// with children is a directory.
    async fn stat_path(&self, path: &str) -> Result<Entry, VfsError> {
        match self.storage.stat(path).await {
            Ok(e) => Ok(e),
            Err(e) if e.kind == ErrorKind::NotFound && !self.caps.directories => {
                let page = self.storage.list(path, None, 1).await;
                match page {
                    Ok(p) if !p.entries.is_empty() => Ok(Entry {
                        path: path.to_string(),
                        kind: EntryKind::Dir,
                        size: 0,
                        modified: None,
                    }),
                    _ => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The child `name` of directory `parent`, from the inode table, a fresh
    /// listing, or the store. Does not count a kernel lookup.
    async fn child(&self, parent: u64, name: &str) -> Result<Arc<Node>, VfsError> {
        check_name(name)?;
        let pnode = self.dir_node(parent)?;
        let path = join_path(&pnode.path(), name);
        let ttl = self.ttl();
        {
            let t = self.table_r();
            let local = t.local_kind(&path);
            if let Some(n) = t.by_path(&path) {
                if local.is_some() || n.meta().attrs_fresh(ttl) {
                    return Ok(n);
                }
            } else if let Some(kind) = local {
                drop(t);
                return Ok(self.table_w().upsert(&path, kind, None, Instant::now()));
            }
        }
        let listed = {
            let m = pnode.meta();
            m.fresh_listing(ttl)
                .map(|l| (l.entries.get(name).copied(), l.at))
        };
        match listed {
            Some((Some(c), at)) => {
                return Ok(self
                    .table_w()
                    .upsert(&path, c.kind, Some((c.size, c.mtime)), at))
            }
            Some((None, _)) => return Err(enoent(&path)),
            None => {}
        }
        let at = Instant::now();
        match self.stat_path(&path).await {
            Ok(e) => {
                Ok(self
                    .table_w()
                    .upsert(&path, e.kind.into(), Some((e.size, e.modified)), at))
            }
            Err(e) if e.is_not_found() => Err(enoent(&path)),
            Err(e) => Err(e),
        }
    }

    /// Looks up `name` in `parent` and counts one kernel lookup of it.
    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Attr, VfsError> {
        let node = self.child(parent, name).await?;
        node.meta().nlookup += 1;
        Ok(self.attr(&node))
    }

    /// Drops `nlookup` kernel lookups of `ino`.
    pub fn forget(&self, ino: u64, nlookup: u64) {
        self.table_w().forget(ino, nlookup);
    }

    /// Drops every kernel lookup, as when a FUSE session ends (the next
    /// session starts from the root; numbers stay stable for what remains
    /// known: open, cached or pending files).
    pub(crate) fn forget_all(&self) {
        self.table_w().forget_all();
    }

    /// Attributes of `ino`, from the cache while younger than `dir_cache_time`.
    pub async fn getattr(&self, ino: u64) -> Result<Attr, VfsError> {
        let node = self.node(ino)?;
        self.refresh(&node).await?;
        Ok(self.attr(&node))
    }

    /// Refreshes the attributes of `node` from the store when stale.
    async fn refresh(&self, node: &Arc<Node>) -> Result<(), VfsError> {
        let ttl = self.ttl();
        let path = {
            let m = node.meta();
            if m.attrs_fresh(ttl) || m.unlinked {
                return Ok(());
            }
            m.path.clone()
        };
        if node.ino == ROOT_INO || self.table_r().local_kind(&path).is_some() {
            node.meta().fetched = Some(Instant::now());
            return Ok(());
        }
        let at = Instant::now();
        let entry = match self.stat_path(&path).await {
            Ok(e) => e,
            Err(e) if e.is_not_found() => return Err(enoent(&path)),
            Err(e) => return Err(e),
        };
        if FileKind::from(entry.kind) != node.kind {
            return Err(VfsError::errno_msg(
                libc::ENOENT,
                format!("{path}: replaced by a different kind of file"),
            ));
        }
        node.meta().take_stored(entry.size, entry.modified, at);
        Ok(())
    }

    /// Changes the size and/or modification time of `ino` (`fh` is the open
    /// handle the change came through, if any).
    pub async fn setattr(
        &self,
        ino: u64,
        fh: Option<u64>,
        size: Option<u64>,
        mtime: Option<SystemTime>,
    ) -> Result<Attr, VfsError> {
        let node = self.node(ino)?;
        if let Some(size) = size {
            if node.kind == FileKind::Dir {
                return Err(VfsError::errno_msg(libc::EISDIR, "is a directory"));
            }
            self.truncate(&node, fh, size).await?;
        }
        if let Some(time) = mtime {
            self.set_mtime(&node, time).await?;
        }
        self.refresh(&node).await?;
        Ok(self.attr(&node))
    }

    async fn truncate(&self, node: &Arc<Node>, fh: Option<u64>, size: u64) -> Result<(), VfsError> {
        node.meta().kernel_data = None;
        if let Some(fh) = fh {
            let h = self.handles.get(fh)?;
            match &*h {
                Handle::Write { writer, .. } => {
                    let w = writer.lock().await;
                    if w.written == size {
                        return Ok(());
                    }
                    return Err(VfsError::errno_msg(
                        libc::EPERM,
                        format!(
                            "{}: a file streamed to the store (cache mode off) cannot be truncated",
                            w.path
                        ),
                    ));
                }
                Handle::Cached { item, .. } => {
                    item.truncate(&self.cache, size)?;
                    self.sync_node(node, item);
                    return Ok(());
                }
                Handle::Read { .. } | Handle::Dir { .. } => {}
            }
        }
        let item = node.meta().cache.clone();
        let item = match item {
            Some(item) => item,
            None => {
                self.refresh(node).await?;
                let current = node.meta().size;
                if current == size {
                    return Ok(());
                }
                if size == 0 {
                    let path = node.path();
                    let entry = self.storage.write(&path, once(Bytes::new())).await?;
                    self.stored(node, &entry);
                    return Ok(());
                }
                self.attach(node)?
            }
        };
        item.truncate(&self.cache, size)?;
        self.sync_node(node, &item);
        let writers = item.state().writers;
        if writers == 0 {
            self.commit(node, &item).await?;
            self.drop_if_clean(node, &item);
        }
        Ok(())
    }

    async fn set_mtime(&self, node: &Arc<Node>, time: SystemTime) -> Result<(), VfsError> {
        let item = node.meta().cache.clone();
        if let Some(item) = item {
            let apply_now = {
                let mut st = item.state();
                st.mtime = time;
                st.mtime_explicit = true;
                !st.dirty
            };
            node.meta().mtime = Some(time);
            if apply_now && self.caps.set_mtime {
                let path = node.path();
                self.storage.set_modified(&path, time).await?;
                let mut st = item.state();
                st.mtime_explicit = false;
                if let Some(r) = st.remote.as_mut() {
                    r.1 = Some(time);
                }
            }
            return Ok(());
        }
        let streaming = node.meta().writers > 0;
        if !streaming && self.caps.set_mtime && node.ino != ROOT_INO {
            let path = node.path();
            match self.storage.set_modified(&path, time).await {
                Ok(()) => {}
                // A directory that exists only through the mount.
                Err(e) if e.kind == ErrorKind::NotFound && node.kind == FileKind::Dir => {}
                Err(e) => return Err(e.into()),
            }
        }
        node.meta().mtime = Some(time);
        Ok(())
    }

    /// Copies an item's size and mtime to its node.
    fn sync_node(&self, node: &Node, item: &CacheItem) {
        let (size, mtime) = {
            let st = item.state();
            (st.size, st.mtime)
        };
        let mut m = node.meta();
        m.size = size;
        m.mtime = Some(mtime);
        m.local_attrs = true;
    }

    /// Records that the store now holds `entry` for `node`: attributes, the
    /// parent's listing, and the path no longer being only local.
    fn stored(&self, node: &Arc<Node>, entry: &Entry) {
        let mut t = self.table_w();
        let path = {
            let mut m = node.meta();
            m.take_stored(entry.size, entry.modified, Instant::now());
            if m.unlinked {
                return;
            }
            m.path.clone()
        };
        let still_local = node.meta().cache.as_ref().is_some_and(|i| {
            let st = i.state();
            st.dirty && !st.deleted
        });
        if !still_local {
            t.set_local(&path, false);
        }
        if let Some(parent) = t.by_path(parent_path(&path)) {
            parent
                .meta()
                .edit_child(base_name(&path), Some(ChildMeta::of(entry)));
        }
    }

    /// Attaches a cache item to `node` (or returns the attached one),
    /// validating clean cached data against the store's attributes.
    fn attach(&self, node: &Arc<Node>) -> Result<Arc<CacheItem>, VfsError> {
        let local = self.table_r().local_kind(&node.path()).is_some();
        let mut m = node.meta();
        if let Some(item) = m.cache.clone() {
            let stale = {
                let st = item.state();
                !st.dirty
                    && st.open == 0
                    && !local
                    && m.writers == 0
                    && st.remote != Some((m.size, m.mtime))
            };
            if stale {
                item.reset(&self.cache, m.size, (m.size, m.mtime));
            }
            return Ok(item);
        }
        let remote = if local { None } else { Some((m.size, m.mtime)) };
        let mtime = m.mtime.unwrap_or_else(SystemTime::now);
        let item = self.cache.create(node, m.size, remote, mtime, None)?;
        if local {
            // New through the mount: there is nothing to fetch.
            let mut st = item.state();
            let size = st.size;
            st.present.insert(0, size);
            st.dirty = true;
        }
        m.cache = Some(item.clone());
        Ok(item)
    }

    /// Opens file `ino` with open(2) `flags`; returns the handle.
    pub async fn open(&self, ino: u64, flags: i32) -> Result<u64, VfsError> {
        let node = self.node(ino)?;
        if node.kind == FileKind::Dir {
            return Err(VfsError::errno_msg(libc::EISDIR, "is a directory"));
        }
        let acc = flags & libc::O_ACCMODE;
        let trunc = flags & libc::O_TRUNC != 0 && acc != libc::O_RDONLY;
        if acc != libc::O_RDONLY {
            node.meta().kernel_data = None;
        }
        let mode = self.config().cache_mode;
        // Fresh attributes validate clean cached data (dirty data is local).
        self.refresh(&node).await?;
        let has_item = node.meta().cache.is_some();
        let cached = has_item
            || match mode {
                CacheMode::Off => false,
                CacheMode::Minimal => acc == libc::O_RDWR,
                CacheMode::Writes => acc != libc::O_RDONLY,
                CacheMode::Full => true,
            };
        if cached {
            let item = self.attach(&node)?;
            return self.open_cached(node, item, acc != libc::O_RDONLY, trunc);
        }
        if acc == libc::O_RDONLY {
            let size = node.meta().size;
            let reader = Reader::new(
                node.clone(),
                self.storage.clone(),
                self.budget.clone(),
                size,
            );
            node.meta().open += 1;
            return Ok(self.handles.insert(Handle::Read {
                node,
                reader: tokio::sync::Mutex::new(reader),
            }));
        }
        if acc == libc::O_RDWR {
            return Err(VfsError::errno_msg(
                libc::EPERM,
                format!(
                    "{}: cache mode {} cannot open a file for reading and writing; use minimal, writes or full",
                    node.path(),
                    mode.as_str()
                ),
            ));
        }
        let size = node.meta().size;
        if !trunc && size > 0 {
            return Err(VfsError::errno_msg(
                libc::EPERM,
                format!(
                    "{}: cache mode {} can only replace a file (O_TRUNC), not modify or append to it; use writes or full",
                    node.path(),
                    mode.as_str()
                ),
            ));
        }
        Ok(self.open_writer(node))
    }

    fn open_writer(&self, node: Arc<Node>) -> u64 {
        let writer = Writer::new(self.storage.clone(), node.path());
        {
            let mut m = node.meta();
            m.open += 1;
            m.writers += 1;
            m.local_attrs = true;
            m.size = 0;
            m.mtime = Some(SystemTime::now());
        }
        self.handles.insert(Handle::Write {
            node,
            writer: tokio::sync::Mutex::new(writer),
        })
    }

    fn open_cached(
        &self,
        node: Arc<Node>,
        item: Arc<CacheItem>,
        writable: bool,
        trunc: bool,
    ) -> Result<u64, VfsError> {
        {
            let _m = node.meta();
            let mut st = item.state();
            st.open += 1;
            if writable {
                st.writers += 1;
            }
            st.last_access = Instant::now();
        }
        node.meta().open += 1;
        if trunc {
            item.truncate(&self.cache, 0)?;
            self.sync_node(&node, &item);
        }
        Ok(self.handles.insert(Handle::Cached {
            node,
            item,
            writable,
            last_end: AtomicU64::new(u64::MAX),
        }))
    }

    /// Whether the kernel may keep the pages it cached for the file behind
    /// `fh`, a handle just opened read-only: true when the file's size and
    /// mtime are those seen at the previous read-only open and nothing opened
    /// it for writing or truncated it through the mount since. Files whose
    /// store keeps no mtime are never kept. Records the version for the next
    /// open.
    pub fn keep_kernel_cache(&self, fh: u64) -> bool {
        let Ok(handle) = self.handles.get(fh) else {
            return false;
        };
        let node = match &*handle {
            Handle::Read { node, .. } => node,
            Handle::Cached {
                node,
                writable: false,
                ..
            } => node,
            _ => return false,
        };
        let mut m = node.meta();
        let current = m.mtime.map(|mtime| (m.size, mtime));
        let keep = current.is_some() && m.kernel_data == current;
        m.kernel_data = current;
        keep
    }

    /// Creates file `name` in `parent` and opens it with `flags`.
    pub async fn create(
        &self,
        parent: u64,
        name: &str,
        flags: i32,
    ) -> Result<(Attr, u64), VfsError> {
        match self.child(parent, name).await {
            Ok(node) => {
                if flags & libc::O_EXCL != 0 {
                    return Err(VfsError::errno_msg(libc::EEXIST, "file exists"));
                }
                let fh = self.open(node.ino, flags).await?;
                node.meta().nlookup += 1;
                return Ok((self.attr(&node), fh));
            }
            Err(e) if e.errno() == libc::ENOENT => {}
            Err(e) => return Err(e),
        }
        let pnode = self.dir_node(parent)?;
        let path = join_path(&pnode.path(), name);
        let acc = flags & libc::O_ACCMODE;
        let mode = self.config().cache_mode;
        let cached = match mode {
            CacheMode::Off => false,
            CacheMode::Minimal => acc == libc::O_RDWR,
            CacheMode::Writes | CacheMode::Full => true,
        };
        if !cached && acc == libc::O_RDWR {
            return Err(VfsError::errno_msg(
                libc::EPERM,
                format!("{path}: cache mode off cannot open a file for reading and writing; use minimal, writes or full"),
            ));
        }
        let now = SystemTime::now();
        if !cached && acc == libc::O_RDONLY {
            // Nothing can be written through this handle: create it now.
            let entry = self.storage.write(&path, once(Bytes::new())).await?;
            let node = self.table_w().upsert(
                &path,
                FileKind::File,
                Some((entry.size, entry.modified)),
                Instant::now(),
            );
            self.stored(&node, &entry);
            let fh = self.open(node.ino, flags).await?;
            node.meta().nlookup += 1;
            return Ok((self.attr(&node), fh));
        }
        let node = {
            let mut t = self.table_w();
            let node = t.upsert(&path, FileKind::File, None, Instant::now());
            t.set_local(&path, true);
            {
                let mut m = node.meta();
                m.nlookup += 1;
                m.size = 0;
                m.mtime = Some(now);
                m.local_attrs = true;
            }
            pnode.meta().edit_child(
                name,
                Some(ChildMeta {
                    kind: FileKind::File,
                    size: 0,
                    mtime: Some(now),
                }),
            );
            node
        };
        let fh = if cached {
            let item = self.attach(&node)?;
            self.open_cached(node.clone(), item, acc != libc::O_RDONLY, false)?
        } else {
            self.open_writer(node.clone())
        };
        Ok((self.attr(&node), fh))
    }

    /// Reads up to `size` bytes at `offset` through handle `fh`.
    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes, VfsError> {
        let h = self.handles.get(fh)?;
        match &*h {
            Handle::Read { node, reader } => {
                // Opened when the file had nothing in the cache; once a
                // writer has put it there, the cache is what holds its
                // content (the store has it only after the upload).
                let item = node.meta().cache.clone();
                match item {
                    Some(item) => {
                        reader.lock().await.forget();
                        self.read_item(node, &item, offset, size, false).await
                    }
                    None => reader.lock().await.read(offset, size as u64).await,
                }
            }
            Handle::Cached {
                node,
                item,
                last_end,
                ..
            } => {
                // Near the last read's end either way: the kernel's parallel
                // read-ahead requests arrive out of order.
                let previous = last_end.swap(offset + size as u64, Ordering::Relaxed);
                let sequential = offset.abs_diff(previous) <= REORDER_SLACK;
                self.read_item(node, item, offset, size, sequential).await
            }
            Handle::Write { .. } => Err(VfsError::errno_msg(
                libc::EBADF,
                "handle is open for writing only",
            )),
            Handle::Dir { .. } => Err(VfsError::errno_msg(libc::EISDIR, "is a directory")),
        }
    }

    /// Reads through the disk cache, downloading what it lacks (and, in
    /// `full` mode for a `sequential` reader, the chunks after it).
    async fn read_item(
        &self,
        node: &Arc<Node>,
        item: &Arc<CacheItem>,
        offset: u64,
        size: u32,
        sequential: bool,
    ) -> Result<Bytes, VfsError> {
        let full = self.config().cache_mode == CacheMode::Full;
        let ahead = if sequential && full { CACHE_AHEAD } else { 0 };
        let path = node.path();
        item.ensure(
            &self.cache,
            &self.storage,
            &path,
            offset,
            offset + size as u64,
            ahead,
        )
        .await?;
        let data = item.read_valid(offset, size as u64)?;
        self.trim_soon();
        Ok(data)
    }

    /// The disk-cache fast path of `write`, for callers on a thread that
    /// must not wait for the network (it only touches the local cache file):
    /// `None` when `fh` is not a cached handle, and `write` must be used.
    pub fn write_cached(&self, fh: u64, offset: u64, data: &[u8]) -> Option<Result<u32, VfsError>> {
        let h = self.handles.get(fh).ok()?;
        let Handle::Cached {
            node,
            item,
            writable: true,
            ..
        } = &*h
        else {
            return None;
        };
        Some(item.write(&self.cache, offset, data).map(|_| {
            self.sync_node(node, item);
            data.len() as u32
        }))
    }

    /// The disk-cache fast path of `read`: answers when `fh` is a cached
    /// handle and the range is in the cache already; `None` otherwise.
    pub fn read_cached(&self, fh: u64, offset: u64, size: u32) -> Option<Result<Bytes, VfsError>> {
        let h = self.handles.get(fh).ok()?;
        let Handle::Cached { item, last_end, .. } = &*h else {
            return None;
        };
        let end = offset + size as u64;
        if !item.is_valid(offset, end) {
            return None;
        }
        last_end.store(end, Ordering::Relaxed);
        Some(item.read_valid(offset, size as u64))
    }

    /// Writes `data` at `offset` through handle `fh` for thread `pid` (the
    /// caller FUSE names); returns bytes written.
    pub async fn write(
        &self,
        fh: u64,
        offset: u64,
        data: Bytes,
        pid: u32,
    ) -> Result<u32, VfsError> {
        let h = self.handles.get(fh)?;
        let len = data.len() as u32;
        match &*h {
            Handle::Write { node, writer } => {
                let mut w = writer.lock().await;
                w.write(offset, data).await?;
                w.wrote_from(pid);
                let mut m = node.meta();
                m.size = w.written;
                m.mtime = Some(SystemTime::now());
                Ok(len)
            }
            Handle::Cached {
                node,
                item,
                writable: true,
                ..
            } => {
                item.write(&self.cache, offset, &data)?;
                self.sync_node(node, item);
                Ok(len)
            }
            _ => Err(VfsError::errno_msg(
                libc::EBADF,
                "handle is not open for writing",
            )),
        }
    }

    /// Called on each `close` of a handle, by thread `pid`: finishes a
    /// streamed upload (its result is the answer), or makes cached changes
    /// durable and queues their upload.
    pub async fn flush(&self, fh: u64, pid: u32) -> Result<(), VfsError> {
        let h = self.handles.get(fh)?;
        match &*h {
            Handle::Write { node, writer } => {
                let mut w = writer.lock().await;
                // Closes that are not the writer's must not end the upload,
                // since the writes go on: a duplicate descriptor closed
                // before anything was written (`dd`, `exec >file`), or a copy
                // closed by another process (a child forked while the file
                // was being written closes its inherited descriptor at exec
                // or exit). `release` ends the upload at the latest.
                if w.done.is_none() && (w.written == 0 || !w.is_writer(pid)) {
                    return Ok(());
                }
                self.finish_writer(node, &mut w).await
            }
            Handle::Cached {
                node,
                item,
                writable: true,
                ..
            } => self.commit(node, item).await,
            _ => Ok(()),
        }
    }

    /// `fsync`: cached changes are made durable on the cache's disk with
    /// their journal entry (and uploaded now in `off`/`minimal`); streamed
    /// writes are committed on close only.
    pub async fn fsync(&self, fh: u64) -> Result<(), VfsError> {
        let h = self.handles.get(fh)?;
        if let Handle::Cached {
            node,
            item,
            writable: true,
            ..
        } = &*h
        {
            self.commit(node, item).await?;
            item.sync()?;
            if item.state().journaled {
                self.cache.sync_journal()?;
            }
        }
        Ok(())
    }

    /// Ends the upload of a streaming writer (once) and records the result.
    async fn finish_writer(&self, node: &Arc<Node>, w: &mut Writer) -> Result<(), VfsError> {
        if let Some(done) = &w.done {
            return done.clone().map(|_| ());
        }
        let result = w.finish().await;
        let (path, unlinked) = {
            let mut m = node.meta();
            m.writers = m.writers.saturating_sub(1);
            if m.writers == 0 && m.cache.is_none() {
                m.local_attrs = false;
            }
            (m.path.clone(), m.unlinked)
        };
        let entry = match result {
            Ok(entry) => entry,
            Err(e) => {
                // The file was not written: it exists only if the store has it.
                self.table_w().set_local(&path, false);
                node.meta().fetched = None;
                return Err(e);
            }
        };
        if unlinked {
            let _ = self.storage.delete(&w.path).await;
            return Ok(());
        }
        if path != w.path {
            // Renamed while the upload ran.
            self.storage.rename(&w.path, &path).await?;
        }
        self.stored(node, &entry);
        Ok(())
    }

    /// Closes handle `fh` for good.
    pub async fn release(&self, fh: u64) -> Result<(), VfsError> {
        let h = self.handles.remove(fh)?;
        let result = match &*h {
            Handle::Write { node, writer } => {
                let mut w = writer.lock().await;
                self.finish_writer(node, &mut w).await
            }
            Handle::Cached {
                node,
                item,
                writable,
                ..
            } => {
                let (dirty, writers, deleted) = {
                    let mut st = item.state();
                    st.open = st.open.saturating_sub(1);
                    if *writable {
                        st.writers = st.writers.saturating_sub(1);
                    }
                    (st.dirty, st.writers, st.deleted)
                };
                let r = if dirty && writers == 0 && !deleted {
                    self.commit(node, item).await
                } else {
                    Ok(())
                };
                self.drop_if_clean(node, item);
                self.trim_soon();
                r
            }
            _ => Ok(()),
        };
        if let Some(node) = h.node() {
            node.meta().open -= 1;
            self.table_w().reap(node);
        }
        result
    }

    /// Makes a modified item complete and journaled, then uploads it now
    /// (`off`, `minimal`) or after `write_back` (`writes`, `full`).
    async fn commit(&self, node: &Arc<Node>, item: &Arc<CacheItem>) -> Result<(), VfsError> {
        let (dirty, deleted, size, journaled) = {
            let st = item.state();
            (st.dirty, st.deleted, st.size, st.journaled)
        };
        if !dirty || deleted {
            return Ok(());
        }
        let path = node.path();
        item.ensure(&self.cache, &self.storage, &path, 0, size, 0)
            .await?;
        // A closed file survives a crash of the process: its bytes must be
        // in the data file, not gathered in memory.
        item.settle()?;
        if !journaled {
            let mtime = {
                let st = item.state();
                st.mtime_explicit.then_some(st.mtime)
            };
            self.cache.write_journal(item, &path, mtime)?;
        }
        let cfg = self.config();
        match cfg.cache_mode {
            CacheMode::Off | CacheMode::Minimal => self.upload(item).await,
            CacheMode::Writes | CacheMode::Full => {
                let now = Instant::now();
                {
                    let mut st = item.state();
                    st.scheduled_at = Some(now);
                    st.failures = 0;
                }
                self.schedule(item, now + cfg.write_back);
                Ok(())
            }
        }
    }

    /// Detaches and removes a clean, closed item unless `full` mode keeps it.
    fn drop_if_clean(&self, node: &Arc<Node>, item: &Arc<CacheItem>) {
        let keep = self.config().cache_mode == CacheMode::Full;
        let remove = {
            let st = item.state();
            st.open == 0 && (st.deleted || (!st.dirty && !keep))
        };
        if remove {
            self.evict(node, item);
        }
    }

    /// Removes `item` from `node` and the cache if it is still closed and
    /// has nothing to upload.
    fn evict(&self, node: &Arc<Node>, item: &Arc<CacheItem>) {
        let mut t = self.table_w();
        {
            let mut m = node.meta();
            if !m.cache.as_ref().is_some_and(|c| Arc::ptr_eq(c, item)) {
                return;
            }
            {
                let st = item.state();
                if st.open > 0 || (st.dirty && !st.deleted) {
                    return;
                }
            }
            m.cache = None;
            m.local_attrs = m.writers > 0;
            m.fetched = Some(Instant::now());
        }
        self.cache.remove(item);
        t.reap(node);
    }

    /// Uploads one item now (waiting for an upload of it already running).
    async fn upload(&self, item: &Arc<CacheItem>) -> Result<(), VfsError> {
        let _guard = item.upload_lock.lock().await;
        let Some(node) = item.node.upgrade() else {
            return Ok(());
        };
        let (size, generation, journaled) = {
            let mut st = item.state();
            if !st.dirty || st.deleted {
                return Ok(());
            }
            st.due = None;
            (st.size, st.generation, st.journaled)
        };
        let path = node.path();
        let result = self.upload_inner(item, &path, size, journaled).await;
        let entry = match result {
            Ok(entry) => entry,
            Err(e) => {
                let failures = {
                    let mut st = item.state();
                    st.failures += 1;
                    st.failures
                };
                tracing::warn!(%path, error = %e, attempt = failures, "vfs: upload failed; will retry");
                self.schedule(item, Instant::now() + backoff(failures));
                return Err(e);
            }
        };
        let explicit = {
            let st = item.state();
            st.mtime_explicit.then_some(st.mtime)
        };
        let mut modified = entry.modified;
        if let (Some(t), true) = (explicit, self.caps.set_mtime) {
            match self.storage.set_modified(&path, t).await {
                Ok(()) => modified = Some(t),
                Err(e) => {
                    tracing::warn!(%path, error = %e, "vfs: could not set mtime after upload")
                }
            }
        }
        let (clean, again) = {
            let mut st = item.state();
            st.remote = Some((entry.size, modified));
            st.failures = 0;
            if st.generation == generation && !st.deleted {
                st.dirty = false;
                st.journaled = false;
                st.mtime_explicit = false;
                self.cache.remove_journal(item.id);
                (true, false)
            } else {
                (false, st.writers == 0 && !st.deleted)
            }
        };
        if again {
            // Changed while uploading: the new content goes up later.
            self.schedule(item, Instant::now() + self.config().write_back);
        }
        if clean {
            let mut m = node.meta();
            m.local_attrs = m.writers > 0;
        }
        let stored = Entry { modified, ..entry };
        self.stored(&node, &stored);
        if clean {
            self.drop_if_clean(&node, item);
            self.trim_soon();
        }
        Ok(())
    }

    async fn upload_inner(
        &self,
        item: &Arc<CacheItem>,
        path: &str,
        size: u64,
        journaled: bool,
    ) -> Result<Entry, VfsError> {
        item.ensure(&self.cache, &self.storage, path, 0, size, 0)
            .await?;
        if !journaled {
            let mtime = {
                let st = item.state();
                st.mtime_explicit.then_some(st.mtime)
            };
            self.cache.write_journal(item, path, mtime)?;
        }
        Ok(self.storage.write(path, item.body(size)).await?)
    }

    /// Starts the uploads that are due; returns when the next one is due.
    fn start_due_uploads(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut due = Vec::new();
        let next = {
            let mut q = lock(&self.queue);
            while let Some(&(t, id)) = q.first() {
                if t > now {
                    break;
                }
                q.pop_first();
                due.push((t, id));
            }
            q.first().map(|(t, _)| *t)
        };
        for (t, id) in due {
            let Some(item) = self.cache.get(id) else {
                continue;
            };
            let go = {
                let mut st = item.state();
                // Open writers: their close schedules the upload again.
                let go = st.due == Some(t) && st.dirty && !st.deleted && st.writers == 0;
                if go {
                    st.due = None;
                }
                go
            };
            if go {
                let (me, slots) = (self.me.clone(), self.upload_slots.clone());
                self.runtime.spawn(async move {
                    let Ok(_slot) = slots.acquire_owned().await else {
                        return;
                    };
                    if let Some(vfs) = me.upgrade() {
                        // Failures are logged and rescheduled by `upload`.
                        let _ = vfs.upload(&item).await;
                    }
                });
            }
        }
        next
    }

    /// Wakes the background task when the cache is over its size.
    fn trim_soon(&self) {
        if self.cache.used() > self.config().cache_max_size {
            self.wake.notify_one();
        }
    }

    /// Evicts clean, closed items: those unused for `cache_max_age`, then the
    /// least recently used until the cache fits `cache_max_size`.
    fn trim_cache(&self) {
        let cfg = self.config();
        let mut candidates: Vec<(Instant, Arc<CacheItem>)> = self
            .cache
            .items()
            .into_iter()
            .filter_map(|i| {
                let st = i.state();
                (st.open == 0 && !st.dirty && !st.journaled).then(|| (st.last_access, i.clone()))
            })
            .collect();
        candidates.sort_by_key(|(t, _)| *t);
        for (last, item) in candidates {
            if self.cache.used() <= cfg.cache_max_size && last.elapsed() < cfg.cache_max_age {
                continue;
            }
            if let Some(node) = item.node.upgrade() {
                self.evict(&node, &item);
            } else {
                self.cache.remove(&item);
            }
        }
    }

    /// Creates directory `name` in `parent`.
    pub async fn mkdir(&self, parent: u64, name: &str) -> Result<Attr, VfsError> {
        match self.child(parent, name).await {
            Ok(_) => return Err(VfsError::errno_msg(libc::EEXIST, "file exists")),
            Err(e) if e.errno() == libc::ENOENT => {}
            Err(e) => return Err(e),
        }
        let pnode = self.dir_node(parent)?;
        let path = join_path(&pnode.path(), name);
        if self.caps.directories {
            self.storage.mkdir(&path).await?;
        }
        let now = SystemTime::now();
        let at = Instant::now();
        let node = {
            let mut t = self.table_w();
            let node = t.upsert(&path, FileKind::Dir, Some((0, Some(now))), at);
            if !self.caps.directories {
                t.set_local(&path, true);
            }
            {
                let mut m = node.meta();
                m.nlookup += 1;
                m.listing = Some(Listing {
                    at,
                    entries: BTreeMap::new(),
                });
            }
            pnode.meta().edit_child(
                name,
                Some(ChildMeta {
                    kind: FileKind::Dir,
                    size: 0,
                    mtime: Some(now),
                }),
            );
            node
        };
        Ok(self.attr(&node))
    }

    /// Removes file `name` from `parent`.
    pub async fn unlink(&self, parent: u64, name: &str) -> Result<(), VfsError> {
        let node = self.child(parent, name).await?;
        if node.kind == FileKind::Dir {
            return Err(VfsError::errno_msg(libc::EISDIR, "is a directory"));
        }
        let path = node.path();
        let item = node.meta().cache.clone();
        let _guard = match &item {
            Some(i) => Some(i.upload_lock.lock().await),
            None => None,
        };
        let local = self.table_r().local_kind(&path).is_some();
        match self.storage.delete(&path).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::NotFound && local => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(item) = &item {
            let mut st = item.state();
            st.deleted = true;
            st.dirty = false;
            if st.journaled {
                st.journaled = false;
                self.cache.remove_journal(item.id);
            }
        }
        {
            let mut t = self.table_w();
            t.unlink_path(&path);
            if let Some(p) = t.by_path(parent_path(&path)) {
                p.meta().edit_child(name, None);
            }
        }
        if let Some(item) = &item {
            self.drop_if_clean(&node, item);
        }
        Ok(())
    }

    /// The children of directory `node`: its listing (cached while fresh)
    /// merged with what exists only through the mount.
    async fn children(
        &self,
        node: &Arc<Node>,
    ) -> Result<(Vec<(String, ChildMeta)>, Instant), VfsError> {
        let ttl = self.ttl();
        let (path, cached, gen) = {
            let m = node.meta();
            (
                m.path.clone(),
                m.fresh_listing(ttl).map(|l| (l.entries.clone(), l.at)),
                m.dir_gen,
            )
        };
        let (mut entries, at) = match cached {
            Some(c) => c,
            None => {
                let at = Instant::now();
                let mut entries = BTreeMap::new();
                let mut cursor = None;
                loop {
                    let page = match self.storage.list(&path, cursor, 0).await {
                        Ok(p) => p,
                        Err(e)
                            if e.kind == ErrorKind::NotFound
                                && self.table_r().local_kind(&path).is_some() =>
                        {
                            break
                        }
                        Err(e) => return Err(e.into()),
                    };
                    for e in &page.entries {
                        entries.insert(e.name().to_string(), ChildMeta::of(e));
                    }
                    match page.next {
                        Some(n) => cursor = Some(n),
                        None => break,
                    }
                }
                let mut m = node.meta();
                if m.dir_gen == gen {
                    m.listing = Some(Listing {
                        at,
                        entries: entries.clone(),
                    });
                }
                (entries, at)
            }
        };
        let t = self.table_r();
        for (name, kind) in t.local_children(&path) {
            entries.entry(name.clone()).or_insert_with(|| {
                let meta = t.by_path(&join_path(&path, &name)).map(|n| {
                    let m = n.meta();
                    (m.size, m.mtime)
                });
                let (size, mtime) = meta.unwrap_or((0, None));
                ChildMeta { kind, size, mtime }
            });
        }
        Ok((entries.into_iter().collect(), at))
    }

    /// Removes the empty directory `name` from `parent`.
    pub async fn rmdir(&self, parent: u64, name: &str) -> Result<(), VfsError> {
        let node = self.child(parent, name).await?;
        if node.kind != FileKind::Dir {
            return Err(VfsError::errno_msg(libc::ENOTDIR, "not a directory"));
        }
        let (children, _) = self.children(&node).await?;
        if !children.is_empty() {
            return Err(VfsError::errno_msg(libc::ENOTEMPTY, "directory not empty"));
        }
        let path = node.path();
        let local = self.table_r().local_kind(&path).is_some();
        match self.storage.rmdir(&path).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::NotFound && (local || !self.caps.directories) => {}
            Err(e) if e.kind == ErrorKind::Unsupported && !self.caps.directories => {}
            Err(e) => return Err(VfsError::from(e).conflict_as(libc::ENOTEMPTY)),
        }
        let mut t = self.table_w();
        t.unlink_path(&path);
        if let Some(p) = t.by_path(parent_path(&path)) {
            p.meta().edit_child(name, None);
        }
        Ok(())
    }

    /// Items attached to `path` or anything below it.
    fn items_under(&self, path: &str) -> Vec<(Arc<Node>, Arc<CacheItem>)> {
        let prefix = crate::inode::dir_prefix(path);
        self.cache
            .items()
            .into_iter()
            .filter_map(|i| {
                let node = i.node.upgrade()?;
                let p = node.path();
                (p == path || (!path.is_empty() && p.starts_with(&prefix))).then_some((node, i))
            })
            .collect()
    }

    /// Renames `name` in `parent` to `newname` in `newparent`. With
    /// `noreplace` an existing target fails with `EEXIST`.
    pub async fn rename(
        &self,
        parent: u64,
        name: &str,
        newparent: u64,
        newname: &str,
        noreplace: bool,
    ) -> Result<(), VfsError> {
        check_name(newname)?;
        let src = self.child(parent, name).await?;
        let dst_parent = self.dir_node(newparent)?;
        let from = src.path();
        let to = join_path(&dst_parent.path(), newname);
        if from == to {
            return Ok(());
        }
        if to.starts_with(&format!("{from}/")) {
            return Err(VfsError::errno_msg(
                libc::EINVAL,
                "cannot move a directory into itself",
            ));
        }
        let dst = match self.child(newparent, newname).await {
            Ok(n) => Some(n),
            Err(e) if e.errno() == libc::ENOENT => None,
            Err(e) => return Err(e),
        };
        if let Some(dst) = &dst {
            if noreplace {
                return Err(VfsError::errno_msg(libc::EEXIST, "file exists"));
            }
            match (src.kind, dst.kind) {
                (FileKind::Dir, FileKind::File) => {
                    return Err(VfsError::errno_msg(libc::ENOTDIR, "not a directory"))
                }
                (FileKind::File, FileKind::Dir) => {
                    return Err(VfsError::errno_msg(libc::EISDIR, "is a directory"))
                }
                (FileKind::Dir, FileKind::Dir) => {
                    if !self.children(dst).await?.0.is_empty() {
                        return Err(VfsError::errno_msg(libc::ENOTEMPTY, "directory not empty"));
                    }
                }
                (FileKind::File, FileKind::File) => {}
            }
        }
        // Hold the uploads of everything moved or replaced (a file's own
        // item, or every item below a directory).
        let attached = |n: &Arc<Node>| {
            let item = n.meta().cache.clone();
            item.map(|i| vec![(n.clone(), i)]).unwrap_or_default()
        };
        let mut affected = match src.kind {
            FileKind::File => attached(&src),
            FileKind::Dir => self.items_under(&from),
        };
        let replaced = match &dst {
            Some(d) if d.kind == FileKind::File => attached(d),
            Some(_) => self.items_under(&to),
            None => Vec::new(),
        };
        affected.extend(replaced.iter().cloned());
        affected.sort_by_key(|(_, i)| i.id);
        affected.dedup_by_key(|(_, i)| i.id);
        let mut guards = Vec::with_capacity(affected.len());
        for (_, item) in &affected {
            guards.push(item.upload_lock.lock().await);
        }
        let local = self.table_r().local_kind(&from).is_some();
        match self.storage.rename(&from, &to).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::NotFound && local => {
                if src.kind == FileKind::Dir && self.caps.directories {
                    self.storage.mkdir(&to).await?;
                }
            }
            Err(e) => return Err(VfsError::from(e).conflict_as(libc::ENOTEMPTY)),
        }
        for (_, item) in &replaced {
            let mut st = item.state();
            st.deleted = true;
            st.dirty = false;
            if st.journaled {
                st.journaled = false;
                self.cache.remove_journal(item.id);
            }
        }
        {
            let mut t = self.table_w();
            t.rename_path(&from, &to);
            let src_meta = {
                let m = src.meta();
                ChildMeta {
                    kind: src.kind,
                    size: m.size,
                    mtime: m.mtime,
                }
            };
            if let Some(p) = t.by_path(parent_path(&from)) {
                p.meta().edit_child(base_name(&from), None);
            }
            if let Some(p) = t.by_path(parent_path(&to)) {
                p.meta().edit_child(base_name(&to), Some(src_meta));
            }
        }
        for (node, item) in &affected {
            let (journaled, deleted, mtime) = {
                let st = item.state();
                (
                    st.journaled,
                    st.deleted,
                    st.mtime_explicit.then_some(st.mtime),
                )
            };
            if journaled && !deleted {
                self.cache.write_journal(item, &node.path(), mtime)?;
            }
        }
        drop(guards);
        for (node, item) in &replaced {
            self.drop_if_clean(node, item);
        }
        Ok(())
    }

    /// Opens directory `ino`: takes a snapshot of its entries for `readdir`.
    pub async fn opendir(&self, ino: u64) -> Result<u64, VfsError> {
        let node = self.dir_node(ino)?;
        let (children, at) = self.children(&node).await?;
        let path = node.path();
        let mut entries = Vec::with_capacity(children.len() + 2);
        let mut nodes = Vec::with_capacity(children.len() + 2);
        {
            let mut t = self.table_w();
            let parent = if ino == ROOT_INO {
                node.clone()
            } else {
                t.by_path(parent_path(&path))
                    .unwrap_or_else(|| node.clone())
            };
            for (name, n) in [(".", &node), ("..", &parent)] {
                entries.push(DirEntry {
                    name: name.to_string(),
                    attr: n.attr(self.started),
                });
                nodes.push(None);
            }
            for (name, c) in children {
                let child = t.upsert(
                    &join_path(&path, &name),
                    c.kind,
                    Some((c.size, c.mtime)),
                    at,
                );
                entries.push(DirEntry {
                    name,
                    attr: child.attr(self.started),
                });
                nodes.push(Some(child));
            }
            node.meta().open += 1;
        }
        Ok(self.handles.insert(Handle::Dir { entries, nodes }))
    }

    /// Feeds the entries of directory handle `fh` from `offset` to `add`,
    /// which gets each entry and the offset of the next one and returns
    /// `true` when it is full. With `plus`, each entry given (but `.` and
    /// `..`) counts as a kernel lookup, as readdirplus requires.
    pub fn readdir(
        &self,
        fh: u64,
        offset: u64,
        plus: bool,
        mut add: impl FnMut(&DirEntry, u64) -> bool,
    ) -> Result<(), VfsError> {
        let h = self.handles.get(fh)?;
        let Handle::Dir { entries, nodes } = &*h else {
            return Err(VfsError::errno_msg(libc::ENOTDIR, "not a directory handle"));
        };
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            if add(e, i as u64 + 1) {
                break;
            }
            if plus {
                if let Some(n) = &nodes[i] {
                    n.meta().nlookup += 1;
                }
            }
        }
        Ok(())
    }

    /// Closes directory handle `fh`.
    pub fn releasedir(&self, fh: u64, ino: u64) -> Result<(), VfsError> {
        self.handles.remove(fh)?;
        if let Ok(node) = self.node(ino) {
            {
                let mut m = node.meta();
                m.open = m.open.saturating_sub(1);
            }
            self.table_w().reap(&node);
        }
        Ok(())
    }

    /// Space accounting: the store's where it reports it, else 1 PiB free.
    pub async fn statfs(&self) -> Result<StatFs, VfsError> {
        const BSIZE: u64 = 4096;
        const PIB: u64 = 1 << 50;
        let (total, free) = if self.caps.usage {
            match self.storage.usage().await {
                Ok(u) => {
                    let total = u.total.unwrap_or(PIB);
                    let free = u
                        .free
                        .unwrap_or_else(|| total.saturating_sub(u.used.unwrap_or(0)));
                    (total, free)
                }
                Err(_) => (PIB, PIB),
            }
        } else {
            (PIB, PIB)
        };
        Ok(StatFs {
            blocks: total / BSIZE,
            bfree: free / BSIZE,
            bavail: free / BSIZE,
            files: 1 << 32,
            ffree: 1 << 32,
            bsize: BSIZE as u32,
            namelen: NAME_MAX as u32,
        })
    }
}

/// The background task of a mount: starts due uploads and trims the cache
/// (when it is over its size, and every `cache_max_age / 2`, at most 30 s).
/// It holds only a weak reference: dropping the `Vfs` stops it, leaving
/// queued uploads in the journal for the next start.
async fn background(me: Weak<Vfs>, wake: Arc<Notify>) {
    let mut last_trim = Instant::now();
    loop {
        let wake_at = {
            let Some(vfs) = me.upgrade() else { return };
            let cfg = vfs.config();
            let housekeeping =
                (cfg.cache_max_age / 2).clamp(Duration::from_millis(100), HOUSEKEEPING);
            if vfs.cache.used() > cfg.cache_max_size || last_trim.elapsed() >= housekeeping {
                vfs.trim_cache();
                last_trim = Instant::now();
            }
            let next = vfs.start_due_uploads();
            let wake_at = next.map_or(last_trim + housekeeping, |t| {
                t.min(last_trim + housekeeping)
            });
            *lock(&vfs.next_wake) = Some(wake_at);
            wake_at
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake_at.into()) => {}
            _ = wake.notified() => {}
        }
    }
}
