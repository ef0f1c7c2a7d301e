//! Writing a file from start to end on local disk past the page cache.
//!
//! A streamed write is fsynced before it is renamed into place (and a file
//! written into the VFS's disk cache is soon read once for its upload), so
//! its pages would be copied into the page cache only to be flushed at once:
//! past its first 4 MiB, a file's pieces are gathered in an aligned buffer
//! and written with `O_DIRECT` straight to the disk, which saves the kernel's
//! copy and the flush that follows (and is the steadier path on this
//! machine's disk, docs/BENCHMARKS.md). The first 4 MiB (all of a small
//! file: no second descriptor, no large buffer) and the unaligned tail go
//! through the page cache, and the final `fsync` covers them and the file's
//! metadata. Filesystems without `O_DIRECT` (tmpfs) get ordinary writes,
//! with writeback started every few MiB so the final `fsync` finds little
//! left.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

/// Offsets, lengths and buffer addresses of `O_DIRECT` writes are multiples
/// of this (the largest logical block size in common use).
const ALIGN: usize = 4096;
/// How much is gathered before one `O_DIRECT` write.
const CHUNK: usize = 4 << 20;
/// How much buffered writing lets pile up before writeback is started.
const WRITEBACK_STEP: u64 = 8 << 20;

/// [`CHUNK`] bytes starting at an [`ALIGN`] boundary, inside a slightly
/// larger allocation (fresh zero pages from mmap, touched as they fill).
struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    fn new() -> AlignedBuf {
        let raw = vec![0u8; CHUNK + ALIGN];
        let start = (ALIGN - raw.as_ptr() as usize % ALIGN) % ALIGN;
        AlignedBuf { raw, start }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + CHUNK]
    }
}

/// The direct path: a second descriptor opened with `O_DIRECT`, the buffer
/// being filled, and a writer thread that writes full buffers meanwhile (two
/// buffers take turns, so copying in and writing out overlap).
struct Direct {
    file: Arc<File>,
    buf: AlignedBuf,
    filled: usize,
    /// The other buffer; `None` while the writer holds it.
    spare: Option<AlignedBuf>,
    to_writer: mpsc::Sender<(AlignedBuf, u64)>,
    from_writer: mpsc::Receiver<(AlignedBuf, io::Result<()>)>,
    _slot: DirectSlot,
}

/// Most files written directly at once in the process: each holds two
/// [`CHUNK`] buffers and a thread, so many files written in parallel beyond
/// this go through the page cache instead of taking unbounded memory.
const MAX_DIRECT_FILES: usize = 16;
/// Files being written directly now.
static DIRECT_FILES: AtomicUsize = AtomicUsize::new(0);

/// A place among the [`MAX_DIRECT_FILES`], given back when dropped.
struct DirectSlot;

impl DirectSlot {
    fn take() -> Option<DirectSlot> {
        DIRECT_FILES
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_DIRECT_FILES).then_some(n + 1)
            })
            .ok()
            .map(|_| DirectSlot)
    }
}

impl Drop for DirectSlot {
    fn drop(&mut self) {
        DIRECT_FILES.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Direct {
    /// Opens `path` with `O_DIRECT` and starts its writer thread, which
    /// falls back to `buffered` (see [`write_direct`]); `None` where the
    /// filesystem has no such thing, or while [`MAX_DIRECT_FILES`] other
    /// files are written directly.
    fn open(path: &Path, buffered: &File) -> Option<Direct> {
        let slot = DirectSlot::take()?;
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok()
            .map(Arc::new)?;
        let fallback = buffered.try_clone().ok()?;
        let (to_writer, writes) = mpsc::channel::<(AlignedBuf, u64)>();
        let (written, from_writer) = mpsc::channel();
        let direct = file.clone();
        std::thread::Builder::new()
            .name("berth-direct-io".into())
            .spawn(move || {
                for (mut buf, at) in writes {
                    let done = write_direct(&direct, &fallback, buf.as_mut(), at);
                    if written.send((buf, done)).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(Direct {
            file,
            buf: AlignedBuf::new(),
            filled: 0,
            spare: Some(AlignedBuf::new()),
            to_writer,
            from_writer,
            _slot: slot,
        })
    }

    /// Hands the full buffer to the writer (to be written at `at`) and takes
    /// the other one, waiting for its write if the writer still has it.
    fn hand_off(&mut self, at: u64) -> io::Result<()> {
        let next = match self.spare.take() {
            Some(buf) => buf,
            None => self.take_back()?,
        };
        let full = std::mem::replace(&mut self.buf, next);
        self.filled = 0;
        self.to_writer
            .send((full, at))
            .map_err(|_| io::Error::other("the direct writer thread stopped"))
    }

    /// A buffer back from the writer, once its write is done (an error of
    /// that write is this call's).
    fn take_back(&mut self) -> io::Result<AlignedBuf> {
        let (buf, done) = self
            .from_writer
            .recv()
            .map_err(|_| io::Error::other("the direct writer thread stopped"))?;
        done.map(|()| buf)
    }

    /// Waits for the handed-off write, then writes the gathered bytes at
    /// `at` (the unaligned tail through `buffered`, a descriptor of the same
    /// file without `O_DIRECT`).
    fn settle(&mut self, buffered: &File, at: u64) -> io::Result<()> {
        if self.spare.is_none() {
            self.spare = Some(self.take_back()?);
        }
        let aligned = self.filled - self.filled % ALIGN;
        let data = self.buf.as_mut();
        write_direct(&self.file, buffered, &data[..aligned], at)?;
        buffered.write_all_at(&data[aligned..self.filled], at + aligned as u64)
    }
}

/// Writes `data` at `at` with `O_DIRECT` through `direct`, or through
/// `buffered` (a descriptor of the same file) where the filesystem took the
/// flag at open but refuses the write (`EINVAL`).
fn write_direct(direct: &File, buffered: &File, data: &[u8], at: u64) -> io::Result<()> {
    match direct.write_all_at(data, at) {
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => buffered.write_all_at(data, at),
        done => done,
    }
}

/// How the bytes reach the file.
enum Route {
    /// Through the page cache: the first [`CHUNK`], and everything where
    /// `O_DIRECT` is not to be had (`direct_next` false).
    Buffered { direct_next: bool },
    /// Gathered and written with `O_DIRECT`.
    Direct(Direct),
}

/// Writes one file from start to end, piece by piece.
pub struct StreamedFile {
    file: File,
    path: PathBuf,
    via: Route,
    /// Bytes written to the file (not counting what is gathered).
    written: u64,
    /// Where writeback was last started (buffered path).
    writeback_from: u64,
}

impl std::fmt::Debug for StreamedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamedFile")
            .field("path", &self.path)
            .field("position", &self.position())
            .field("direct", &matches!(self.via, Route::Direct(_)))
            .finish()
    }
}

impl StreamedFile {
    /// Writes to `file`, freshly created and empty at `path`. Small files
    /// go through the page cache; past the first [`CHUNK`] the rest goes
    /// through a second, `O_DIRECT` descriptor of `path` when the filesystem
    /// has it.
    pub fn new(file: File, path: &Path) -> StreamedFile {
        StreamedFile {
            file,
            path: path.to_path_buf(),
            via: Route::Buffered { direct_next: true },
            written: 0,
            writeback_from: 0,
        }
    }

    /// Where the next write lands: the bytes written so far, gathered or not.
    pub fn position(&self) -> u64 {
        match &self.via {
            Route::Direct(direct) => self.written + direct.filled as u64,
            Route::Buffered { .. } => self.written,
        }
    }

    /// Appends `data`.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let taken = match &mut self.via {
                Route::Buffered { direct_next } => {
                    let room = if *direct_next {
                        (CHUNK as u64 - self.written) as usize
                    } else {
                        usize::MAX
                    };
                    let take = data.len().min(room);
                    self.buffered(&data[..take])?;
                    take
                }
                Route::Direct(direct) => {
                    let take = data.len().min(CHUNK - direct.filled);
                    let at = direct.filled;
                    direct.buf.as_mut()[at..at + take].copy_from_slice(&data[..take]);
                    direct.filled += take;
                    if direct.filled == CHUNK {
                        direct.hand_off(self.written)?;
                        self.written += CHUNK as u64;
                    }
                    take
                }
            };
            data = &data[taken..];
            if self.written == CHUNK as u64 {
                self.go_direct();
            }
        }
        Ok(())
    }

    fn buffered(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, self.written)?;
        self.written += data.len() as u64;
        if self.written - self.writeback_from >= WRITEBACK_STEP {
            begin_writeback(&self.file, self.writeback_from, self.written);
            self.writeback_from = self.written;
        }
        Ok(())
    }

    /// Switches to `O_DIRECT` once the first [`CHUNK`] is written (an
    /// aligned offset), if it was not tried yet and the filesystem has it.
    fn go_direct(&mut self) {
        if !matches!(self.via, Route::Buffered { direct_next: true }) {
            return;
        }
        self.via = match Direct::open(&self.path, &self.file) {
            Some(direct) => Route::Direct(direct),
            None => Route::Buffered { direct_next: false },
        };
    }

    /// Writes what is gathered, so that the file holds every byte written
    /// (not yet durable).
    pub fn settle(mut self) -> io::Result<File> {
        if let Route::Direct(direct) = &mut self.via {
            direct.settle(&self.file, self.written)?;
        }
        Ok(self.file)
    }

    /// Writes what is gathered and makes the whole file durable (an empty
    /// file has nothing to flush).
    pub fn finish(self) -> io::Result<File> {
        let written = self.position();
        let file = self.settle()?;
        if written > 0 {
            file.sync_all()?;
        }
        Ok(file)
    }
}

/// Asks the kernel to start writing `[from, to)` of `file` to disk, without
/// waiting (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`). Only a head
/// start for the `fsync` that follows: its failure changes nothing.
fn begin_writeback(file: &File, from: u64, to: u64) {
    let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
        return;
    };
    // SAFETY: a valid open descriptor; the call reads no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4099) as u8).collect()
    }

    /// A directory beside the test binary: the target directory is on a
    /// disk, where /tmp may be a tmpfs without O_DIRECT.
    fn disk_dir() -> tempfile::TempDir {
        let exe = std::env::current_exe().unwrap();
        tempfile::tempdir_in(exe.parent().unwrap()).unwrap()
    }

    /// Writes `len` bytes in pieces of `piece` and reads them back.
    fn round_trip(len: usize, piece: usize, direct: bool) {
        let dir = disk_dir();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let mut out = StreamedFile::new(file, &path);
        if !direct {
            out.via = Route::Buffered { direct_next: false };
        }
        let data = pattern(len);
        for part in data.chunks(piece.max(1)) {
            out.write(part).unwrap();
        }
        let went_direct = matches!(out.via, Route::Direct(_));
        assert_eq!(went_direct, direct && len >= CHUNK, "{len}: O_DIRECT here?");
        out.finish().unwrap();
        assert!(std::fs::read(&path).unwrap() == data, "{len} in {piece}");
    }

    #[test]
    fn a_write_the_filesystem_refuses_with_o_direct_goes_through_the_page_cache() {
        let dir = disk_dir();
        let path = dir.path().join("f");
        let buffered = File::create(&path).unwrap();
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .unwrap();
        // An unaligned length: O_DIRECT refuses it with EINVAL.
        write_direct(&direct, &buffered, &pattern(1000), 0).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), pattern(1000));
    }

    #[test]
    fn every_length_arrives_whole_directly_and_buffered() {
        let sizes = [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            ALIGN + 1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK + 12_345,
            (WRITEBACK_STEP as usize) + 3 * ALIGN + 7,
        ];
        for direct in [true, false] {
            for len in sizes {
                for piece in [1 << 20, 131_072 + 3, CHUNK + 5] {
                    round_trip(len, piece, direct);
                }
            }
        }
        // With every direct place taken, a large file is written whole
        // through the page cache. (In this test, since `round_trip` expects
        // a free place.)
        let taken: Vec<DirectSlot> = std::iter::from_fn(DirectSlot::take)
            .take(MAX_DIRECT_FILES + 1)
            .collect();
        assert!(taken.len() <= MAX_DIRECT_FILES);
        let dir = disk_dir();
        let path = dir.path().join("f");
        let mut out = StreamedFile::new(File::create(&path).unwrap(), &path);
        let data = pattern(2 * CHUNK + 5);
        out.write(&data).unwrap();
        assert!(matches!(out.via, Route::Buffered { direct_next: false }));
        out.finish().unwrap();
        assert!(std::fs::read(&path).unwrap() == data);
        drop(taken);
    }
}
