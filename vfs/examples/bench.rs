//! Throughput figures of a FUSE mount over local storage against the raw
//! disk: sequential write and read of a large file, a cold `ls -l` of many
//! files, and many creates. Prints figures; asserts nothing.
//!
//! ```text
//! cargo run --release -p berth-vfs --example bench
//! BENCH_SIZE_MIB=1024 BENCH_FILES=10000 BENCH_CREATES=1000 \
//! BENCH_MODES=off,writes BENCH_DIR=/var/tmp cargo run --release -p berth-vfs --example bench
//! ```
//!
//! Needs `/dev/fuse` and root (or `fusermount3`).

use berth_storage::drivers::local::LocalOptions;
use berth_storage::drivers::{DriverEnv, LocalStorage, MemoryStorage};
use berth_storage::Storage;
use berth_vfs::{mount, CacheMode, MountOptions, Vfs, VfsConfig};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Lets the disk settle (dirty pages of the previous step written back), so
/// every figure starts from the same state.
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

fn write_file(path: &Path, mib: usize, sync: bool) -> Duration {
    let buf: Vec<u8> = (0..MIB).map(|i| (i * 31 % 251) as u8).collect();
    settle();
    let start = Instant::now();
    let mut f = File::create(path).unwrap();
    for _ in 0..mib {
        f.write_all(&buf).unwrap();
    }
    if sync {
        f.sync_all().unwrap();
    }
    drop(f);
    start.elapsed()
}

fn read_file(path: &Path) -> (Duration, u64) {
    let mut buf = vec![0u8; MIB];
    settle();
    let start = Instant::now();
    let mut f = File::open(path).unwrap();
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    (start.elapsed(), total)
}

fn ls_l(dir: &Path) -> Duration {
    settle();
    let start = Instant::now();
    let status = Command::new("ls")
        .arg("-l")
        .arg(dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    start.elapsed()
}

fn creates(dir: &Path, n: usize) -> Duration {
    fs::create_dir_all(dir).unwrap();
    settle();
    let start = Instant::now();
    for i in 0..n {
        File::create(dir.join(format!("new-{i:05}"))).unwrap();
    }
    start.elapsed()
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

struct Mount {
    handle: Option<berth_vfs::MountHandle>,
    vfs: Arc<Vfs>,
    dir: PathBuf,
}

impl Mount {
    fn new(
        rt: &tokio::runtime::Runtime,
        store: Arc<dyn Storage>,
        mode: CacheMode,
        work: &Path,
        tag: &str,
    ) -> Mount {
        let dir = work.join(format!("mnt-{tag}"));
        let cache = work.join(format!("cache-{tag}"));
        fs::create_dir_all(&dir).unwrap();
        let config = VfsConfig {
            cache_mode: mode,
            ..VfsConfig::default()
        };
        let vfs = Vfs::new(store, config, cache, rt.handle().clone()).unwrap();
        let handle = mount(vfs.clone(), &dir, MountOptions::default()).unwrap();
        Mount {
            handle: Some(handle),
            vfs,
            dir,
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.unmount().unwrap();
        }
    }
}

fn main() {
    if fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_err()
    {
        eprintln!("bench: /dev/fuse is unavailable; nothing to measure");
        return;
    }
    let size_mib = env_num("BENCH_SIZE_MIB", 1024);
    let files = env_num("BENCH_FILES", 10_000);
    let ncreates = env_num("BENCH_CREATES", 1_000);
    let modes: Vec<CacheMode> = std::env::var("BENCH_MODES")
        .unwrap_or_else(|_| "off,writes".into())
        .split(',')
        .filter_map(CacheMode::parse)
        .collect();
    let base =
        std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let work = tempfile::tempdir_in(base).unwrap();
    let root = work.path().join("store");
    fs::create_dir_all(root.join("ls")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let env = DriverEnv {
        local_roots: vec![root.clone()],
        host_credentials: false,
    };
    let local = rt
        .block_on(LocalStorage::new(
            root.to_str().unwrap(),
            LocalOptions::default(),
            &env,
        ))
        .unwrap();
    // BENCH_STORE=memory measures the FUSE path alone (the big file and the
    // listing are copied into a memory store).
    let memory = std::env::var("BENCH_STORE").is_ok_and(|v| v == "memory");
    let bytes = (size_mib * MIB) as u64;
    println!(
        "berth-vfs bench: {size_mib} MiB file, ls -l of {files} files, {ncreates} creates, in {}",
        work.path().display()
    );
    println!(
        "store: {}; page cache warm, disk synced before each figure; the local driver fsyncs each file it writes\n",
        if memory { "memory" } else { "local" }
    );

    // Raw disk.
    let raw_file = root.join("seq.bin");
    let w_raw = write_file(&raw_file, size_mib, false);
    let w_raw_sync = write_file(&raw_file, size_mib, true);
    let (r_raw, n) = read_file(&raw_file);
    assert_eq!(n, bytes);
    for i in 0..files {
        File::create(root.join("ls").join(format!("f-{i:05}"))).unwrap();
    }
    let ls_raw = ls_l(&root.join("ls"));
    let store: Arc<dyn Storage> = if memory {
        let mem = Arc::new(MemoryStorage::new());
        rt.block_on(async {
            let data = fs::read(&raw_file).unwrap();
            mem.write("seq.bin", berth_storage::once(data))
                .await
                .unwrap();
            for i in 0..files {
                mem.write(&format!("ls/f-{i:05}"), berth_storage::once(Vec::new()))
                    .await
                    .unwrap();
            }
        });
        mem
    } else {
        Arc::new(local)
    };
    let c_raw = creates(&work.path().join("raw-creates"), ncreates);
    println!(
        "{:<26}{:>12}{:>12}{:>12}{:>12}",
        "", "write", "read", "ls -l", "creates"
    );
    println!(
        "{:<26}{:>7.0} MiB/s{:>7.0} MiB/s{:>10.3} s{:>10.3} s",
        "raw disk",
        mib_s(bytes, w_raw),
        mib_s(bytes, r_raw),
        ls_raw.as_secs_f64(),
        c_raw.as_secs_f64()
    );
    println!(
        "{:<26}{:>7.0} MiB/s",
        "raw disk + fsync",
        mib_s(bytes, w_raw_sync)
    );

    for mode in modes {
        let tag = mode.as_str();
        // Cold ls -l and reads: a fresh mount.
        let m = Mount::new(&rt, store.clone(), mode, work.path(), tag);
        let ls = ls_l(&m.dir.join("ls"));
        let (r, n) = read_file(&m.dir.join("seq.bin"));
        assert_eq!(n, bytes);
        let w = write_file(&m.dir.join(format!("written-{tag}.bin")), size_mib, false);
        let start = Instant::now();
        rt.block_on(m.vfs.flush_all()).unwrap();
        let uploaded = w + start.elapsed();
        let c = creates(&m.dir.join(format!("creates-{tag}")), ncreates);
        rt.block_on(m.vfs.flush_all()).unwrap();
        drop(m);
        println!(
            "{:<26}{:>7.0} MiB/s{:>7.0} MiB/s{:>10.3} s{:>10.3} s",
            format!("mount, cache {tag}"),
            mib_s(bytes, w),
            mib_s(bytes, r),
            ls.as_secs_f64(),
            c.as_secs_f64()
        );
        if mode != CacheMode::Off && mode != CacheMode::Minimal {
            println!(
                "{:<26}{:>7.0} MiB/s  (close + upload to the store)",
                format!("  write incl. upload"),
                mib_s(bytes, uploaded)
            );
        }
        let _ = rt.block_on(store.delete(&format!("written-{tag}.bin")));
    }
}
