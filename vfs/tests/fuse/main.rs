//! Real FUSE mounts of a `Vfs` used through `std::fs`, over the memory and
//! local drivers, in every cache mode.
//!
//! Needs `/dev/fuse` (and `fusermount3` when not root). Without it every test
//! prints why and passes, unless `BERTH_REQUIRE_FUSE=1`, which makes them fail.

use berth_storage::drivers::local::LocalOptions;
use berth_storage::drivers::{DriverEnv, LocalStorage, MemoryStorage};
use berth_storage::testkit::{available, fuse_device, pattern};
use berth_storage::{collect, ErrorKind, Storage};
use berth_vfs::{mount, CacheMode, MountHandle, MountOptions, Vfs, VfsConfig};
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const MIB: usize = 1024 * 1024;

/// Whether FUSE can be used here; prints why not (or panics when required).
fn fuse_available(test: &str) -> bool {
    available("BERTH_REQUIRE_FUSE", test, fuse_device())
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Memory,
    Local,
}

/// A mounted `Vfs`; unmounted on drop (before its runtime goes).
struct Mounted {
    handle: Option<MountHandle>,
    vfs: Arc<Vfs>,
    store: Arc<dyn Storage>,
    dir: TempDir,
    _cache: TempDir,
    _root: Option<TempDir>,
    rt: tokio::runtime::Runtime,
}

impl Mounted {
    fn new(kind: Kind, config: VfsConfig) -> Mounted {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (store, root): (Arc<dyn Storage>, Option<TempDir>) = match kind {
            Kind::Memory => (Arc::new(MemoryStorage::new()), None),
            Kind::Local => {
                let root = tempfile::tempdir().unwrap();
                let env = DriverEnv {
                    local_roots: vec![root.path().to_path_buf()],
                    ..DriverEnv::default()
                };
                let store = rt
                    .block_on(LocalStorage::new(
                        root.path().to_str().unwrap(),
                        LocalOptions::default(),
                        &env,
                    ))
                    .unwrap();
                (Arc::new(store), Some(root))
            }
        };
        let cache = tempfile::tempdir().unwrap();
        let vfs = Vfs::new(
            store.clone(),
            config,
            cache.path().to_path_buf(),
            rt.handle().clone(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let handle = mount(vfs.clone(), dir.path(), MountOptions::default())
            .unwrap_or_else(|e| panic!("mount {}: {e}", dir.path().display()));
        Mounted {
            handle: Some(handle),
            vfs,
            store,
            dir,
            _cache: cache,
            _root: root,
            rt,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn stored(&self, path: &str) -> Option<Vec<u8>> {
        self.rt.block_on(async {
            match self.store.read(path, None).await {
                Ok(body) => Some(collect(body).await.unwrap()),
                Err(e) if e.kind == ErrorKind::NotFound => None,
                Err(e) => panic!("store read {path}: {e}"),
            }
        })
    }

    fn flush_all(&self) {
        self.rt.block_on(self.vfs.flush_all()).unwrap();
    }

    fn unmount(&mut self) {
        if let Some(h) = self.handle.take() {
            assert!(h.is_alive(), "the session ended before unmount");
            h.unmount().unwrap();
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.unmount();
        }
    }
}

fn config(mode: CacheMode) -> VfsConfig {
    VfsConfig {
        cache_mode: mode,
        write_back: Duration::from_millis(200),
        ..VfsConfig::default()
    }
}

fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Everything a user does with a mount, in one cache mode over one store.
fn use_mount(kind: Kind, mode: CacheMode, test: &str) {
    if !fuse_available(test) {
        return;
    }
    let mut m = Mounted::new(kind, config(mode));

    // Write and read back.
    fs::write(m.path("hello.txt"), b"hello through the kernel").unwrap();
    assert_eq!(
        fs::read(m.path("hello.txt")).unwrap(),
        b"hello through the kernel"
    );
    assert_eq!(fs::metadata(m.path("hello.txt")).unwrap().len(), 24);

    // A large file, written and read with big buffers.
    let big = pattern(32 * MIB + 333);
    {
        let mut f = fs::File::create(m.path("big.bin")).unwrap();
        for piece in big.chunks(MIB) {
            f.write_all(piece).unwrap();
        }
    }
    assert!(
        fs::read(m.path("big.bin")).unwrap() == big,
        "big file differs"
    );
    let mut f = fs::File::open(m.path("big.bin")).unwrap();
    f.seek(SeekFrom::Start(20 * MIB as u64)).unwrap();
    let mut buf = vec![0u8; 1000];
    f.read_exact(&mut buf).unwrap();
    assert_eq!(buf, big[20 * MIB..20 * MIB + 1000]);
    drop(f);

    // Appends: need a cache for files that already have content.
    let appended = OpenOptions::new()
        .append(true)
        .open(m.path("hello.txt"))
        .and_then(|mut f| f.write_all(b"!"));
    match mode {
        CacheMode::Off | CacheMode::Minimal => {
            assert_eq!(appended.unwrap_err().raw_os_error(), Some(libc::EPERM))
        }
        CacheMode::Writes | CacheMode::Full => {
            appended.unwrap();
            assert_eq!(
                fs::read(m.path("hello.txt")).unwrap(),
                b"hello through the kernel!"
            );
        }
    }

    // mkdir -p trees, renames, deletes.
    fs::create_dir_all(m.path("a/b/c")).unwrap();
    fs::write(m.path("a/b/c/deep.txt"), b"deep").unwrap();
    fs::rename(m.path("a/b"), m.path("a/moved")).unwrap();
    assert_eq!(fs::read(m.path("a/moved/c/deep.txt")).unwrap(), b"deep");
    assert!(!m.path("a/b").exists());
    fs::rename(m.path("hello.txt"), m.path("a/hello.txt")).unwrap();
    assert_eq!(sorted_names(&m.path("a")), ["hello.txt", "moved"]);
    assert_eq!(
        fs::remove_dir(m.path("a/moved"))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENOTEMPTY)
    );
    fs::remove_dir_all(m.path("a/moved")).unwrap();
    fs::remove_file(m.path("a/hello.txt")).unwrap();
    assert!(sorted_names(&m.path("a")).is_empty());
    fs::remove_dir(m.path("a")).unwrap();

    // ls of many files.
    fs::create_dir(m.path("many")).unwrap();
    for i in 0..1000 {
        fs::write(m.path(&format!("many/file-{i:04}")), i.to_string()).unwrap();
    }
    let names = sorted_names(&m.path("many"));
    assert_eq!(names.len(), 1000);
    for (i, e) in fs::read_dir(m.path("many")).unwrap().enumerate().take(50) {
        let e = e.unwrap();
        assert!(e.metadata().unwrap().is_file(), "entry {i}");
    }
    assert_eq!(fs::read_to_string(m.path("many/file-0777")).unwrap(), "777");

    // Unicode names.
    let names = ["héllo wörld.txt", "日本語.md", "emoji 🎉", "Ελληνικά"];
    fs::create_dir(m.path("ユニコード")).unwrap();
    for n in names {
        fs::write(m.path(&format!("ユニコード/{n}")), n).unwrap();
    }
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(sorted_names(&m.path("ユニコード")), expected);
    assert_eq!(
        fs::read_to_string(m.path("ユニコード/emoji 🎉")).unwrap(),
        "emoji 🎉"
    );

    // Concurrent readers on threads.
    let shared = Arc::new(pattern(12 * MIB + 5));
    fs::write(m.path("shared.bin"), &*shared).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (p, data) = (m.path("shared.bin"), shared.clone());
            std::thread::spawn(move || {
                let mut f = fs::File::open(p).unwrap();
                let mut out = Vec::new();
                let mut buf = vec![0u8; 32 * 1024 * (i + 1)];
                loop {
                    let n = f.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    out.extend_from_slice(&buf[..n]);
                }
                assert!(out == *data, "reader {i} differs");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }

    // Everything reaches the store; unmount cleanly.
    m.unmount();
    m.flush_all();
    assert!(m.stored("big.bin").unwrap() == big);
    assert_eq!(m.stored("many/file-0999").unwrap(), b"999");
    assert_eq!(
        m.stored("ユニコード/Ελληνικά").unwrap(),
        "Ελληνικά".as_bytes()
    );
    assert!(m.stored("a/moved/c/deep.txt").is_none());
    assert_eq!(m.vfs.pending_uploads(), 0);
}

macro_rules! every_mode {
    ($($name:ident: $kind:expr, $mode:expr;)*) => {$(
        #[test]
        fn $name() {
            use_mount($kind, $mode, stringify!($name));
        }
    )*};
}

every_mode! {
    memory_off: Kind::Memory, CacheMode::Off;
    memory_minimal: Kind::Memory, CacheMode::Minimal;
    memory_writes: Kind::Memory, CacheMode::Writes;
    memory_full: Kind::Memory, CacheMode::Full;
    local_off: Kind::Local, CacheMode::Off;
    local_minimal: Kind::Local, CacheMode::Minimal;
    local_writes: Kind::Local, CacheMode::Writes;
    local_full: Kind::Local, CacheMode::Full;
}

#[test]
fn off_mode_errnos_through_the_kernel() {
    if !fuse_available("off_mode_errnos_through_the_kernel") {
        return;
    }
    let m = Mounted::new(Kind::Memory, config(CacheMode::Off));
    fs::write(m.path("f"), b"0123456789").unwrap();
    let rw = OpenOptions::new().read(true).write(true).open(m.path("f"));
    assert_eq!(rw.unwrap_err().raw_os_error(), Some(libc::EPERM));
    let mut f = fs::File::create(m.path("f")).unwrap();
    f.write_all(b"abcdef").unwrap();
    f.seek(SeekFrom::Start(2)).unwrap();
    let err = f.write_all(b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ESPIPE));
    drop(f);
    assert_eq!(fs::read(m.path("f")).unwrap(), b"abcdef");
}

/// A child process started while a file is being written inherits its
/// descriptor and closes it at exec: that close is not the writer's, and the
/// streamed upload goes on until the writer closes.
#[test]
fn off_mode_writes_survive_a_child_closing_its_copy() {
    if !fuse_available("off_mode_writes_survive_a_child_closing_its_copy") {
        return;
    }
    let m = Mounted::new(Kind::Memory, config(CacheMode::Off));
    let mut f = fs::File::create(m.path("forked")).unwrap();
    f.write_all(b"before the child, ").unwrap();
    let status = std::process::Command::new("true").status().unwrap();
    assert!(status.success());
    f.write_all(b"after it").unwrap();
    drop(f);
    assert_eq!(
        m.stored("forked").as_deref(),
        Some(&b"before the child, after it"[..])
    );
}

/// Write-only handles go past the kernel's page cache (`FOPEN_DIRECT_IO`):
/// a reader holding the file open, its pages cached, still sees bytes
/// written through another handle at once, and the size an append makes.
#[test]
fn open_readers_see_writes_through_write_only_handles() {
    use std::os::unix::fs::FileExt;
    if !fuse_available("open_readers_see_writes_through_write_only_handles") {
        return;
    }
    for mode in [CacheMode::Writes, CacheMode::Full] {
        let m = Mounted::new(Kind::Local, config(mode));
        let path = m.path("shared");
        fs::write(&path, vec![b'a'; 64 * 1024]).unwrap();
        let reader = fs::File::open(&path).unwrap();
        let mut seen = vec![0u8; 64 * 1024];
        reader.read_exact_at(&mut seen, 0).unwrap();
        let writer = OpenOptions::new().write(true).open(&path).unwrap();
        writer.write_all_at(b"bbbb", 4096).unwrap();
        let mut four = [0u8; 4];
        reader.read_exact_at(&mut four, 4096).unwrap();
        assert_eq!(&four, b"bbbb", "{mode:?}: the open reader saw stale pages");
        drop(writer);
        let mut appender = OpenOptions::new().append(true).open(&path).unwrap();
        appender.write_all(b"tail").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 64 * 1024 + 4);
        drop(appender);
        reader.read_exact_at(&mut four, 64 * 1024).unwrap();
        assert_eq!(&four, b"tail", "{mode:?}");
    }
}

#[test]
fn minimal_mode_read_write_through_the_kernel() {
    if !fuse_available("minimal_mode_read_write_through_the_kernel") {
        return;
    }
    let m = Mounted::new(Kind::Local, config(CacheMode::Minimal));
    fs::write(m.path("db"), b"0123456789").unwrap();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path("db"))
        .unwrap();
    f.seek(SeekFrom::Start(4)).unwrap();
    f.write_all(b"XY").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "0123XY6789");
    drop(f);
    // Uploaded by close.
    assert_eq!(m.stored("db").unwrap(), b"0123XY6789");
}

#[test]
fn writes_mode_uploads_after_close_and_on_unmount() {
    if !fuse_available("writes_mode_uploads_after_close_and_on_unmount") {
        return;
    }
    let mut cfg = config(CacheMode::Writes);
    cfg.write_back = Duration::from_millis(500);
    let mut m = Mounted::new(Kind::Memory, cfg);
    fs::write(m.path("soon"), b"soon").unwrap();
    assert!(m.stored("soon").is_none());
    assert_eq!(m.vfs.pending_uploads(), 1);
    let start = Instant::now();
    while m.stored("soon").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "upload never came"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Uploads waiting at unmount are flushed by flush_all (DELETE/shutdown).
    m.vfs.update_config(VfsConfig {
        write_back: Duration::from_secs(3600),
        ..cfg
    });
    fs::write(m.path("late"), b"late").unwrap();
    m.unmount();
    assert_eq!(m.vfs.pending_uploads(), 1);
    m.flush_all();
    assert_eq!(m.stored("late").unwrap(), b"late");
}

#[test]
fn live_config_change_without_unmount() {
    if !fuse_available("live_config_change_without_unmount") {
        return;
    }
    let m = Mounted::new(Kind::Memory, config(CacheMode::Off));
    fs::write(m.path("f"), b"abc").unwrap();
    let rw = OpenOptions::new().read(true).write(true).open(m.path("f"));
    assert_eq!(rw.unwrap_err().raw_os_error(), Some(libc::EPERM));
    m.vfs.update_config(config(CacheMode::Full));
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path("f"))
        .unwrap();
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(b"def").unwrap();
    drop(f);
    assert_eq!(fs::read(m.path("f")).unwrap(), b"abcdef");
    assert!(m.handle.as_ref().unwrap().is_alive());
}

#[test]
fn remount_same_vfs() {
    if !fuse_available("remount_same_vfs") {
        return;
    }
    // The mount actor keeps its Vfs across unmount and mount (pending
    // uploads and caches survive a remount).
    let mut cfg = config(CacheMode::Writes);
    cfg.write_back = Duration::from_secs(3600);
    let mut m = Mounted::new(Kind::Local, cfg);
    fs::create_dir_all(m.path("d/e")).unwrap();
    fs::write(m.path("d/e/f"), b"before").unwrap();
    let known = m.vfs.known_inodes();
    m.unmount();
    m.handle = Some(mount(m.vfs.clone(), m.dir.path(), MountOptions::default()).unwrap());
    assert!(m.vfs.known_inodes() <= known);
    assert_eq!(fs::read(m.path("d/e/f")).unwrap(), b"before");
    fs::write(m.path("d/e/g"), b"after").unwrap();
    assert_eq!(sorted_names(&m.path("d/e")), ["f", "g"]);
    m.unmount();
    assert_eq!(m.vfs.pending_uploads(), 2);
    m.flush_all();
    assert_eq!(m.stored("d/e/f").unwrap(), b"before");
    assert_eq!(m.stored("d/e/g").unwrap(), b"after");
}
