//! The disk cache of one mount: sparse data files (one per cached file), a
//! journal of the files waiting to upload, byte accounting for eviction.
//!
//! Layout under the mount's cache dir:
//! - `data/<id>`: the file's bytes at their offsets (sparse; which ranges are
//!   valid is kept in memory as a [`RangeSet`]);
//! - `journal.log` ([`Journal`]): an entry is added when a modified file is
//!   closed or fsynced and ended once the store confirmed the upload.
//!   `Vfs::new` re-queues every live entry, so a crash loses no closed write.
//!
//! Data written into a data file is always written under the item's state
//! lock, so a download never overwrites newer local writes.
//!
//! A file written from its start (a copy into the mount) goes through an
//! [`Appender`]: past its first 4 MiB the bytes are gathered and written
//! with `O_DIRECT` (`berth_storage::drivers::StreamedFile`), which on this
//! machine's disk is several times steadier than the page cache followed by
//! the `fsync` of a `cp` or `dd conv=fsync`. Whatever else touches the data
//! file (a read, a write elsewhere, a truncate, `fsync`, close, the upload)
//! settles the appender first, so the file then holds every byte written.

use crate::error::VfsError;
use crate::inode::Node;
use crate::journal::Journal;
use crate::ranges::RangeSet;
use berth_storage::drivers::positional::read_fresh;
use berth_storage::drivers::StreamedFile;
use berth_storage::{ByteStream, ErrorKind, Storage, StorageError};
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Instant, SystemTime};

/// Unit of downloads into the cache.
pub(crate) const CHUNK: u64 = 4 * 1024 * 1024;
/// Unit of uploads read from a data file.
const UPLOAD_CHUNK: usize = 1024 * 1024;

type Fetch = Shared<BoxFuture<'static, Result<(), VfsError>>>;

/// State of a cached file, under the item's lock.
#[derive(Debug)]
pub(crate) struct ItemState {
    /// Logical size of the file.
    pub size: u64,
    /// Byte ranges of the data file that hold the file's content.
    pub present: RangeSet,
    /// The content differs from the store.
    pub dirty: bool,
    /// The journal has a live entry for this item.
    pub journaled: bool,
    /// Bumped on every change of content.
    pub generation: u64,
    /// Open handles, and how many of them may write.
    pub open: u32,
    pub writers: u32,
    pub last_access: Instant,
    /// When the upload is due (write-back), if scheduled.
    pub due: Option<Instant>,
    /// When the write-back delay started (the close that scheduled it).
    pub scheduled_at: Option<Instant>,
    /// Failed upload attempts in a row.
    pub failures: u32,
    /// Size and mtime of the store version the clean content came from.
    pub remote: Option<(u64, Option<SystemTime>)>,
    pub mtime: SystemTime,
    /// The mtime was set explicitly (utimens) and is applied after upload.
    pub mtime_explicit: bool,
    /// The file was unlinked: never upload.
    pub deleted: bool,
    /// Removed from the cache: the data file is gone.
    pub evicted: bool,
}

/// How writes from the start of an empty data file reach it.
#[derive(Debug, Default)]
enum Appender {
    /// None running: writes go to the data file as they come.
    #[default]
    Idle,
    /// Gathering sequential writes past the page cache.
    Active(StreamedFile),
    /// Settling failed: the data file lacks bytes that writes were told went
    /// in, so every later use fails (as `fsync` does after a failed
    /// writeback of the page cache).
    Failed(String),
}

impl Appender {
    /// Records that a write of gathered bytes failed, and the error to give.
    fn fail(&mut self, e: std::io::Error) -> VfsError {
        *self = Appender::Failed(e.to_string());
        VfsError::cache("write cached file", e)
    }
}

/// One cached file.
#[derive(Debug)]
pub(crate) struct CacheItem {
    pub id: u64,
    /// The inode this item belongs to (pinned while the item is attached).
    pub node: Weak<Node>,
    /// The data file, created on first use (empty files never need one).
    file: OnceLock<File>,
    file_init: Mutex<()>,
    appender: Mutex<Appender>,
    data_path: PathBuf,
    /// The data file holds a previous run's content (else it starts empty).
    recovered: bool,
    state: Mutex<ItemState>,
    /// Serializes uploads with renames and deletes of the same file.
    pub upload_lock: tokio::sync::Mutex<()>,
    inflight: Mutex<HashMap<u64, Fetch>>,
}

/// The cache directory of a mount.
#[derive(Debug)]
pub(crate) struct DiskCache {
    data_dir: PathBuf,
    journal: Journal,
    next_id: AtomicU64,
    items: Mutex<HashMap<u64, Arc<CacheItem>>>,
    /// Bytes held in data files (valid ranges).
    used: AtomicU64,
}

/// A journal entry found at start.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub id: u64,
    pub path: String,
    pub mtime: Option<SystemTime>,
    pub size: u64,
}

/// `len` bytes of a data file at `pos`: a sparse tail not written yet reads
/// as zeros.
fn read_padded(file: &File, pos: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = read_fresh(file, pos, len)?;
    buf.resize(len, 0);
    Ok(buf)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DiskCache {
    /// Opens (creating) the cache dir and returns the journal entries left by
    /// a previous run. Data files without a journal entry are removed.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Vec<Recovered>), VfsError> {
        let data_dir = dir.join("data");
        fs::create_dir_all(&data_dir)
            .map_err(|e| VfsError::cache(&data_dir.display().to_string(), e))?;
        let (journal, live) = Journal::open(&dir.join("journal.log"))?;
        let mut recovered = Vec::new();
        for (id, (path, mtime, size)) in live {
            match fs::metadata(data_dir.join(id.to_string())) {
                Ok(meta) => recovered.push(Recovered {
                    id,
                    path,
                    mtime,
                    size: meta.len(),
                }),
                // Empty files never got a data file.
                Err(_) if size == 0 => recovered.push(Recovered {
                    id,
                    path,
                    mtime,
                    size: 0,
                }),
                Err(_) => {
                    tracing::warn!(%path, "vfs: journal entry without cached data; dropped");
                    journal.done(id)?;
                }
            }
        }
        let keep: std::collections::HashSet<u64> = recovered.iter().map(|r| r.id).collect();
        if let Ok(entries) = fs::read_dir(&data_dir) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().parse::<u64>().ok();
                if id.is_none_or(|id| !keep.contains(&id)) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let max_id = keep.iter().copied().max().unwrap_or(0);
        Ok((
            DiskCache {
                data_dir,
                journal,
                next_id: AtomicU64::new(max_id + 1),
                items: Mutex::new(HashMap::new()),
                used: AtomicU64::new(0),
            },
            recovered,
        ))
    }

    /// Creates an item for `node` with `size` bytes, none of them valid yet
    /// (or, for a recovered item `id`, all of them valid and dirty).
    pub(crate) fn create(
        &self,
        node: &Arc<Node>,
        size: u64,
        remote: Option<(u64, Option<SystemTime>)>,
        mtime: SystemTime,
        recovered: Option<u64>,
    ) -> Result<Arc<CacheItem>, VfsError> {
        let id = recovered.unwrap_or_else(|| self.next_id.fetch_add(1, Ordering::Relaxed));
        let data_path = self.data_dir.join(id.to_string());
        let mut present = RangeSet::default();
        if recovered.is_some() {
            present.insert(0, size);
            self.used.fetch_add(size, Ordering::Relaxed);
        }
        let item = Arc::new(CacheItem {
            id,
            node: Arc::downgrade(node),
            file: OnceLock::new(),
            file_init: Mutex::new(()),
            appender: Mutex::default(),
            data_path,
            recovered: recovered.is_some(),
            state: Mutex::new(ItemState {
                size,
                present,
                dirty: recovered.is_some(),
                journaled: recovered.is_some(),
                generation: 0,
                open: 0,
                writers: 0,
                last_access: Instant::now(),
                due: None,
                scheduled_at: None,
                failures: 0,
                remote,
                mtime,
                mtime_explicit: false,
                deleted: false,
                evicted: false,
            }),
            upload_lock: tokio::sync::Mutex::new(()),
            inflight: Mutex::new(HashMap::new()),
        });
        lock(&self.items).insert(id, item.clone());
        Ok(item)
    }

    /// The item with id `id`.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<CacheItem>> {
        lock(&self.items).get(&id).cloned()
    }

    /// Every item (for the uploader, eviction and statistics).
    pub(crate) fn items(&self) -> Vec<Arc<CacheItem>> {
        lock(&self.items).values().cloned().collect()
    }

    /// Bytes held in data files.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Removes an item and its data file (the caller detached it from its
    /// node). Its journal entry goes too unless it still waits to upload.
    pub(crate) fn remove(&self, item: &CacheItem) {
        let held = {
            let mut st = item.state();
            st.evicted = true;
            let held = st.present.total();
            st.present.clear();
            if st.journaled && (st.deleted || !st.dirty) {
                st.journaled = false;
                self.remove_journal(item.id);
            }
            held
        };
        self.used.fetch_sub(held, Ordering::Relaxed);
        let _ = fs::remove_file(&item.data_path);
        lock(&self.items).remove(&item.id);
    }

    /// Records in the journal that `item` waits to be uploaded to `path`
    /// (again, after a rename).
    pub(crate) fn write_journal(
        &self,
        item: &CacheItem,
        path: &str,
        mtime: Option<SystemTime>,
    ) -> Result<(), VfsError> {
        let size = item.state().size;
        self.journal
            .pending(item.id, (path.to_string(), mtime, size))?;
        item.state().journaled = true;
        Ok(())
    }

    /// Makes the journal durable on disk.
    pub(crate) fn sync_journal(&self) -> Result<(), VfsError> {
        self.journal.sync()
    }

    /// Ends the journal entry of item `id` (uploaded or dropped).
    pub(crate) fn remove_journal(&self, id: u64) {
        if let Err(e) = self.journal.done(id) {
            tracing::warn!(error = %e, "vfs: could not update the upload journal");
        }
    }
}

impl CacheItem {
    pub(crate) fn state(&self) -> MutexGuard<'_, ItemState> {
        lock(&self.state)
    }

    /// The data file with every write in it (a running appender is settled
    /// first), created when first needed. Bytes past its end read as zeros
    /// (they are holes of the sparse file).
    fn file(&self) -> Result<&File, VfsError> {
        self.settle()?;
        self.open_file()
    }

    /// Writes what a running appender gathered into the data file and ends
    /// it.
    pub(crate) fn settle(&self) -> Result<(), VfsError> {
        let mut appender = lock(&self.appender);
        if let Appender::Failed(msg) = &*appender {
            return Err(VfsError::errno_msg(
                libc::EIO,
                format!("an earlier write to the cached file failed: {msg}"),
            ));
        }
        let Appender::Active(out) = std::mem::take(&mut *appender) else {
            return Ok(());
        };
        out.settle().map(drop).map_err(|e| appender.fail(e))
    }

    /// Writes `data` at `offset` of the data file, whose content is `size`
    /// bytes long: a write at 0 of an empty file starts an appender, a
    /// write where the appender stands continues it, any other settles it.
    fn write_data(&self, size: u64, offset: u64, data: &[u8]) -> Result<(), VfsError> {
        let mut appender = lock(&self.appender);
        let continues = match &*appender {
            Appender::Active(out) => out.position() == offset,
            Appender::Idle => offset == 0 && size == 0,
            Appender::Failed(_) => false,
        };
        if !continues {
            drop(appender);
            return self
                .file()?
                .write_all_at(data, offset)
                .map_err(|e| VfsError::cache("write cached file", e));
        }
        if matches!(*appender, Appender::Idle) {
            let file = self
                .open_file()?
                .try_clone()
                .map_err(|e| VfsError::cache("open cached file", e))?;
            *appender = Appender::Active(StreamedFile::new(file, &self.data_path));
        }
        let Appender::Active(out) = &mut *appender else {
            unreachable!("the appender was started above");
        };
        let written = out.write(data);
        written.map_err(|e| appender.fail(e))
    }

    /// The data file as it is, created when first needed.
    fn open_file(&self) -> Result<&File, VfsError> {
        if let Some(f) = self.file.get() {
            return Ok(f);
        }
        // One opener: a second open with O_TRUNC would cut the first's data.
        let _init = lock(&self.file_init);
        if let Some(f) = self.file.get() {
            return Ok(f);
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(!self.recovered)
            .open(&self.data_path)
            .map_err(|e| VfsError::cache(&self.data_path.display().to_string(), e))?;
        Ok(self.file.get_or_init(|| f))
    }

    /// Syncs the data file to disk.
    pub(crate) fn sync(&self) -> Result<(), VfsError> {
        self.settle()?;
        match self.file.get() {
            Some(f) => f
                .sync_data()
                .map_err(|e| VfsError::cache("sync cached file", e)),
            None => Ok(()),
        }
    }

    /// Writes `data` at `offset`, extending the file; returns the new size.
    pub(crate) fn write(
        &self,
        cache: &DiskCache,
        offset: u64,
        data: &[u8],
    ) -> Result<u64, VfsError> {
        let mut st = self.state();
        if st.evicted {
            return Err(VfsError::errno_msg(libc::EIO, "cached file was removed"));
        }
        self.write_data(st.size, offset, data)?;
        let before = st.present.total();
        let end = offset + data.len() as u64;
        if offset > st.size {
            // The hole between the old end and this write reads as zeros.
            let size = st.size;
            st.present.insert(size, offset);
        }
        st.present.insert(offset, end);
        let grown = st.present.total() - before;
        cache.used.fetch_add(grown, Ordering::Relaxed);
        st.size = st.size.max(end);
        st.dirty = true;
        st.generation += 1;
        st.mtime = SystemTime::now();
        st.mtime_explicit = false;
        st.last_access = Instant::now();
        Ok(st.size)
    }

    /// Sets the size (truncate or extend with zeros).
    pub(crate) fn truncate(&self, cache: &DiskCache, size: u64) -> Result<(), VfsError> {
        let mut st = self.state();
        if st.evicted {
            return Err(VfsError::errno_msg(libc::EIO, "cached file was removed"));
        }
        self.file()?
            .set_len(size)
            .map_err(|e| VfsError::cache("truncate cached file", e))?;
        let before = st.present.total();
        if size < st.size {
            st.present.truncate(size);
        } else {
            let old = st.size;
            st.present.insert(old, size);
        }
        let after = st.present.total();
        if after >= before {
            cache.used.fetch_add(after - before, Ordering::Relaxed);
        } else {
            cache.used.fetch_sub(before - after, Ordering::Relaxed);
        }
        if size != st.size || st.remote.is_none() {
            st.dirty = true;
        }
        st.size = size;
        st.generation += 1;
        st.mtime = SystemTime::now();
        st.mtime_explicit = false;
        Ok(())
    }

    /// Forgets the cached content and takes the store's new version.
    pub(crate) fn reset(&self, cache: &DiskCache, size: u64, remote: (u64, Option<SystemTime>)) {
        let mut st = self.state();
        let held = st.present.total();
        st.present.clear();
        cache.used.fetch_sub(held, Ordering::Relaxed);
        // What an appender gathered is old content too, but its writes still
        // in flight must land before the cut, not after it; a failure of
        // the old content no longer matters.
        let _ = self.settle();
        *lock(&self.appender) = Appender::Idle;
        if let Some(f) = self.file.get() {
            let _ = f.set_len(0);
        }
        st.size = size;
        st.remote = Some(remote);
        st.generation += 1;
    }

    /// Whether `[start, end)` (clipped to the size) is in the data file.
    pub(crate) fn is_valid(&self, start: u64, end: u64) -> bool {
        let st = self.state();
        st.present.contains(start, end.min(st.size))
    }

    /// Reads up to `len` bytes at `offset`, which must be valid already.
    pub(crate) fn read_valid(&self, offset: u64, len: u64) -> Result<Bytes, VfsError> {
        let end = {
            let mut st = self.state();
            st.last_access = Instant::now();
            offset.saturating_add(len).min(st.size)
        };
        if offset >= end {
            return Ok(Bytes::new());
        }
        read_padded(self.file()?, offset, (end - offset) as usize)
            .map(Bytes::from)
            .map_err(|e| VfsError::cache("read cached file", e))
    }

    /// Makes `[start, end)` valid, downloading missing chunks from `path`, and
    /// starts downloading the `ahead` chunks after it in the background.
    pub(crate) async fn ensure(
        self: &Arc<Self>,
        cache: &Arc<DiskCache>,
        storage: &Arc<dyn Storage>,
        path: &str,
        start: u64,
        end: u64,
        ahead: u64,
    ) -> Result<(), VfsError> {
        let (missing, size) = {
            let st = self.state();
            let end = end.min(st.size);
            (st.present.missing(start, end), st.size)
        };
        let mut waits = Vec::new();
        let mut last = None;
        for (s, e) in missing {
            for idx in s / CHUNK..e.div_ceil(CHUNK) {
                if last != Some(idx) {
                    waits.push(self.fetch(cache, storage, path, idx));
                    last = Some(idx);
                }
            }
        }
        if ahead > 0 && end < size {
            let first = end.div_ceil(CHUNK);
            for idx in first..first + ahead {
                let (s, e) = (idx * CHUNK, ((idx + 1) * CHUNK).min(size));
                if s >= size {
                    break;
                }
                if !self.state().present.contains(s, e) {
                    drop(self.fetch(cache, storage, path, idx));
                }
            }
        }
        for r in futures::future::join_all(waits).await {
            r?;
        }
        Ok(())
    }

    /// The download of chunk `idx`, shared with any other waiter.
    fn fetch(
        self: &Arc<Self>,
        cache: &Arc<DiskCache>,
        storage: &Arc<dyn Storage>,
        path: &str,
        idx: u64,
    ) -> Fetch {
        let mut inflight = lock(&self.inflight);
        if let Some(f) = inflight.get(&idx) {
            return f.clone();
        }
        let (item, cache, storage, path) = (
            self.clone(),
            cache.clone(),
            storage.clone(),
            path.to_string(),
        );
        let task = tokio::spawn(async move {
            let r = item.download(&cache, &storage, &path, idx).await;
            lock(&item.inflight).remove(&idx);
            r
        });
        let fut = async move {
            task.await
                .map_err(|e| VfsError::Cache(format!("download task failed: {e}")))?
        }
        .boxed()
        .shared();
        inflight.insert(idx, fut.clone());
        fut
    }

    async fn download(
        &self,
        cache: &DiskCache,
        storage: &Arc<dyn Storage>,
        path: &str,
        idx: u64,
    ) -> Result<(), VfsError> {
        let size = self.state().size;
        let start = idx * CHUNK;
        let end = (start + CHUNK).min(size);
        if start >= end {
            return Ok(());
        }
        let mut body = storage.read(path, Some((start, end - start))).await?;
        let mut pos = start;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            self.store_fetched(cache, pos, &chunk)?;
            pos += chunk.len() as u64;
            if pos >= end {
                break;
            }
        }
        let st = self.state();
        if pos < end.min(st.size) && !st.present.contains(start, end.min(st.size)) {
            return Err(VfsError::Storage(StorageError::new(
                ErrorKind::Transient,
                format!("{path}: the file changed on the store while it was read (ended at {pos}, expected {end})"),
            )));
        }
        Ok(())
    }

    /// Writes downloaded bytes into the ranges that are still missing.
    fn store_fetched(&self, cache: &DiskCache, pos: u64, data: &[u8]) -> Result<(), VfsError> {
        let mut st = self.state();
        if st.evicted || st.deleted {
            return Ok(());
        }
        let end = (pos + data.len() as u64).min(st.size);
        for (s, e) in st.present.missing(pos, end) {
            let slice = &data[(s - pos) as usize..(e - pos) as usize];
            self.file()?
                .write_at(slice, s)
                .map_err(|e| VfsError::cache("write cached file", e))?;
            st.present.insert(s, e);
            cache.used.fetch_add(e - s, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The bytes `[0, size)` of the data file as a body for `Storage::write`.
    pub(crate) fn body(self: &Arc<Self>, size: u64) -> ByteStream {
        let item = self.clone();
        futures::stream::try_unfold(0u64, move |pos| {
            let item = item.clone();
            async move {
                if pos >= size {
                    return Ok(None);
                }
                let len = (size - pos).min(UPLOAD_CHUNK as u64) as usize;
                let chunk = tokio::task::spawn_blocking(move || {
                    let file = item.file().map_err(|e| io::Error::other(e.to_string()))?;
                    read_padded(file, pos, len).map(Bytes::from)
                })
                .await
                .map_err(|e| StorageError::new(ErrorKind::Other, format!("cache read task: {e}")))?
                .map_err(|e| StorageError::from_io(e, "cached file"))?;
                Ok(Some((chunk, pos + len as u64)))
            }
        })
        .boxed()
    }
}
