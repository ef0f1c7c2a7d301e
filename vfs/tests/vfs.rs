//! `Vfs` without FUSE, over the memory and local drivers, in every cache mode.
//! The scenarios in `every_mode!` run for each (store, mode) pair; the tests
//! after them check what one mode promises (see `docs/SEMANTICS.md`).

use async_trait::async_trait;
use berth_storage::drivers::local::LocalOptions;
use berth_storage::drivers::{DriverEnv, LocalStorage, MemoryStorage};
use berth_storage::testkit::pattern;
use berth_storage::{
    collect, ByteStream, Capability, Entry, ErrorKind, ListPage, Storage, StorageError, Usage,
};
use berth_vfs::{Attr, CacheMode, FileKind, Vfs, VfsConfig, VfsError, ROOT_INO};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The thread these tests write and close as (FUSE names the caller).
const PID: u32 = 1000;
use tempfile::TempDir;

const WO_CREATE: i32 = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
const MIB: usize = 1024 * 1024;

/// A mounted-like filesystem over a store, with helpers working by path.
struct Fx {
    vfs: Arc<Vfs>,
    store: Arc<dyn Storage>,
    mode: CacheMode,
    _cache: Option<TempDir>,
    _root: Option<TempDir>,
}

#[derive(Clone, Copy)]
enum Kind {
    Memory,
    Local,
}

fn config(mode: CacheMode) -> VfsConfig {
    VfsConfig {
        cache_mode: mode,
        write_back: Duration::from_millis(100),
        ..VfsConfig::default()
    }
}

async fn local_store() -> (Arc<dyn Storage>, TempDir) {
    let root = tempfile::tempdir().unwrap();
    let env = DriverEnv {
        local_roots: vec![root.path().to_path_buf()],
        ..DriverEnv::default()
    };
    let store = LocalStorage::new(root.path().to_str().unwrap(), LocalOptions::default(), &env)
        .await
        .unwrap();
    (Arc::new(store), root)
}

impl Fx {
    async fn new(kind: Kind, mode: CacheMode) -> Fx {
        let (store, root): (Arc<dyn Storage>, _) = match kind {
            Kind::Memory => (Arc::new(MemoryStorage::new()), None),
            Kind::Local => {
                let (s, r) = local_store().await;
                (s, Some(r))
            }
        };
        Fx::over(store, root, config(mode)).await
    }

    async fn over(store: Arc<dyn Storage>, root: Option<TempDir>, cfg: VfsConfig) -> Fx {
        let cache = tempfile::tempdir().unwrap();
        let mut fx = Fx::in_dir(store, cfg, cache.path());
        fx._cache = Some(cache);
        fx._root = root;
        fx
    }

    /// A filesystem whose cache dir outlives it (for restarts).
    fn in_dir(store: Arc<dyn Storage>, cfg: VfsConfig, cache_dir: &std::path::Path) -> Fx {
        let vfs = Vfs::new(
            store.clone(),
            cfg,
            cache_dir.to_path_buf(),
            tokio::runtime::Handle::current(),
        )
        .unwrap();
        Fx {
            vfs,
            store,
            mode: cfg.cache_mode,
            _cache: None,
            _root: None,
        }
    }

    async fn resolve(&self, path: &str) -> Result<Attr, VfsError> {
        let mut attr = self.vfs.getattr(ROOT_INO).await?;
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            attr = self.vfs.lookup(attr.ino, comp).await?;
        }
        Ok(attr)
    }

    fn split(path: &str) -> (&str, &str) {
        path.rsplit_once('/').unwrap_or(("", path))
    }

    /// Creates or replaces `path` with `data`, written in 1 MiB pieces.
    async fn put(&self, path: &str, data: &[u8]) {
        let (dir, name) = Fx::split(path);
        let parent = self.resolve(dir).await.unwrap().ino;
        let (_, fh) = self
            .vfs
            .create(parent, name, WO_CREATE)
            .await
            .unwrap_or_else(|e| panic!("create {path}: {e}"));
        for (i, piece) in data.chunks(MIB).enumerate() {
            self.vfs
                .write(fh, (i * MIB) as u64, Bytes::copy_from_slice(piece), PID)
                .await
                .unwrap();
        }
        self.vfs.flush(fh, PID).await.unwrap();
        self.vfs.release(fh).await.unwrap();
    }

    /// Reads `path` whole through a read-only handle, `chunk` bytes a call.
    async fn get_with(&self, path: &str, chunk: u32) -> Vec<u8> {
        let ino = self.resolve(path).await.unwrap().ino;
        let fh = self.vfs.open(ino, libc::O_RDONLY).await.unwrap();
        let mut out = Vec::new();
        loop {
            let data = self.vfs.read(fh, out.len() as u64, chunk).await.unwrap();
            out.extend_from_slice(&data);
            if data.len() < chunk as usize {
                break;
            }
        }
        self.vfs.release(fh).await.unwrap();
        out
    }

    async fn get(&self, path: &str) -> Vec<u8> {
        self.get_with(path, 128 * 1024).await
    }

    async fn mkdir_p(&self, path: &str) {
        let mut ino = ROOT_INO;
        for comp in path.split('/') {
            ino = match self.vfs.lookup(ino, comp).await {
                Ok(a) => a.ino,
                Err(_) => self.vfs.mkdir(ino, comp).await.unwrap().ino,
            };
        }
    }

    async fn ls(&self, path: &str) -> Vec<String> {
        let ino = self.resolve(path).await.unwrap().ino;
        let fh = self.vfs.opendir(ino).await.unwrap();
        let mut names = Vec::new();
        self.vfs
            .readdir(fh, 0, false, |e, _| {
                if e.name != "." && e.name != ".." {
                    names.push(e.name.clone());
                }
                false
            })
            .unwrap();
        self.vfs.releasedir(fh, ino).unwrap();
        names.sort();
        names
    }

    async fn stored(&self, path: &str) -> Option<Vec<u8>> {
        match self.store.read(path, None).await {
            Ok(body) => Some(collect(body).await.unwrap()),
            Err(e) if e.kind == ErrorKind::NotFound => None,
            Err(e) => panic!("store read {path}: {e}"),
        }
    }

    async fn unlink(&self, path: &str) -> Result<(), VfsError> {
        let (dir, name) = Fx::split(path);
        let parent = self.resolve(dir).await?.ino;
        self.vfs.unlink(parent, name).await
    }

    async fn rmdir(&self, path: &str) -> Result<(), VfsError> {
        let (dir, name) = Fx::split(path);
        let parent = self.resolve(dir).await?.ino;
        self.vfs.rmdir(parent, name).await
    }

    async fn rename(&self, from: &str, to: &str, noreplace: bool) -> Result<(), VfsError> {
        let (fd, fname) = Fx::split(from);
        let (td, tname) = Fx::split(to);
        let fp = self.resolve(fd).await?.ino;
        let tp = self.resolve(td).await?.ino;
        self.vfs.rename(fp, fname, tp, tname, noreplace).await
    }

    fn set(&self, f: impl FnOnce(&mut VfsConfig)) {
        let mut cfg = self.vfs.config();
        f(&mut cfg);
        self.vfs.update_config(cfg);
    }
}

fn errno_of<T: std::fmt::Debug>(r: Result<T, VfsError>) -> i32 {
    r.expect_err("expected an error").errno()
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

macro_rules! every_mode {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory_off() { super::$name(Fx::new(Kind::Memory, CacheMode::Off).await).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory_minimal() { super::$name(Fx::new(Kind::Memory, CacheMode::Minimal).await).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory_writes() { super::$name(Fx::new(Kind::Memory, CacheMode::Writes).await).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory_full() { super::$name(Fx::new(Kind::Memory, CacheMode::Full).await).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local_off() { super::$name(Fx::new(Kind::Local, CacheMode::Off).await).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local_minimal() { super::$name(Fx::new(Kind::Local, CacheMode::Minimal).await).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local_writes() { super::$name(Fx::new(Kind::Local, CacheMode::Writes).await).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local_full() { super::$name(Fx::new(Kind::Local, CacheMode::Full).await).await }
        }
    )*};
}

every_mode!(
    write_read_back,
    large_file,
    appends,
    renames,
    deletes,
    directory_trees,
    unicode_names,
    concurrent_readers,
    open_readers_follow_writers,
    dir_cache_invalidation,
    truncate_and_mtime,
    kernel_cache_kept_while_unchanged,
);

async fn write_read_back(fx: Fx) {
    fx.put("hello.txt", b"hello berth").await;
    assert_eq!(fx.get("hello.txt").await, b"hello berth");
    let attr = fx.resolve("hello.txt").await.unwrap();
    assert_eq!((attr.kind, attr.size), (FileKind::File, 11));
    fx.vfs.flush_all().await.unwrap();
    assert_eq!(fx.stored("hello.txt").await.unwrap(), b"hello berth");
    assert_eq!(fx.vfs.pending_uploads(), 0);

    // Replacing with shorter content, then an empty file.
    fx.put("hello.txt", b"bye").await;
    assert_eq!(fx.get("hello.txt").await, b"bye");
    fx.put("empty", b"").await;
    assert_eq!(fx.get("empty").await, b"");
    fx.vfs.flush_all().await.unwrap();
    assert_eq!(fx.stored("hello.txt").await.unwrap(), b"bye");
    assert_eq!(fx.stored("empty").await.unwrap(), b"");

    // Files already on the store read back too.
    fx.store
        .write("direct.bin", berth_storage::once(pattern(1000)))
        .await
        .unwrap();
    assert_eq!(fx.get("direct.bin").await, pattern(1000));
}

async fn large_file(fx: Fx) {
    let data = pattern(40 * MIB + 12345);
    fx.put("big.bin", &data).await;
    assert_eq!(fx.resolve("big.bin").await.unwrap().size, data.len() as u64);
    let back = fx.get_with("big.bin", 1024 * 1024).await;
    assert!(back == data, "read back differs");
    fx.vfs.flush_all().await.unwrap();
    assert!(
        fx.stored("big.bin").await.unwrap() == data,
        "stored differs"
    );

    // Random reads: the tail, the middle, past the end.
    let ino = fx.resolve("big.bin").await.unwrap().ino;
    let fh = fx.vfs.open(ino, libc::O_RDONLY).await.unwrap();
    let len = data.len() as u64;
    let tail = fx.vfs.read(fh, len - 100, 4096).await.unwrap();
    assert_eq!(&tail[..], &data[data.len() - 100..]);
    let mid = fx.vfs.read(fh, 17 * MIB as u64 + 3, 300_000).await.unwrap();
    assert_eq!(&mid[..], &data[17 * MIB + 3..17 * MIB + 300_003]);
    assert!(fx.vfs.read(fh, len + 10, 4096).await.unwrap().is_empty());
    fx.vfs.release(fh).await.unwrap();
}

async fn appends(fx: Fx) {
    fx.put("log.txt", b"one\n").await;
    fx.vfs.flush_all().await.unwrap();
    let attr = fx.resolve("log.txt").await.unwrap();
    let opened = fx.vfs.open(attr.ino, libc::O_WRONLY | libc::O_APPEND).await;
    match fx.mode {
        CacheMode::Off | CacheMode::Minimal => assert_eq!(errno_of(opened), libc::EPERM),
        CacheMode::Writes | CacheMode::Full => {
            let fh = opened.unwrap();
            fx.vfs
                .write(fh, attr.size, Bytes::from_static(b"two\n"), PID)
                .await
                .unwrap();
            fx.vfs.flush(fh, PID).await.unwrap();
            fx.vfs.release(fh).await.unwrap();
            assert_eq!(fx.get("log.txt").await, b"one\ntwo\n");
        }
    }
    // Read+write opens: everything but off goes through the cache.
    let opened = fx.vfs.open(attr.ino, libc::O_RDWR).await;
    if fx.mode == CacheMode::Off {
        assert_eq!(errno_of(opened), libc::EPERM);
        return;
    }
    let fh = opened.unwrap();
    let size = fx.vfs.getattr(attr.ino).await.unwrap().size;
    fx.vfs
        .write(fh, size, Bytes::from_static(b"three\n"), PID)
        .await
        .unwrap();
    fx.vfs
        .write(fh, 0, Bytes::from_static(b"ONE"), PID)
        .await
        .unwrap();
    let back = fx.vfs.read(fh, 0, 100).await.unwrap();
    fx.vfs.flush(fh, PID).await.unwrap();
    fx.vfs.release(fh).await.unwrap();
    let expected: &[u8] = if fx.mode == CacheMode::Minimal {
        b"ONE\nthree\n"
    } else {
        b"ONE\ntwo\nthree\n"
    };
    assert_eq!(&back[..], expected);
    fx.vfs.flush_all().await.unwrap();
    assert_eq!(fx.stored("log.txt").await.unwrap(), expected);
}

async fn renames(fx: Fx) {
    fx.put("a.txt", b"A").await;
    fx.mkdir_p("d").await;
    fx.put("d/x", b"X").await;
    fx.put("d/y", b"Y").await;
    let a_ino = fx.resolve("a.txt").await.unwrap().ino;
    fx.rename("a.txt", "d/z.txt", false).await.unwrap();
    assert_eq!(fx.resolve("d/z.txt").await.unwrap().ino, a_ino);
    assert_eq!(errno_of(fx.resolve("a.txt").await), libc::ENOENT);
    fx.rename("d", "e", false).await.unwrap();
    assert_eq!(fx.ls("e").await, ["x", "y", "z.txt"]);
    fx.rename("e/x", "e/y", false).await.unwrap();
    assert_eq!(fx.ls("e").await, ["y", "z.txt"]);
    assert_eq!(fx.get("e/y").await, b"X");
    assert_eq!(
        errno_of(fx.rename("e/y", "e/z.txt", true).await),
        libc::EEXIST
    );
    fx.mkdir_p("f/g").await;
    assert_eq!(errno_of(fx.rename("f", "e", false).await), libc::ENOTEMPTY);
    assert_eq!(errno_of(fx.rename("e", "e/sub", false).await), libc::EINVAL);
    fx.vfs.flush_all().await.unwrap();
    assert_eq!(fx.stored("e/y").await.unwrap(), b"X");
    assert_eq!(fx.stored("e/z.txt").await.unwrap(), b"A");
    assert!(fx.stored("a.txt").await.is_none());
    assert!(fx.stored("d/x").await.is_none());
    assert!(fx.stored("e/x").await.is_none());
    assert_eq!(fx.ls("").await, ["e", "f"]);
}

async fn deletes(fx: Fx) {
    fx.put("f", b"data").await;
    fx.vfs.flush_all().await.unwrap();
    fx.unlink("f").await.unwrap();
    assert_eq!(errno_of(fx.resolve("f").await), libc::ENOENT);
    assert!(fx.stored("f").await.is_none());
    assert_eq!(errno_of(fx.unlink("f").await), libc::ENOENT);

    fx.mkdir_p("d").await;
    fx.put("d/f", b"x").await;
    assert_eq!(errno_of(fx.rmdir("d").await), libc::ENOTEMPTY);
    assert_eq!(errno_of(fx.unlink("d").await), libc::EISDIR);
    assert_eq!(errno_of(fx.rmdir("d/f").await), libc::ENOTDIR);
    fx.unlink("d/f").await.unwrap();
    fx.rmdir("d").await.unwrap();
    assert_eq!(errno_of(fx.resolve("d").await), libc::ENOENT);

    // A file deleted before its upload never reaches the store.
    fx.put("g", b"gone").await;
    fx.unlink("g").await.unwrap();
    fx.vfs.flush_all().await.unwrap();
    assert_eq!(fx.vfs.pending_uploads(), 0);
    assert!(fx.stored("g").await.is_none());
    assert!(fx.ls("").await.is_empty());
}

async fn directory_trees(fx: Fx) {
    fx.mkdir_p("a/b/c").await;
    fx.put("a/1", b"1").await;
    fx.put("a/b/2", b"22").await;
    fx.put("a/b/c/3", b"333").await;
    assert_eq!(fx.ls("").await, ["a"]);
    assert_eq!(fx.ls("a").await, ["1", "b"]);
    assert_eq!(fx.ls("a/b").await, ["2", "c"]);
    assert_eq!(fx.ls("a/b/c").await, ["3"]);
    assert_eq!(fx.resolve("a/b").await.unwrap().kind, FileKind::Dir);
    assert_eq!(errno_of(fx.vfs.mkdir(ROOT_INO, "a").await), libc::EEXIST);
    fx.mkdir_p("many").await;
    for i in 0..300 {
        fx.put(&format!("many/f{i:03}"), b"").await;
    }
    assert_eq!(fx.ls("many").await.len(), 300);
    fx.vfs.flush_all().await.unwrap();
    assert_eq!(fx.stored("a/b/c/3").await.unwrap(), b"333");
    // A fresh view of the same store sees the same tree.
    let other = Fx::over(fx.store.clone(), None, config(fx.mode)).await;
    assert_eq!(other.ls("a/b").await, ["2", "c"]);
    assert_eq!(other.ls("many").await.len(), 300);
}

async fn unicode_names(fx: Fx) {
    let names = ["héllo wörld.txt", "日本語", "emoji 🎉.md", "Ελληνικά"];
    fx.mkdir_p("日本語").await;
    for n in names.iter().filter(|n| **n != "日本語") {
        fx.put(n, n.as_bytes()).await;
        fx.put(&format!("日本語/{n}"), b"inner").await;
    }
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(fx.ls("").await, expected);
    assert_eq!(fx.get("emoji 🎉.md").await, "emoji 🎉.md".as_bytes());
    fx.rename("héllo wörld.txt", "日本語/ファイル.txt", false)
        .await
        .unwrap();
    fx.vfs.flush_all().await.unwrap();
    assert_eq!(
        fx.stored("日本語/ファイル.txt").await.unwrap(),
        "héllo wörld.txt".as_bytes()
    );
}

async fn concurrent_readers(fx: Fx) {
    let data = Arc::new(pattern(9 * MIB + 7));
    fx.put("shared.bin", &data).await;
    fx.vfs.flush_all().await.unwrap();
    let ino = fx.resolve("shared.bin").await.unwrap().ino;
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let (vfs, data) = (fx.vfs.clone(), data.clone());
        tasks.push(tokio::spawn(async move {
            let chunk = 64 * 1024 * (i + 1);
            let fh = vfs.open(ino, libc::O_RDONLY).await.unwrap();
            let mut out = Vec::new();
            loop {
                let d = vfs.read(fh, out.len() as u64, chunk).await.unwrap();
                out.extend_from_slice(&d);
                if d.len() < chunk as usize {
                    break;
                }
            }
            vfs.release(fh).await.unwrap();
            assert!(out == *data, "reader {i} got different bytes");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// A reader opened before a writer put the file in the disk cache reads
/// the writer's bytes from there, and the store's new version after the
/// upload (what it had read ahead of the old one is dropped).
async fn open_readers_follow_writers(fx: Fx) {
    let old = pattern(3 * MIB);
    fx.put("followed.bin", &old).await;
    fx.vfs.flush_all().await.unwrap();
    let ino = fx.resolve("followed.bin").await.unwrap().ino;
    let rfh = fx.vfs.open(ino, libc::O_RDONLY).await.unwrap();
    let first = fx.vfs.read(rfh, 0, 4096).await.unwrap();
    assert_eq!(&first[..], &old[..4096]);
    let Ok(wfh) = fx.vfs.open(ino, libc::O_WRONLY).await else {
        // `off` and `minimal` refuse to change a file in place.
        return fx.vfs.release(rfh).await.unwrap();
    };
    fx.vfs
        .write(wfh, 8192, Bytes::from_static(b"new!"), PID)
        .await
        .unwrap();
    let seen = fx.vfs.read(rfh, 8192, 4).await.unwrap();
    assert_eq!(&seen[..], b"new!", "through the cache");
    fx.vfs.flush(wfh, PID).await.unwrap();
    fx.vfs.release(wfh).await.unwrap();
    fx.vfs.flush_all().await.unwrap();
    let seen = fx.vfs.read(rfh, 8192, 4).await.unwrap();
    assert_eq!(&seen[..], b"new!", "from the store after the upload");
    fx.vfs.release(rfh).await.unwrap();
}

async fn dir_cache_invalidation(fx: Fx) {
    fx.mkdir_p("dir").await;
    fx.put("dir/a", b"a").await;
    assert_eq!(fx.ls("dir").await, ["a"]);
    // Changes made through the mount show at once...
    fx.put("dir/b", b"b").await;
    assert_eq!(fx.ls("dir").await, ["a", "b"]);
    fx.unlink("dir/a").await.unwrap();
    fx.rename("dir/b", "dir/c", false).await.unwrap();
    assert_eq!(fx.ls("dir").await, ["c"]);
    fx.vfs.flush_all().await.unwrap();
    // ...changes made behind its back wait for dir_cache_time.
    fx.store
        .write("dir/external", berth_storage::once(b"e".to_vec()))
        .await
        .unwrap();
    assert_eq!(fx.ls("dir").await, ["c"]);
    assert_eq!(errno_of(fx.resolve("dir/external").await), libc::ENOENT);
    fx.set(|c| c.dir_cache_time = Duration::ZERO);
    assert_eq!(fx.ls("dir").await, ["c", "external"]);
    assert_eq!(fx.get("dir/external").await, b"e");
}

/// Opens `path` read-only and answers whether the kernel may keep its pages.
async fn reopen_keeps_cache(fx: &Fx, path: &str) -> bool {
    let ino = fx.resolve(path).await.unwrap().ino;
    let fh = fx.vfs.open(ino, libc::O_RDONLY).await.unwrap();
    let keep = fx.vfs.keep_kernel_cache(fh);
    fx.vfs.release(fh).await.unwrap();
    keep
}

async fn kernel_cache_kept_while_unchanged(fx: Fx) {
    fx.put("k", b"one").await;
    fx.vfs.flush_all().await.unwrap();
    assert!(!reopen_keeps_cache(&fx, "k").await, "first open");
    assert!(reopen_keeps_cache(&fx, "k").await, "unchanged");
    // A write through the mount drops the pages, even at the same size.
    fx.put("k", b"two").await;
    assert!(!reopen_keeps_cache(&fx, "k").await, "rewritten");
    assert!(reopen_keeps_cache(&fx, "k").await, "unchanged again");
    let ino = fx.resolve("k").await.unwrap().ino;
    fx.vfs.setattr(ino, None, Some(1), None).await.unwrap();
    fx.vfs.flush_all().await.unwrap();
    assert!(!reopen_keeps_cache(&fx, "k").await, "truncated");
    assert!(
        reopen_keeps_cache(&fx, "k").await,
        "unchanged after the truncate"
    );
    // A change behind the mount's back shows once attributes are fetched
    // again (after dir_cache_time), and then the pages go.
    fx.store
        .write("k", berth_storage::once(b"external".to_vec()))
        .await
        .unwrap();
    fx.set(|c| c.dir_cache_time = Duration::ZERO);
    if fx.mode != CacheMode::Full {
        // (full keeps its cached copy's attributes while it holds the file)
        assert!(!reopen_keeps_cache(&fx, "k").await, "changed on the store");
        assert_eq!(fx.get("k").await, b"external");
    }
}

async fn truncate_and_mtime(fx: Fx) {
    fx.put("t.bin", &pattern(5000)).await;
    fx.vfs.flush_all().await.unwrap();
    let ino = fx.resolve("t.bin").await.unwrap().ino;
    let attr = fx.vfs.setattr(ino, None, Some(1000), None).await.unwrap();
    assert_eq!(attr.size, 1000);
    assert_eq!(fx.get("t.bin").await, pattern(1000));
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let attr = fx.vfs.setattr(ino, None, None, Some(when)).await.unwrap();
    assert_eq!(attr.mtime, when);
    fx.vfs.flush_all().await.unwrap();
    assert_eq!(fx.stored("t.bin").await.unwrap(), pattern(1000));
    let st = fx.store.stat("t.bin").await.unwrap();
    assert_eq!(st.modified, Some(when));
    // Truncating to zero.
    fx.vfs.setattr(ino, None, Some(0), None).await.unwrap();
    fx.vfs.flush_all().await.unwrap();
    assert_eq!(fx.stored("t.bin").await.unwrap(), b"");
}

// ---- What one mode promises ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_mode_errnos() {
    let fx = Fx::new(Kind::Memory, CacheMode::Off).await;
    fx.put("f", b"content").await;
    let ino = fx.resolve("f").await.unwrap().ino;
    // Read+write opens and creates.
    assert_eq!(errno_of(fx.vfs.open(ino, libc::O_RDWR).await), libc::EPERM);
    assert_eq!(
        errno_of(
            fx.vfs
                .create(ROOT_INO, "new", libc::O_RDWR | libc::O_CREAT)
                .await
        ),
        libc::EPERM
    );
    // Modifying an existing file without O_TRUNC.
    assert_eq!(
        errno_of(fx.vfs.open(ino, libc::O_WRONLY).await),
        libc::EPERM
    );
    // Seeking backwards (or leaving a gap) while writing.
    let fh = fx
        .vfs
        .open(ino, libc::O_WRONLY | libc::O_TRUNC)
        .await
        .unwrap();
    fx.vfs
        .write(fh, 0, Bytes::from_static(b"abcdef"), PID)
        .await
        .unwrap();
    assert_eq!(
        errno_of(fx.vfs.write(fh, 2, Bytes::from_static(b"x"), PID).await),
        libc::ESPIPE
    );
    assert_eq!(
        errno_of(fx.vfs.write(fh, 100, Bytes::from_static(b"x"), PID).await),
        libc::ESPIPE
    );
    assert_eq!(errno_of(fx.vfs.read(fh, 0, 10).await), libc::EBADF);
    // Truncating a stream anywhere but at its end.
    assert_eq!(
        errno_of(fx.vfs.setattr(ino, Some(fh), Some(2), None).await),
        libc::EPERM
    );
    fx.vfs
        .write(fh, 6, Bytes::from_static(b"gh"), PID)
        .await
        .unwrap();
    fx.vfs.flush(fh, PID).await.unwrap();
    fx.vfs.release(fh).await.unwrap();
    assert_eq!(fx.stored("f").await.unwrap(), b"abcdefgh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_mode_data_reaches_store_on_close() {
    let fx = Fx::new(Kind::Memory, CacheMode::Off).await;
    let (_, fh) = fx.vfs.create(ROOT_INO, "s.bin", WO_CREATE).await.unwrap();
    let data = pattern(3 * MIB);
    for (i, piece) in data.chunks(MIB).enumerate() {
        fx.vfs
            .write(fh, (i * MIB) as u64, Bytes::copy_from_slice(piece), PID)
            .await
            .unwrap();
    }
    // Visible through the mount with its size while written, not yet stored.
    assert_eq!(fx.resolve("s.bin").await.unwrap().size, 3 * MIB as u64);
    assert_eq!(fx.ls("").await, ["s.bin"]);
    assert!(fx.stored("s.bin").await.is_none());
    fx.vfs.flush(fh, PID).await.unwrap();
    assert!(fx.stored("s.bin").await.unwrap() == data);
    fx.vfs.release(fh).await.unwrap();
    assert_eq!(fx.vfs.pending_uploads(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_mode_upload_errors_reach_close() {
    let probe = Probe::new(Arc::new(MemoryStorage::new()), Duration::ZERO);
    probe.fail_writes.store(true, Ordering::SeqCst);
    let fx = Fx::over(probe.clone(), None, config(CacheMode::Off)).await;
    let (_, fh) = fx.vfs.create(ROOT_INO, "q", WO_CREATE).await.unwrap();
    let _ = fx.vfs.write(fh, 0, Bytes::from_static(b"data"), PID).await;
    assert_eq!(errno_of(fx.vfs.flush(fh, PID).await), libc::ENOSPC);
    let _ = fx.vfs.release(fh).await;
    assert_eq!(errno_of(fx.resolve("q").await), libc::ENOENT);
}

/// A store answering after 30 ms, holding 64 MiB in `seq.bin`.
async fn slow_store_with_a_large_file() -> (Arc<Probe>, Vec<u8>) {
    let probe = Probe::new(Arc::new(MemoryStorage::new()), Duration::from_millis(30));
    let data = pattern(64 * MIB);
    probe
        .inner
        .write("seq.bin", berth_storage::once(data.clone()))
        .await
        .unwrap();
    (probe, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_mode_reads_ahead() {
    let (probe, data) = slow_store_with_a_large_file().await;
    let fx = Fx::over(probe.clone(), None, config(CacheMode::Off)).await;
    let back = fx.get_with("seq.bin", 128 * 1024).await;
    assert!(back == data);
    let max = probe.max_inflight.load(Ordering::SeqCst);
    let reads = probe.reads.load(Ordering::SeqCst);
    assert!(
        max >= 3,
        "sequential reads kept {max} ranged reads in flight"
    );
    // Parts grow: far fewer ranged reads than 128 KiB requests (512).
    assert!(reads <= 16, "{reads} ranged reads for 64 MiB");
}

/// Reads the file of [`slow_store_with_a_large_file`] in 1 MiB requests
/// slightly out of order, as the kernel's parallel read-ahead sends them
/// (0, 2, 1, 4, 3, ... MiB); answers the store's probe.
async fn read_reordered(mode: CacheMode) -> Arc<Probe> {
    let (probe, data) = slow_store_with_a_large_file().await;
    let fx = Fx::over(probe.clone(), None, config(mode)).await;
    let ino = fx.resolve("seq.bin").await.unwrap().ino;
    let fh = fx.vfs.open(ino, libc::O_RDONLY).await.unwrap();
    let mut order: Vec<usize> = (0..64).collect();
    for pair in order[1..].chunks_mut(2) {
        pair.reverse();
    }
    for i in order {
        let got = fx.vfs.read(fh, (i * MIB) as u64, MIB as u32).await.unwrap();
        assert!(got == data[i * MIB..(i + 1) * MIB], "MiB {i}");
    }
    fx.vfs.release(fh).await.unwrap();
    probe
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_mode_read_ahead_survives_reordered_requests() {
    let probe = read_reordered(CacheMode::Off).await;
    let reads = probe.reads.load(Ordering::SeqCst);
    // Parts keep growing: a restart at every reordered request would make
    // one small ranged read per MiB.
    assert!(reads <= 16, "{reads} ranged reads for 64 MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mode_read_ahead_survives_reordered_requests() {
    let probe = read_reordered(CacheMode::Full).await;
    // Chunks are fetched ahead while the reader consumes earlier ones.
    let max = probe.max_inflight.load(Ordering::SeqCst);
    assert!(max >= 3, "{max} chunk downloads in flight at most");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_mode_read_write_through_cache() {
    let fx = Fx::new(Kind::Local, CacheMode::Minimal).await;
    fx.put("db", &pattern(10_000)).await;
    assert_eq!(fx.stored("db").await.unwrap(), pattern(10_000));
    let ino = fx.resolve("db").await.unwrap().ino;
    let fh = fx.vfs.open(ino, libc::O_RDWR).await.unwrap();
    fx.vfs
        .write(fh, 5000, Bytes::from_static(b"PATCH"), PID)
        .await
        .unwrap();
    assert_eq!(
        &fx.vfs.read(fh, 4998, 9).await.unwrap()[..],
        &[&pattern(5000)[4998..], b"PATCH", &pattern(5007)[5005..]].concat()[..]
    );
    // Uploaded when closed, without waiting for write_back.
    fx.vfs.flush(fh, PID).await.unwrap();
    fx.vfs.release(fh).await.unwrap();
    let mut expected = pattern(10_000);
    expected[5000..5005].copy_from_slice(b"PATCH");
    assert_eq!(fx.stored("db").await.unwrap(), expected);
    assert_eq!(fx.vfs.pending_uploads(), 0);
    assert_eq!(fx.vfs.cache_used(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_mode_write_back_delay() {
    let fx = Fx::new(Kind::Memory, CacheMode::Writes).await;
    fx.set(|c| c.write_back = Duration::from_millis(800));
    fx.put("later.txt", b"eventually").await;
    assert_eq!(fx.vfs.pending_uploads(), 1);
    assert!(fx.stored("later.txt").await.is_none());
    // Reads come from the cache meanwhile.
    assert_eq!(fx.get("later.txt").await, b"eventually");
    assert_eq!(fx.ls("").await, ["later.txt"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fx.stored("later.txt").await.is_none());
    wait_for("the upload", Duration::from_secs(5), || async {
        fx.stored("later.txt").await.is_some()
    })
    .await;
    assert_eq!(fx.stored("later.txt").await.unwrap(), b"eventually");
    wait_for("no pending", Duration::from_secs(2), || async {
        fx.vfs.pending_uploads() == 0
    })
    .await;
    // Writes mode keeps nothing clean in the cache.
    assert_eq!(fx.vfs.cache_used(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_mode_reopen_postpones_upload() {
    let fx = Fx::new(Kind::Memory, CacheMode::Writes).await;
    fx.set(|c| c.write_back = Duration::from_millis(600));
    fx.put("x", b"1").await;
    // Rewritten while waiting: the delay restarts from the last close, and
    // only the last content is uploaded.
    tokio::time::sleep(Duration::from_millis(300)).await;
    fx.put("x", b"22").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        fx.stored("x").await.is_none(),
        "uploaded at the first due time"
    );
    wait_for("the upload", Duration::from_secs(5), || async {
        fx.stored("x").await.is_some()
    })
    .await;
    assert_eq!(fx.stored("x").await.unwrap(), b"22");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_mode_flush_all_uploads_now() {
    let fx = Fx::new(Kind::Local, CacheMode::Writes).await;
    fx.set(|c| c.write_back = Duration::from_secs(3600));
    fx.mkdir_p("q").await;
    for i in 0..3 {
        fx.put(&format!("q/{i}"), format!("file {i}").as_bytes())
            .await;
    }
    assert_eq!(fx.vfs.pending_uploads(), 3);
    assert!(fx.stored("q/0").await.is_none());
    fx.vfs.flush_all().await.unwrap();
    assert_eq!(fx.vfs.pending_uploads(), 0);
    for i in 0..3 {
        assert_eq!(
            fx.stored(&format!("q/{i}")).await.unwrap(),
            format!("file {i}").as_bytes()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_mode_failed_uploads_stay_queued() {
    let probe = Probe::new(Arc::new(MemoryStorage::new()), Duration::ZERO);
    let mut cfg = config(CacheMode::Writes);
    cfg.write_back = Duration::from_secs(3600);
    let fx = Fx::over(probe.clone(), None, cfg).await;
    fx.put("w", b"keep me").await;
    probe.fail_writes.store(true, Ordering::SeqCst);
    assert_eq!(errno_of(fx.vfs.flush_all().await), libc::ENOSPC);
    assert_eq!(fx.vfs.pending_uploads(), 1);
    assert_eq!(fx.get("w").await, b"keep me");
    probe.fail_writes.store(false, Ordering::SeqCst);
    fx.vfs.flush_all().await.unwrap();
    assert_eq!(fx.stored("w").await.unwrap(), b"keep me");
}

/// A file written from its start goes past the page cache after 4 MiB;
/// anything else on the file (a read, a write elsewhere, a truncate) must
/// first see every byte written so far.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_mode_sequential_writes_then_anything_else() {
    let fx = Fx::new(Kind::Local, CacheMode::Writes).await;
    let mut data = pattern(13 * MIB + 777);
    let (_, fh) = fx.vfs.create(ROOT_INO, "f", WO_CREATE).await.unwrap();
    let mut at = 0;
    // Pieces that do not line up with the 4 MiB gathering.
    for piece in data[..6 * MIB + 5].chunks(300_001) {
        fx.vfs
            .write(fh, at as u64, Bytes::copy_from_slice(piece), PID)
            .await
            .unwrap();
        at += piece.len();
    }
    let ino = fx.resolve("f").await.unwrap().ino;
    let rd = fx.vfs.open(ino, libc::O_RDONLY).await.unwrap();
    let back = fx
        .vfs
        .read(rd, 5 * MIB as u64, 2 * MIB as u32)
        .await
        .unwrap();
    assert!(back[..] == data[5 * MIB..6 * MIB + 5], "read while writing");
    for piece in data[at..].chunks(MIB) {
        fx.vfs
            .write(fh, at as u64, Bytes::copy_from_slice(piece), PID)
            .await
            .unwrap();
        at += piece.len();
    }
    fx.vfs
        .write(fh, 100, Bytes::from_static(b"patched"), PID)
        .await
        .unwrap();
    data[100..107].copy_from_slice(b"patched");
    let all = fx.vfs.read(rd, 0, data.len() as u32 + 10).await.unwrap();
    assert!(all[..] == data[..], "read after a write elsewhere");
    fx.vfs.release(rd).await.unwrap();
    fx.vfs.flush(fh, PID).await.unwrap();
    fx.vfs.release(fh).await.unwrap();
    fx.vfs.flush_all().await.unwrap();
    assert!(fx.stored("f").await.unwrap() == data, "stored differs");

    // Rewritten from the start, then cut short while gathering.
    let (_, fh) = fx.vfs.create(ROOT_INO, "f", WO_CREATE).await.unwrap();
    for (i, piece) in data[..9 * MIB].chunks(MIB).enumerate() {
        fx.vfs
            .write(fh, (i * MIB) as u64, Bytes::copy_from_slice(piece), PID)
            .await
            .unwrap();
    }
    fx.vfs
        .setattr(ino, Some(fh), Some(7 * MIB as u64 + 3), None)
        .await
        .unwrap();
    fx.vfs.flush(fh, PID).await.unwrap();
    fx.vfs.release(fh).await.unwrap();
    fx.vfs.flush_all().await.unwrap();
    assert!(
        fx.stored("f").await.unwrap() == data[..7 * MIB + 3],
        "truncated"
    );
}

#[test]
fn crash_recovery_resumes_uploads() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = config(CacheMode::Writes);
    cfg.write_back = Duration::from_secs(3600);

    // First run: files are closed, the uploads wait, then the process "dies"
    // (its runtime goes away without flush_all).
    let first = tokio::runtime::Runtime::new().unwrap();
    first.block_on(async {
        let fx = Fx::in_dir(store.clone(), cfg, cache.path());
        fx.mkdir_p("docs").await;
        fx.put("docs/report.txt", b"quarterly numbers").await;
        fx.put("empty.lock", b"").await;
        // Past 4 MiB, unaligned: closed with bytes gathered for O_DIRECT.
        fx.put("top.bin", &pattern(9 * MIB + 123)).await;
        fx.rename("top.bin", "docs/moved.bin", false).await.unwrap();
        // fsync makes an open file's data durable in the cache too.
        let (_, fh) = fx
            .vfs
            .create(ROOT_INO, "synced.txt", WO_CREATE)
            .await
            .unwrap();
        fx.vfs
            .write(fh, 0, Bytes::from_static(b"fsynced, never closed"), PID)
            .await
            .unwrap();
        fx.vfs.fsync(fh).await.unwrap();
        assert_eq!(fx.vfs.pending_uploads(), 4);
        assert!(fx.stored("docs/report.txt").await.is_none());
    });
    first.shutdown_background();

    // Next start on the same cache dir: the uploads resume by themselves.
    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        let fx = Fx::in_dir(store.clone(), cfg, cache.path());
        // Visible through the mount before the upload completes.
        assert_eq!(fx.ls("docs").await.len(), 2);
        wait_for("recovered uploads", Duration::from_secs(10), || async {
            fx.vfs.pending_uploads() == 0
        })
        .await;
        assert_eq!(
            fx.stored("docs/report.txt").await.unwrap(),
            b"quarterly numbers"
        );
        assert!(fx.stored("docs/moved.bin").await.unwrap() == pattern(9 * MIB + 123));
        assert!(fx.stored("top.bin").await.is_none());
        assert_eq!(fx.stored("empty.lock").await.unwrap(), b"");
        assert_eq!(
            fx.stored("synced.txt").await.unwrap(),
            b"fsynced, never closed"
        );
    });
    second.shutdown_background();
    // Nothing is left to resume after that.
    let third = tokio::runtime::Runtime::new().unwrap();
    third.block_on(async {
        let fx = Fx::in_dir(store.clone(), cfg, cache.path());
        assert_eq!(fx.vfs.pending_uploads(), 0);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mode_sparse_reads() {
    let fx = Fx::new(Kind::Memory, CacheMode::Full).await;
    let data = pattern(20 * MIB);
    fx.store
        .write("sparse.bin", berth_storage::once(data.clone()))
        .await
        .unwrap();
    let ino = fx.resolve("sparse.bin").await.unwrap().ino;
    let fh = fx.vfs.open(ino, libc::O_RDONLY).await.unwrap();
    let got = fx.vfs.read(fh, 10 * MIB as u64 + 5, 4096).await.unwrap();
    assert_eq!(&got[..], &data[10 * MIB + 5..10 * MIB + 5 + 4096]);
    let used = fx.vfs.cache_used();
    assert!(used > 0 && used <= 8 * MIB as u64, "cached {used} bytes");
    fx.vfs.release(fh).await.unwrap();
    // Cached data is reused by the next open.
    let fh = fx.vfs.open(ino, libc::O_RDONLY).await.unwrap();
    assert_eq!(fx.vfs.cache_used(), used);
    let _ = fx.vfs.read(fh, 10 * MIB as u64, 4096).await.unwrap();
    assert_eq!(fx.vfs.cache_used(), used);
    fx.vfs.release(fh).await.unwrap();
    // A change on the store invalidates it (after dir_cache_time).
    fx.store
        .write("sparse.bin", berth_storage::once(b"new".to_vec()))
        .await
        .unwrap();
    fx.set(|c| c.dir_cache_time = Duration::ZERO);
    assert_eq!(fx.get("sparse.bin").await, b"new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mode_eviction_keeps_pending_uploads() {
    let fx = Fx::new(Kind::Local, CacheMode::Full).await;
    fx.set(|c| {
        c.write_back = Duration::from_secs(3600);
        c.cache_max_size = 10 * MIB as u64;
    });
    // A pending upload bigger than half the cache.
    let pending = pattern(6 * MIB);
    fx.put("pending.bin", &pending).await;
    // Read five 4 MiB files: far more than the cache holds.
    for i in 0..5 {
        fx.store
            .write(&format!("r{i}"), berth_storage::once(pattern(4 * MIB + i)))
            .await
            .unwrap();
        assert!(fx.get(&format!("r{i}")).await == pattern(4 * MIB + i));
    }
    wait_for("eviction", Duration::from_secs(5), || async {
        fx.vfs.cache_used() <= 10 * MIB as u64
    })
    .await;
    assert_eq!(fx.vfs.pending_uploads(), 1);
    assert!(fx.get("pending.bin").await == pending);
    // Even a cache too small for the pending file keeps it.
    fx.set(|c| c.cache_max_size = MIB as u64);
    wait_for("eviction", Duration::from_secs(5), || async {
        fx.vfs.cache_used() == 6 * MIB as u64
    })
    .await;
    assert_eq!(fx.vfs.pending_uploads(), 1);
    fx.vfs.flush_all().await.unwrap();
    assert!(fx.stored("pending.bin").await.unwrap() == pending);
    // Once uploaded it may go.
    wait_for("eviction", Duration::from_secs(5), || async {
        fx.vfs.cache_used() <= MIB as u64
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mode_evicts_by_age() {
    let fx = Fx::new(Kind::Memory, CacheMode::Full).await;
    fx.set(|c| c.cache_max_age = Duration::from_millis(300));
    fx.store
        .write("old", berth_storage::once(pattern(MIB)))
        .await
        .unwrap();
    assert!(fx.get("old").await == pattern(MIB));
    assert_eq!(fx.vfs.cache_used(), MIB as u64);
    wait_for("age eviction", Duration::from_secs(5), || async {
        fx.vfs.cache_used() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_config_applies_live() {
    let fx = Fx::new(Kind::Memory, CacheMode::Off).await;
    fx.put("f", b"abc").await;
    let ino = fx.resolve("f").await.unwrap().ino;
    assert_eq!(errno_of(fx.vfs.open(ino, libc::O_RDWR).await), libc::EPERM);
    fx.set(|c| {
        c.cache_mode = CacheMode::Writes;
        c.write_back = Duration::from_secs(3600);
    });
    let fh = fx.vfs.open(ino, libc::O_RDWR).await.unwrap();
    fx.vfs
        .write(fh, 3, Bytes::from_static(b"def"), PID)
        .await
        .unwrap();
    fx.vfs.flush(fh, PID).await.unwrap();
    fx.vfs.release(fh).await.unwrap();
    assert_eq!(fx.vfs.pending_uploads(), 1);
    // A shorter write-back applies to what already waits.
    assert!(fx.stored("f").await.unwrap() == b"abc");
    fx.set(|c| c.write_back = Duration::from_millis(50));
    wait_for("the upload", Duration::from_secs(5), || async {
        fx.vfs.pending_uploads() == 0
    })
    .await;
    assert_eq!(fx.stored("f").await.unwrap(), b"abcdef");
    // Switching back to off: new opens stream again.
    fx.set(|c| c.cache_mode = CacheMode::Off);
    assert_eq!(errno_of(fx.vfs.open(ino, libc::O_RDWR).await), libc::EPERM);
    assert_eq!(fx.vfs.ttl(), Duration::from_secs(300));
    fx.set(|c| c.dir_cache_time = Duration::from_secs(7));
    assert_eq!(fx.vfs.ttl(), Duration::from_secs(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stable_inode_numbers() {
    let fx = Fx::new(Kind::Memory, CacheMode::Writes).await;
    fx.mkdir_p("a").await;
    fx.put("a/f", b"1").await;
    let first = fx.resolve("a/f").await.unwrap().ino;
    fx.put("a/f", b"22").await;
    assert_eq!(fx.resolve("a/f").await.unwrap().ino, first);
    let listed = {
        let ino = fx.resolve("a").await.unwrap().ino;
        let fh = fx.vfs.opendir(ino).await.unwrap();
        let mut found = 0;
        fx.vfs
            .readdir(fh, 0, true, |e, _| {
                if e.name == "f" {
                    found = e.attr.ino;
                }
                false
            })
            .unwrap();
        fx.vfs.releasedir(fh, ino).unwrap();
        found
    };
    assert_eq!(listed, first);
    // Forgotten once the kernel drops it: a later lookup may renumber.
    fx.vfs.flush_all().await.unwrap();
    let before = fx.vfs.known_inodes();
    fx.vfs.forget(first, 1_000);
    assert!(fx.vfs.known_inodes() < before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_directories() {
    // A store without real directories: prefixes are directories, and
    // directories made through the mount stay visible while known.
    let probe = Probe::new(Arc::new(MemoryStorage::new()), Duration::ZERO);
    probe.no_dirs.store(true, Ordering::SeqCst);
    let fx = Fx::over(probe.clone(), None, config(CacheMode::Writes)).await;
    fx.mkdir_p("empty/inner").await;
    assert_eq!(fx.ls("").await, ["empty"]);
    assert_eq!(fx.ls("empty").await, ["inner"]);
    assert_eq!(probe.mkdirs.load(Ordering::SeqCst), 0);
    fx.put("empty/inner/file", b"f").await;
    fx.vfs.flush_all().await.unwrap();
    assert_eq!(fx.stored("empty/inner/file").await.unwrap(), b"f");
    fx.unlink("empty/inner/file").await.unwrap();
    fx.rmdir("empty/inner").await.unwrap();
    assert!(fx.ls("empty").await.is_empty());
    fx.rmdir("empty").await.unwrap();
    assert!(fx.ls("").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statfs_reports_space() {
    let fx = Fx::new(Kind::Local, CacheMode::Off).await;
    let s = fx.vfs.statfs().await.unwrap();
    assert!(s.blocks > 0 && s.bfree <= s.blocks && s.bsize == 4096);
    let fx = Fx::new(Kind::Memory, CacheMode::Off).await;
    assert_eq!(fx.vfs.statfs().await.unwrap().blocks, (1u64 << 50) / 4096);
}

// ---- A store wrapper that counts, delays and fails -------------------------

#[derive(Debug)]
struct Probe {
    inner: Arc<dyn Storage>,
    delay: Duration,
    inflight: AtomicUsize,
    max_inflight: AtomicUsize,
    reads: AtomicUsize,
    mkdirs: AtomicUsize,
    fail_writes: AtomicBool,
    no_dirs: AtomicBool,
}

impl Probe {
    fn new(inner: Arc<dyn Storage>, delay: Duration) -> Arc<Probe> {
        Arc::new(Probe {
            inner,
            delay,
            inflight: AtomicUsize::new(0),
            max_inflight: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            mkdirs: AtomicUsize::new(0),
            fail_writes: AtomicBool::new(false),
            no_dirs: AtomicBool::new(false),
        })
    }
}

#[async_trait]
impl Storage for Probe {
    fn capability(&self) -> Capability {
        Capability {
            directories: !self.no_dirs.load(Ordering::SeqCst),
            ..self.inner.capability()
        }
    }
    async fn stat(&self, path: &str) -> berth_storage::Result<Entry> {
        let e = self.inner.stat(path).await?;
        if self.no_dirs.load(Ordering::SeqCst)
            && e.kind == berth_storage::EntryKind::Dir
            && !path.is_empty()
        {
            // Object stores only know prefixes with objects under them.
            let page = self.inner.list(path, None, 1).await?;
            if page.entries.is_empty() {
                return Err(StorageError::not_found(path));
            }
        }
        Ok(e)
    }
    async fn list(
        &self,
        dir: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> berth_storage::Result<ListPage> {
        self.inner.list(dir, cursor, limit).await
    }
    async fn read(
        &self,
        path: &str,
        range: Option<(u64, u64)>,
    ) -> berth_storage::Result<ByteStream> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let now = self.inflight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_inflight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let r = self.inner.read(path, range).await;
        self.inflight.fetch_sub(1, Ordering::SeqCst);
        r
    }
    async fn write(&self, path: &str, body: ByteStream) -> berth_storage::Result<Entry> {
        if self.fail_writes.load(Ordering::SeqCst) {
            drop(body);
            return Err(StorageError::new(ErrorKind::Quota, "quota exceeded"));
        }
        self.inner.write(path, body).await
    }
    async fn delete(&self, path: &str) -> berth_storage::Result<()> {
        self.inner.delete(path).await
    }
    async fn copy(&self, from: &str, to: &str) -> berth_storage::Result<()> {
        self.inner.copy(from, to).await
    }
    async fn rename(&self, from: &str, to: &str) -> berth_storage::Result<()> {
        self.inner.rename(from, to).await
    }
    async fn mkdir(&self, path: &str) -> berth_storage::Result<()> {
        self.mkdirs.fetch_add(1, Ordering::SeqCst);
        self.inner.mkdir(path).await
    }
    async fn rmdir(&self, path: &str) -> berth_storage::Result<()> {
        self.inner.rmdir(path).await
    }
    async fn usage(&self) -> berth_storage::Result<Usage> {
        self.inner.usage().await
    }
    async fn set_modified(&self, path: &str, time: SystemTime) -> berth_storage::Result<()> {
        self.inner.set_modified(path, time).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_fast_paths() {
    // The adapter answers cached reads and writes on its own thread.
    let fx = Fx::new(Kind::Memory, CacheMode::Full).await;
    fx.store
        .write("c.bin", berth_storage::once(pattern(3 * MIB)))
        .await
        .unwrap();
    let ino = fx.resolve("c.bin").await.unwrap().ino;
    let fh = fx.vfs.open(ino, libc::O_RDWR).await.unwrap();
    assert!(fx.vfs.read_cached(fh, 0, 4096).is_none(), "not cached yet");
    let _ = fx.vfs.read(fh, 0, 4096).await.unwrap();
    let got = fx.vfs.read_cached(fh, 100, 4096).unwrap().unwrap();
    assert_eq!(&got[..], &pattern(4196)[100..]);
    assert_eq!(fx.vfs.write_cached(fh, 10, b"xyz").unwrap().unwrap(), 3);
    assert_eq!(&fx.vfs.read_cached(fh, 10, 3).unwrap().unwrap()[..], b"xyz");
    fx.vfs.flush(fh, PID).await.unwrap();
    fx.vfs.release(fh).await.unwrap();
    fx.vfs.flush_all().await.unwrap();
    let mut expected = pattern(3 * MIB);
    expected[10..13].copy_from_slice(b"xyz");
    assert!(fx.stored("c.bin").await.unwrap() == expected);

    let fx = Fx::new(Kind::Memory, CacheMode::Off).await;
    let (_, fh) = fx.vfs.create(ROOT_INO, "s", WO_CREATE).await.unwrap();
    assert!(
        fx.vfs.write_cached(fh, 0, b"a").is_none(),
        "streams are async"
    );
    fx.vfs.release(fh).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_vfs_leaves_uploads_for_the_next_one() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = config(CacheMode::Writes);
    cfg.write_back = Duration::from_secs(3600);
    let fx = Fx::in_dir(store.clone(), cfg, cache.path());
    fx.put("kept.txt", b"not lost").await;
    assert_eq!(fx.vfs.pending_uploads(), 1);
    drop(fx);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(store.stat("kept.txt").await.is_err());
    let fx = Fx::in_dir(store.clone(), cfg, cache.path());
    wait_for("the resumed upload", Duration::from_secs(10), || async {
        fx.vfs.pending_uploads() == 0
    })
    .await;
    assert_eq!(fx.stored("kept.txt").await.unwrap(), b"not lost");
}
