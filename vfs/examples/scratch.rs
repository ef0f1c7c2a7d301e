use async_trait::async_trait;
use berth_storage::*;
use berth_vfs::*;
use futures::StreamExt;
use std::io::Write;
use std::sync::Arc;
use std::time::*;

#[derive(Debug)]
struct Null;
#[async_trait]
impl Storage for Null {
    fn capability(&self) -> Capability {
        Capability {
            directories: true,
            ..Default::default()
        }
    }
    async fn stat(&self, path: &str) -> Result<Entry> {
        if path.is_empty() {
            Ok(Entry {
                path: String::new(),
                kind: EntryKind::Dir,
                size: 0,
                modified: None,
            })
        } else {
            Err(StorageError::not_found(path))
        }
    }
    async fn list(&self, _: &str, _: Option<String>, _: usize) -> Result<ListPage> {
        Ok(ListPage::default())
    }
    async fn read(&self, p: &str, _: Option<(u64, u64)>) -> Result<ByteStream> {
        Err(StorageError::not_found(p))
    }
    async fn write(&self, path: &str, mut body: ByteStream) -> Result<Entry> {
        let mut n = 0;
        while let Some(c) = body.next().await {
            n += c?.len() as u64;
        }
        Ok(Entry {
            path: path.into(),
            kind: EntryKind::File,
            size: n,
            modified: Some(SystemTime::now()),
        })
    }
    async fn delete(&self, _: &str) -> Result<()> {
        Ok(())
    }
    async fn copy(&self, _: &str, _: &str) -> Result<()> {
        Ok(())
    }
    async fn rename(&self, _: &str, _: &str) -> Result<()> {
        Ok(())
    }
    async fn mkdir(&self, _: &str) -> Result<()> {
        Ok(())
    }
    async fn rmdir(&self, _: &str) -> Result<()> {
        Ok(())
    }
    async fn usage(&self) -> Result<Usage> {
        Ok(Usage::default())
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let cache = tempfile::tempdir_in("/var/tmp").unwrap();
    let vfs = Vfs::new(
        Arc::new(Null),
        VfsConfig {
            cache_mode: CacheMode::Off,
            ..Default::default()
        },
        cache.path().into(),
        rt.handle().clone(),
    )
    .unwrap();
    let h = mount(vfs, dir.path(), MountOptions::default()).unwrap();
    let buf = vec![7u8; 1 << 20];
    for _ in 0..3 {
        let t = Instant::now();
        let mut f = std::fs::File::create(dir.path().join("x")).unwrap();
        for _ in 0..1024 {
            f.write_all(&buf).unwrap();
        }
        drop(f);
        println!(
            "null write: {:.0} MiB/s",
            1024.0 / t.elapsed().as_secs_f64()
        );
    }
    h.unmount().unwrap();
    let root = tempfile::tempdir_in("/var/tmp").unwrap();
    let env = berth_storage::drivers::DriverEnv {
        local_roots: vec![root.path().into()],
    };
    let local = rt
        .block_on(berth_storage::drivers::LocalStorage::new(
            root.path().to_str().unwrap(),
            Default::default(),
            &env,
        ))
        .unwrap();
    for _ in 0..2 {
        let t = Instant::now();
        let one = bytes::Bytes::from(vec![7u8; 1 << 20]);
        let chunks: Vec<Result<bytes::Bytes>> = (0..1024).map(|_| Ok(one.clone())).collect();
        rt.block_on(local.write("direct.bin", futures::stream::iter(chunks).boxed()))
            .unwrap();
        println!(
            "local store write (incl. fsync): {:.0} MiB/s",
            1024.0 / t.elapsed().as_secs_f64()
        );
    }
    rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        let chunk = bytes::Bytes::from(vec![7u8; 1 << 20]);
        let t = Instant::now();
        let mut f = tokio::fs::File::create(root.path().join("tokio.bin"))
            .await
            .unwrap();
        for _ in 0..1024 {
            f.write_all(&chunk).await.unwrap();
        }
        f.flush().await.unwrap();
        let w = t.elapsed();
        f.sync_all().await.unwrap();
        println!(
            "tokio fs write: {:.0} MiB/s, then fsync {:.2} s",
            1024.0 / w.as_secs_f64(),
            (t.elapsed() - w).as_secs_f64()
        );
        let t = Instant::now();
        let mut f = std::fs::File::create(root.path().join("std.bin")).unwrap();
        for _ in 0..1024 {
            std::io::Write::write_all(&mut f, &chunk).unwrap();
        }
        let w = t.elapsed();
        f.sync_all().unwrap();
        println!(
            "std fs write: {:.0} MiB/s, then fsync {:.2} s",
            1024.0 / w.as_secs_f64(),
            (t.elapsed() - w).as_secs_f64()
        );
    });
    for mode in [CacheMode::Off, CacheMode::Writes] {
        let mnt = tempfile::tempdir_in("/var/tmp").unwrap();
        let cache = tempfile::tempdir_in("/var/tmp").unwrap();
        let vfs = Vfs::new(
            Arc::new(local.clone()),
            VfsConfig {
                cache_mode: mode,
                ..Default::default()
            },
            cache.path().into(),
            rt.handle().clone(),
        )
        .unwrap();
        let h = mount(vfs.clone(), mnt.path(), MountOptions::default()).unwrap();
        for _ in 0..2 {
            let t = Instant::now();
            let mut f = std::fs::File::create(mnt.path().join("y")).unwrap();
            for _ in 0..1024 {
                f.write_all(&buf).unwrap();
            }
            drop(f);
            let w = t.elapsed();
            rt.block_on(vfs.flush_all()).unwrap();
            println!(
                "{mode:?} local via fuse: {:.0} MiB/s, incl upload {:.0} MiB/s",
                1024.0 / w.as_secs_f64(),
                1024.0 / t.elapsed().as_secs_f64()
            );
        }
        h.unmount().unwrap();
    }
    {
        let chunk = vec![7u8; 1 << 20];
        let mut f = std::fs::File::create(root.path().join("r.bin")).unwrap();
        for _ in 0..1024 {
            f.write_all(&chunk).unwrap();
        }
    }
    rt.block_on(async {
        let t = Instant::now();
        let mut body = local.read("r.bin", None).await.unwrap();
        let mut n = 0;
        while let Some(c) = body.next().await {
            n += c.unwrap().len();
        }
        println!(
            "local store read stream: {:.0} MiB/s ({n})",
            1024.0 / t.elapsed().as_secs_f64()
        );
        let cache = tempfile::tempdir_in("/var/tmp").unwrap();
        let vfs = Vfs::new(
            Arc::new(local.clone()),
            VfsConfig {
                cache_mode: CacheMode::Off,
                ..Default::default()
            },
            cache.path().into(),
            tokio::runtime::Handle::current(),
        )
        .unwrap();
        let a = vfs.lookup(ROOT_INO, "r.bin").await.unwrap();
        for sz in [128u32 << 10, 1 << 20] {
            let t = Instant::now();
            let fh = vfs.open(a.ino, libc::O_RDONLY).await.unwrap();
            let mut off = 0u64;
            loop {
                let d = vfs.read(fh, off, sz).await.unwrap();
                if d.is_empty() {
                    break;
                }
                off += d.len() as u64;
            }
            vfs.release(fh).await.unwrap();
            println!(
                "vfs read api {sz}: {:.0} MiB/s",
                1024.0 / t.elapsed().as_secs_f64()
            );
        }
    });
    {
        let mnt = tempfile::tempdir_in("/var/tmp").unwrap();
        let cache = tempfile::tempdir_in("/var/tmp").unwrap();
        let vfs = Vfs::new(
            Arc::new(local.clone()),
            VfsConfig {
                cache_mode: CacheMode::Off,
                ..Default::default()
            },
            cache.path().into(),
            rt.handle().clone(),
        )
        .unwrap();
        let h = mount(vfs.clone(), mnt.path(), MountOptions::default()).unwrap();
        for sz in [128usize << 10, 1 << 20, 4 << 20] {
            let t = Instant::now();
            let mut f = std::fs::File::open(mnt.path().join("r.bin")).unwrap();
            let mut b = vec![0u8; sz];
            loop {
                let n = std::io::Read::read(&mut f, &mut b).unwrap();
                if n == 0 {
                    break;
                }
            }
            println!(
                "fuse read {sz}: {:.0} MiB/s",
                1024.0 / t.elapsed().as_secs_f64()
            );
        }
        h.unmount().unwrap();
    }
    for mode in [CacheMode::Full] {
        let mnt = tempfile::tempdir_in("/var/tmp").unwrap();
        let cache = tempfile::tempdir_in("/var/tmp").unwrap();
        let vfs = Vfs::new(Arc::new(local.clone()), VfsConfig { cache_mode: mode, ..Default::default() }, cache.path().into(), rt.handle().clone()).unwrap();
        let h = mount(vfs.clone(), mnt.path(), MountOptions::default()).unwrap();
        for pass in 0..3 {
            let t = Instant::now();
            let mut f = std::fs::File::open(mnt.path().join("r.bin")).unwrap();
            let mut b = vec![0u8; 1 << 20];
            loop { let n = std::io::Read::read(&mut f, &mut b).unwrap(); if n == 0 { break; } }
            println!("{mode:?} read pass {pass}: {:.0} MiB/s", 1024.0 / t.elapsed().as_secs_f64());
        }
        h.unmount().unwrap();
    }
    let mem = berth_storage::drivers::MemoryStorage::new();
    let t = Instant::now();
    let one = bytes::Bytes::from(vec![7u8; 1 << 20]);
    let chunks: Vec<Result<bytes::Bytes>> = (0..1024).map(|_| Ok(one.clone())).collect();
    rt.block_on(mem.write("direct.bin", futures::stream::iter(chunks).boxed()))
        .unwrap();
    println!(
        "memory store write: {:.0} MiB/s",
        1024.0 / t.elapsed().as_secs_f64()
    );
}
