//! The fuser adapter: a thin translation of kernel requests into [`Vfs`]
//! calls. Every callback that may touch the store hands its work to the tokio
//! runtime and answers the kernel from there, so fuser threads never wait on
//! the network. What needs no store is answered inline: `forget`, `readdir`
//! (from the snapshot taken by `opendir`), and reads and writes of data in
//! the disk cache (local file I/O, no copy of the request buffer).

use crate::error::VfsError;
use crate::inode::{Attr, FileKind};
use crate::vfs::Vfs;
use bytes::Bytes;
use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, SessionACL, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Preferred I/O size reported in `st_blksize` (tools size buffers by it).
const BLKSIZE: u32 = 1024 * 1024;

/// How a [`Vfs`] is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// fuser threads reading kernel requests (each with its own cloned fd).
    pub n_threads: usize,
    /// Let other users access the mount (`allow_other`).
    pub allow_other: bool,
    /// Mount read-only.
    pub read_only: bool,
    /// Have the kernel unmount when the process dies (needs `fusermount3`).
    pub auto_unmount: bool,
    /// Name shown as the mount's source (in `/proc/mounts`, `df`).
    pub fsname: String,
    /// Owner reported for every file.
    pub uid: u32,
    /// Group reported for every file.
    pub gid: u32,
    /// Kernel read-ahead of the mount in KiB (the size of the reads the
    /// kernel sends for sequential readers, up to 1 MiB per request). Set
    /// through sysfs after mounting, which needs root; `None` keeps the
    /// kernel's default (128 KiB).
    pub read_ahead_kb: Option<u32>,
}

impl Default for MountOptions {
    /// Four threads, owner-only, read-write, owned by the current user,
    /// 4 MiB kernel read-ahead.
    fn default() -> Self {
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        MountOptions {
            n_threads: 4,
            allow_other: false,
            read_only: false,
            auto_unmount: false,
            fsname: "berth".into(),
            uid,
            gid,
            read_ahead_kb: Some(4096),
        }
    }
}

/// A live FUSE mount; owns the fuser session.
#[derive(Debug)]
pub struct MountHandle {
    session: BackgroundSession,
    mountpoint: PathBuf,
}

impl MountHandle {
    /// Unmounts and waits for the session threads to end.
    pub fn unmount(self) -> Result<(), VfsError> {
        let shown = self.mountpoint.display().to_string();
        session_ended(self.session.umount_and_join())
            .map_err(|e| io_error(&format!("unmount {shown}"), e))
    }

    /// Whether the session still serves requests (false once the kernel
    /// side went away, for example after an external `fusermount3 -u`).
    pub fn is_alive(&self) -> bool {
        !self.session.guard.is_finished()
    }

    /// Where the filesystem is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }
}

/// Sets the read-ahead of the mount's backing device info (best effort:
/// without root the kernel default stays).
fn set_read_ahead(mountpoint: &Path, kb: u32) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(mountpoint) else {
        return;
    };
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let file = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    if let Err(e) = std::fs::write(&file, kb.to_string()) {
        tracing::debug!(%file, error = %e, "vfs: could not set the mount's read-ahead");
    }
}

/// How a session's end after an unmount reads. A session thread that was
/// handed a request just as the kernel shut the connection down gets
/// `ECONNABORTED` instead of `ENODEV`: the unmount itself went through.
fn session_ended(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => Ok(()),
        other => other,
    }
}

fn io_error(what: &str, e: io::Error) -> VfsError {
    VfsError::errno_msg(
        e.raw_os_error().unwrap_or(libc::EIO),
        format!("{what}: {e}"),
    )
}

/// Mounts `vfs` at `mountpoint` (an existing directory).
pub fn mount(
    vfs: Arc<Vfs>,
    mountpoint: &Path,
    options: MountOptions,
) -> Result<MountHandle, VfsError> {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(options.fsname.clone()),
        MountOption::Subtype("berth".into()),
        MountOption::NoDev,
        MountOption::NoSuid,
        if options.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    config.acl = if options.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    if options.auto_unmount {
        config.mount_options.push(MountOption::AutoUnmount);
        if config.acl == SessionACL::Owner {
            config.acl = SessionACL::RootAndOwner;
        }
    }
    config.n_threads = Some(options.n_threads.max(1));
    config.clone_fd = options.n_threads > 1;
    let runtime = vfs.runtime().clone();
    let fs = FuseFs {
        vfs,
        runtime,
        attrs: FuseAttrs {
            uid: options.uid,
            gid: options.gid,
        },
    };
    let session = fuser::spawn_mount(fs, mountpoint, &config)
        .map_err(|e| io_error(&format!("mount {}", mountpoint.display()), e))?;
    if let Some(kb) = options.read_ahead_kb {
        set_read_ahead(mountpoint, kb);
    }
    Ok(MountHandle {
        session,
        mountpoint: mountpoint.to_path_buf(),
    })
}

struct FuseFs {
    vfs: Arc<Vfs>,
    runtime: tokio::runtime::Handle,
    attrs: FuseAttrs,
}

/// The errno a failed request answers with; an I/O error (a store or the
/// disk cache failing) is logged, since the caller sees only `EIO`.
fn errno_of(e: &VfsError) -> Errno {
    let errno = e.errno();
    if errno == libc::EIO {
        tracing::warn!(error = %e, "vfs: request failed with EIO");
    } else {
        tracing::debug!(errno, error = %e, "vfs: request failed");
    }
    Errno::from_i32(errno)
}

fn name_str(name: &OsStr) -> Result<String, Errno> {
    name.to_str().map(str::to_string).ok_or(Errno::EINVAL)
}

fn time_of(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

/// What attribute conversion needs, copied into tasks.
#[derive(Clone, Copy)]
struct FuseAttrs {
    uid: u32,
    gid: u32,
}

impl FuseAttrs {
    fn of(&self, a: &Attr) -> FileAttr {
        let (kind, perm, nlink) = match a.kind {
            FileKind::Dir => (FileType::Directory, 0o755, 2),
            FileKind::File => (FileType::RegularFile, 0o644, 1),
        };
        FileAttr {
            ino: INodeNo(a.ino),
            size: a.size,
            blocks: a.size.div_ceil(512),
            atime: a.mtime,
            mtime: a.mtime,
            ctime: a.mtime,
            crtime: a.mtime,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: BLKSIZE,
            flags: 0,
        }
    }
}

fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::Dir => FileType::Directory,
        FileKind::File => FileType::RegularFile,
    }
}

impl FuseFs {
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, f: F) {
        self.runtime.spawn(f);
    }

    /// Runs an operation answering with an entry (lookup, mkdir).
    fn entry<F>(&self, reply: ReplyEntry, op: F)
    where
        F: Future<Output = Result<Attr, VfsError>> + Send + 'static,
    {
        let (attrs, ttl) = (self.attrs, self.vfs.ttl());
        self.spawn(async move {
            match op.await {
                Ok(a) => reply.entry(&ttl, &attrs.of(&a), Generation(0)),
                Err(e) => reply.error(errno_of(&e)),
            }
        });
    }

    /// Runs an operation answering with attributes.
    fn attr<F>(&self, reply: ReplyAttr, op: F)
    where
        F: Future<Output = Result<Attr, VfsError>> + Send + 'static,
    {
        let (attrs, ttl) = (self.attrs, self.vfs.ttl());
        self.spawn(async move {
            match op.await {
                Ok(a) => reply.attr(&ttl, &attrs.of(&a)),
                Err(e) => reply.error(errno_of(&e)),
            }
        });
    }

    /// Runs an operation answering with success or an errno.
    fn empty<F>(&self, reply: ReplyEmpty, op: F)
    where
        F: Future<Output = Result<(), VfsError>> + Send + 'static,
    {
        self.spawn(async move {
            match op.await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno_of(&e)),
            }
        });
    }

    /// Runs an open-like operation answering with a handle.
    fn opened<F>(&self, reply: ReplyOpen, op: F)
    where
        F: Future<Output = Result<u64, VfsError>> + Send + 'static,
    {
        self.spawn(async move {
            match op.await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(errno_of(&e)),
            }
        });
    }
}

/// How a file opened with `flags` is opened in the kernel: a handle that
/// can only write goes past the page cache (`FOPEN_DIRECT_IO`), so each
/// write reaches berth straight from the writer's memory instead of being
/// copied into page-cache pages first and out of them again. Nothing could
/// read those pages through such a handle, and the kernel drops other
/// handles' cached pages of the range written, so open readers still see
/// the new bytes. About 40 % more write throughput (docs/BENCHMARKS.md).
fn write_only_past_page_cache(flags: i32) -> FopenFlags {
    if flags & libc::O_ACCMODE == libc::O_WRONLY {
        FopenFlags::FOPEN_DIRECT_IO
    } else {
        FopenFlags::empty()
    }
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // O_TRUNC arrives with open (no separate setattr without a handle);
        // listings carry attributes; lookups in one directory run in parallel.
        for flag in [
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_PARALLEL_DIROPS,
            // Cached pages are dropped when the attributes show a change.
            InitFlags::FUSE_AUTO_INVAL_DATA,
        ] {
            let _ = config.add_capabilities(flag);
        }
        if let Err(max) = config.set_max_readahead(u32::MAX) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        Ok(())
    }

    fn destroy(&mut self) {
        // The kernel forgot every inode with the session.
        self.vfs.forget_all();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = match name_str(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let vfs = self.vfs.clone();
        self.entry(reply, async move { vfs.lookup(parent.0, &name).await });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.vfs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let vfs = self.vfs.clone();
        self.attr(reply, async move { vfs.getattr(ino.0).await });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // Modes and owners are fixed by the mount options: changes are
        // accepted and ignored, as on other object-store mounts.
        let vfs = self.vfs.clone();
        let mtime = mtime.map(time_of);
        self.attr(reply, async move {
            vfs.setattr(ino.0, fh.map(|f| f.0), size, mtime).await
        });
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let name = match name_str(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let vfs = self.vfs.clone();
        self.entry(reply, async move { vfs.mkdir(parent.0, &name).await });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = match name_str(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let vfs = self.vfs.clone();
        self.empty(reply, async move { vfs.unlink(parent.0, &name).await });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = match name_str(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let vfs = self.vfs.clone();
        self.empty(reply, async move { vfs.rmdir(parent.0, &name).await });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname) = match (name_str(name), name_str(newname)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return reply.error(Errno::EINVAL),
        };
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let vfs = self.vfs.clone();
        self.empty(reply, async move {
            vfs.rename(parent.0, &name, newparent.0, &newname, noreplace)
                .await
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let vfs = self.vfs.clone();
        self.spawn(async move {
            match vfs.open(ino.0, flags.0).await {
                Ok(fh) => {
                    // Unchanged files are read again from the page cache.
                    let how = if vfs.keep_kernel_cache(fh) {
                        FopenFlags::FOPEN_KEEP_CACHE
                    } else {
                        write_only_past_page_cache(flags.0)
                    };
                    reply.opened(FileHandle(fh), how)
                }
                Err(e) => reply.error(errno_of(&e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Data already in the disk cache is answered on this thread.
        match self.vfs.read_cached(fh.0, offset, size) {
            Some(Ok(data)) => return reply.data(&data),
            Some(Err(e)) => return reply.error(errno_of(&e)),
            None => {}
        }
        let vfs = self.vfs.clone();
        self.spawn(async move {
            match vfs.read(fh.0, offset, size).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(errno_of(&e)),
            }
        });
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // Writes into the disk cache happen on this thread, without a copy.
        match self.vfs.write_cached(fh.0, offset, data) {
            Some(Ok(n)) => return reply.written(n),
            Some(Err(e)) => return reply.error(errno_of(&e)),
            None => {}
        }
        let vfs = self.vfs.clone();
        let data = Bytes::copy_from_slice(data);
        let pid = req.pid();
        self.spawn(async move {
            match vfs.write(fh.0, offset, data, pid).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno_of(&e)),
            }
        });
    }

    fn flush(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let vfs = self.vfs.clone();
        let pid = req.pid();
        self.empty(reply, async move { vfs.flush(fh.0, pid).await });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let vfs = self.vfs.clone();
        self.empty(reply, async move { vfs.release(fh.0).await });
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let vfs = self.vfs.clone();
        self.empty(reply, async move { vfs.fsync(fh.0).await });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let vfs = self.vfs.clone();
        self.opened(reply, async move { vfs.opendir(ino.0).await });
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let r = self.vfs.readdir(fh.0, offset, false, |e, next| {
            reply.add(INodeNo(e.attr.ino), next, file_type(e.attr.kind), &e.name)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let (attrs, ttl) = (self.attrs, self.vfs.ttl());
        let r = self.vfs.readdir(fh.0, offset, true, |e, next| {
            reply.add(
                INodeNo(e.attr.ino),
                next,
                &e.name,
                &ttl,
                &attrs.of(&e.attr),
                Generation(0),
            )
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        match self.vfs.releasedir(fh.0, ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let vfs = self.vfs.clone();
        self.spawn(async move {
            match vfs.statfs().await {
                Ok(s) => reply.statfs(
                    s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
                ),
                Err(e) => reply.error(errno_of(&e)),
            }
        });
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let name = match name_str(name) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let vfs = self.vfs.clone();
        let (attrs, ttl) = (self.attrs, self.vfs.ttl());
        self.spawn(async move {
            match vfs.create(parent.0, &name, flags).await {
                Ok((a, fh)) => reply.created(
                    &ttl,
                    &attrs.of(&a),
                    Generation(0),
                    FileHandle(fh),
                    write_only_past_page_cache(flags),
                ),
                Err(e) => reply.error(errno_of(&e)),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_aborted_by_the_unmount_is_a_clean_end() {
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert!(session_ended(Err(aborted)).is_ok());
        assert!(session_ended(Ok(())).is_ok());
        let busy = session_ended(Err(io::Error::from_raw_os_error(libc::EBUSY)));
        assert_eq!(busy.unwrap_err().raw_os_error(), Some(libc::EBUSY));
    }
}
