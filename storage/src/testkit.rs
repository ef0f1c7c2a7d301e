//! The behaviour suite: driver-independent checks of the [`Storage`](crate::Storage)
//! contract, written once and run against every driver and wrapper with
//! [`behaviour_suite!`](crate::behaviour_suite). Enabled by the `testkit` feature.
//!
//! Each check takes a fresh storage and panics on a
//! behaviour that breaks the [`Storage`] contract. Checks that depend on a
//! capability read the flag and verify that it tells the truth.
//!
//! Conventions every driver follows:
//! - a range starting at or past the end reads as empty; a range running past
//!   the end is clipped;
//! - listings are sorted by name (byte order) and `next` is `None` on the last
//!   page; `limit == 0` lets the driver choose the page size;
//! - a write whose body fails leaves the previous state untouched.

use crate::{collect, once, ByteStream, Entry, EntryKind, ErrorKind, Storage, StorageError};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

type Store = Arc<dyn Storage>;

/// Deterministic, non-repeating-looking test data.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Whether a test may use something the machine may lack (FUSE, an
/// emulator, a database): `Ok` runs it; `Err(why)` skips it with a printed
/// reason, or fails it when the environment variable `require` is `1`
/// (`scripts/test.sh` sets those, so nothing skips in CI).
pub fn available(require: &str, test: &str, probe: Result<(), String>) -> bool {
    match probe {
        Ok(()) => true,
        Err(why) if std::env::var(require).as_deref() == Ok("1") => {
            panic!("{test}: {why}, and {require}=1")
        }
        Err(why) => {
            // Written to stderr directly so the line shows without --nocapture.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {why}; set {require}=1 to fail instead"
            );
            false
        }
    }
}

/// Whether `/dev/fuse` can be opened, for [`available`].
pub fn fuse_device() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map(drop)
        .map_err(|e| format!("/dev/fuse is unavailable ({e})"))
}

/// A loopback port that was free a moment ago (for test servers).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A body split into `chunk`-sized pieces.
pub fn chunked(data: &[u8], chunk: usize) -> ByteStream {
    let pieces: Vec<_> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(pieces).boxed()
}

/// A body that yields `prefix` and then fails.
pub fn failing(prefix: &[u8]) -> ByteStream {
    let items = vec![
        Ok(Bytes::copy_from_slice(prefix)),
        Ok(Bytes::copy_from_slice(prefix)),
        Err(StorageError::new(
            ErrorKind::Transient,
            "body failed midway",
        )),
    ];
    futures::stream::iter(items).boxed()
}

pub async fn put(st: &Store, path: &str, data: &[u8]) -> Entry {
    st.write(path, once(data.to_vec()))
        .await
        .unwrap_or_else(|e| panic!("write {path}: {e}"))
}

pub async fn get(st: &Store, path: &str) -> Vec<u8> {
    let body = st
        .read(path, None)
        .await
        .unwrap_or_else(|e| panic!("read {path}: {e}"));
    collect(body)
        .await
        .unwrap_or_else(|e| panic!("read body {path}: {e}"))
}

pub async fn get_range(st: &Store, path: &str, offset: u64, len: u64) -> Vec<u8> {
    let body = st
        .read(path, Some((offset, len)))
        .await
        .unwrap_or_else(|e| panic!("read {path} [{offset}+{len}]: {e}"));
    collect(body).await.expect("read body")
}

/// Follows cursors to the end, checking page size, order and uniqueness.
pub async fn list_all(st: &Store, dir: &str, limit: usize) -> (Vec<Entry>, usize) {
    let mut all: Vec<Entry> = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = st
            .list(dir, cursor.clone(), limit)
            .await
            .unwrap_or_else(|e| panic!("list {dir:?}: {e}"));
        pages += 1;
        assert!(pages < 100_000, "listing does not end");
        if limit > 0 {
            assert!(page.entries.len() <= limit, "page larger than limit");
        }
        all.extend(page.entries);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let names: Vec<&str> = all.iter().map(Entry::name).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        names, sorted,
        "listing of {dir:?} not sorted or has duplicates"
    );
    (all, pages)
}

pub async fn names(st: &Store, dir: &str) -> Vec<String> {
    list_all(st, dir, 0)
        .await
        .0
        .iter()
        .map(|e| e.name().to_string())
        .collect()
}

fn kind_of<T: std::fmt::Debug>(result: Result<T, StorageError>) -> ErrorKind {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.kind,
    }
}

async fn read_err(st: &Store, path: &str) -> ErrorKind {
    match st.read(path, None).await {
        Ok(body) => match collect(body).await {
            Ok(data) => panic!("read of {path} succeeded with {} bytes", data.len()),
            Err(e) => e.kind,
        },
        Err(e) => e.kind,
    }
}

pub async fn write_read_small(st: Store) {
    let entry = put(&st, "small.txt", b"hello, berth").await;
    assert_eq!(entry.path, "small.txt");
    assert_eq!(entry.kind, EntryKind::File);
    assert_eq!(entry.size, 12);
    assert_eq!(get(&st, "small.txt").await, b"hello, berth");
}

pub async fn write_read_empty(st: Store) {
    let entry = st
        .write("empty", futures::stream::empty().boxed())
        .await
        .unwrap();
    assert_eq!(entry.size, 0);
    put(&st, "empty2", b"").await;
    for path in ["empty", "empty2"] {
        assert_eq!(get(&st, path).await, b"");
        let stat = st.stat(path).await.unwrap();
        assert_eq!((stat.kind, stat.size), (EntryKind::File, 0));
    }
    assert_eq!(get_range(&st, "empty", 0, 10).await, b"");
    // An empty write over a file empties it.
    put(&st, "emptied", b"bytes before").await;
    let entry = st
        .write("emptied", futures::stream::empty().boxed())
        .await
        .unwrap();
    assert_eq!((entry.path.as_str(), entry.size), ("emptied", 0));
    assert_eq!(get(&st, "emptied").await, b"");
}

pub async fn write_read_large(st: Store) {
    let data = pattern(10 * 1024 * 1024 + 7);
    let entry = st
        .write("big/large.bin", chunked(&data, 333_333))
        .await
        .unwrap();
    assert_eq!(entry.size, data.len() as u64);
    assert_eq!(
        st.stat("big/large.bin").await.unwrap().size,
        data.len() as u64
    );
    let mut body = st.read("big/large.bin", None).await.unwrap();
    let mut got = Vec::with_capacity(data.len());
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert!(got == data, "10 MiB body differs");
}

pub async fn ranged_reads(st: Store) {
    let data = pattern(1_000_000);
    st.write("r.bin", chunked(&data, 65_536)).await.unwrap();
    let cases: [(u64, u64); 8] = [
        (0, 100),
        (0, 1_000_000),
        (500_000, 1234),
        (100, 600_000),
        (999_900, 100),
        (999_900, 1000),
        (1_000_000, 10),
        (2_000_000, 10),
    ];
    for (offset, len) in cases {
        let got = get_range(&st, "r.bin", offset, len).await;
        let start = (offset as usize).min(data.len());
        let end = (start + len as usize).min(data.len());
        assert!(
            got == data[start..end],
            "range {offset}+{len}: got {} bytes, want {}",
            got.len(),
            end - start
        );
    }
    assert_eq!(get_range(&st, "r.bin", 10, 0).await, b"");
    if st.capability().ranged_read {
        // A range read returns exactly the range, not the object.
        assert_eq!(get_range(&st, "r.bin", 3, 5).await, &data[3..8]);
    }
}

pub async fn list_many_paginated(st: Store) {
    const COUNT: usize = 2_500;
    futures::stream::iter(0..COUNT)
        .map(|i| {
            let st = st.clone();
            async move {
                st.write(&format!("many/f{i:05}"), once(format!("{i}")))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    let want: Vec<String> = (0..COUNT).map(|i| format!("f{i:05}")).collect();

    let (entries, pages) = list_all(&st, "many", 100).await;
    let got: Vec<String> = entries.iter().map(|e| e.name().to_string()).collect();
    assert_eq!(got, want);
    assert!((25..=26).contains(&pages), "{pages} pages of 100");
    for e in &entries {
        assert!(e.path.starts_with("many/f"), "entry path {}", e.path);
        assert_eq!(e.kind, EntryKind::File);
    }

    // First page exactly, then resume from a cursor.
    let first = st.list("many", None, 100).await.unwrap();
    assert_eq!(first.entries.len(), 100);
    assert_eq!(first.next.as_deref(), Some("f00099"));
    let second = st.list("many", first.next, 100).await.unwrap();
    assert_eq!(second.entries[0].name(), "f00100");

    assert_eq!(names(&st, "many").await, want, "limit 0");
    let (_, pages) = list_all(&st, "many", 1000).await;
    assert!((3..=4).contains(&pages));
    assert_eq!(names(&st, "").await, vec!["many".to_string()]);
}

pub async fn list_sorted_with_kinds(st: Store) {
    put(&st, "mix/b.txt", b"bb").await;
    put(&st, "mix/a.txt", b"a").await;
    put(&st, "mix/c/inner.txt", b"inner").await;
    put(&st, "mix/B", b"upper").await;
    put(&st, "mix/a0", b"").await;
    let (entries, _) = list_all(&st, "mix", 2).await;
    let got: Vec<(&str, EntryKind, u64)> = entries
        .iter()
        .map(|e| {
            (
                e.name(),
                e.kind,
                if e.kind == EntryKind::Dir { 0 } else { e.size },
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("B", EntryKind::File, 5),
            ("a.txt", EntryKind::File, 1),
            ("a0", EntryKind::File, 0),
            ("b.txt", EntryKind::File, 2),
            ("c", EntryKind::Dir, 0),
        ]
    );
    assert_eq!(entries[4].path, "mix/c");
    // A cursor past every name ends the listing.
    let page = st.list("mix", Some("zzz".into()), 10).await.unwrap();
    assert!(page.entries.is_empty() && page.next.is_none());
}

pub async fn nested_paths(st: Store) {
    put(&st, "n/a/b/c/deep.txt", b"deep").await;
    assert_eq!(names(&st, "").await, vec!["n"]);
    assert_eq!(names(&st, "n").await, vec!["a"]);
    assert_eq!(names(&st, "n/a/b").await, vec!["c"]);
    assert_eq!(names(&st, "n/a/b/c").await, vec!["deep.txt"]);
    let (entries, _) = list_all(&st, "n/a", 0).await;
    assert_eq!(entries[0].path, "n/a/b");
    assert_eq!(entries[0].kind, EntryKind::Dir);
    for dir in ["n", "n/a", "n/a/b", "n/a/b/c"] {
        assert_eq!(st.stat(dir).await.unwrap().kind, EntryKind::Dir, "{dir}");
    }
    // Paths are normalized.
    let stat = st.stat("/n//a/./b/c/deep.txt").await.unwrap();
    assert_eq!(stat.path, "n/a/b/c/deep.txt");
    assert_eq!(get(&st, "n/a/b/c/deep.txt/").await, b"deep");
    assert_eq!(names(&st, "/n/a/").await, vec!["b"]);
}

pub async fn unicode_names(st: Store) {
    let files = [
        "ünïcödé.txt",
        "日本語 ファイル.txt",
        "emoji 🎉.bin",
        "spaces in name",
        "a+b=c&d%20.txt",
        "semi;colon'quote\"",
        "hash#question?",
        "Ωmega",
    ];
    for (i, name) in files.iter().enumerate() {
        put(&st, &format!("uni/dïr 目录/{name}"), name.as_bytes()).await;
        assert_eq!(
            get(&st, &format!("uni/dïr 目录/{name}")).await,
            name.as_bytes(),
            "{i}"
        );
    }
    let got: BTreeSet<String> = names(&st, "uni/dïr 目录").await.into_iter().collect();
    let want: BTreeSet<String> = files.iter().map(|s| s.to_string()).collect();
    assert_eq!(got, want);
    assert_eq!(names(&st, "uni").await, vec!["dïr 目录"]);
    let stat = st.stat("uni/dïr 目录/emoji 🎉.bin").await.unwrap();
    assert_eq!(stat.size, "emoji 🎉.bin".len() as u64);
}

pub async fn overwrite(st: Store) {
    put(&st, "ow.txt", &pattern(10_000)).await;
    let entry = put(&st, "ow.txt", b"short").await;
    assert_eq!(entry.size, 5);
    assert_eq!(get(&st, "ow.txt").await, b"short");
    assert_eq!(st.stat("ow.txt").await.unwrap().size, 5);
    assert_eq!(names(&st, "").await, vec!["ow.txt"]);
    put(&st, "ow.txt", b"").await;
    assert_eq!(get(&st, "ow.txt").await, b"");
}

pub async fn delete_file(st: Store) {
    put(&st, "del/keep", b"k").await;
    put(&st, "del/gone", b"g").await;
    st.delete("del/gone").await.unwrap();
    assert_eq!(kind_of(st.stat("del/gone").await), ErrorKind::NotFound);
    assert_eq!(read_err(&st, "del/gone").await, ErrorKind::NotFound);
    assert_eq!(kind_of(st.delete("del/gone").await), ErrorKind::NotFound);
    assert_eq!(names(&st, "del").await, vec!["keep"]);
    assert_eq!(get(&st, "del/keep").await, b"k");
    if st.capability().directories {
        assert_eq!(kind_of(st.delete("del").await), ErrorKind::Conflict);
    }
}

pub async fn rename_file(st: Store) {
    put(&st, "mv/a.txt", b"alpha").await;
    st.rename("mv/a.txt", "mv/b.txt").await.unwrap();
    assert_eq!(kind_of(st.stat("mv/a.txt").await), ErrorKind::NotFound);
    assert_eq!(get(&st, "mv/b.txt").await, b"alpha");

    // Onto an existing file: replaces it.
    put(&st, "mv/c.txt", b"gamma-gamma").await;
    st.rename("mv/b.txt", "mv/c.txt").await.unwrap();
    assert_eq!(get(&st, "mv/c.txt").await, b"alpha");
    assert_eq!(names(&st, "mv").await, vec!["c.txt"]);

    // Into a directory that does not exist yet.
    st.rename("mv/c.txt", "mv/new/dir/c.txt").await.unwrap();
    assert_eq!(get(&st, "mv/new/dir/c.txt").await, b"alpha");
    assert_eq!(st.stat("mv/new/dir").await.unwrap().kind, EntryKind::Dir);

    // Renaming onto itself is a no-op.
    st.rename("mv/new/dir/c.txt", "mv/new/dir/c.txt")
        .await
        .unwrap();
    assert_eq!(get(&st, "mv/new/dir/c.txt").await, b"alpha");

    assert_eq!(
        kind_of(st.rename("mv/nope", "mv/x").await),
        ErrorKind::NotFound
    );
}

pub async fn rename_dir(st: Store) {
    put(&st, "rd/src/a", b"a").await;
    put(&st, "rd/src/b", b"bb").await;
    put(&st, "rd/src/sub/c", b"ccc").await;
    put(&st, "rd/src-sibling", b"s").await;
    st.rename("rd/src", "rd/dst").await.unwrap();
    assert_eq!(names(&st, "rd").await, vec!["dst", "src-sibling"]);
    assert_eq!(names(&st, "rd/dst").await, vec!["a", "b", "sub"]);
    assert_eq!(get(&st, "rd/dst/sub/c").await, b"ccc");
    assert_eq!(get(&st, "rd/dst/b").await, b"bb");
    assert_eq!(kind_of(st.stat("rd/src/a").await), ErrorKind::NotFound);
    assert_eq!(kind_of(st.stat("rd/src").await), ErrorKind::NotFound);
    assert_eq!(get(&st, "rd/src-sibling").await, b"s");

    // Into a new parent.
    st.rename("rd/dst", "rd/deeper/moved").await.unwrap();
    assert_eq!(get(&st, "rd/deeper/moved/sub/c").await, b"ccc");

    if st.capability().directories {
        st.mkdir("rd/empty").await.unwrap();
        st.rename("rd/empty", "rd/empty2").await.unwrap();
        assert_eq!(st.stat("rd/empty2").await.unwrap().kind, EntryKind::Dir);
        assert_eq!(names(&st, "rd/empty2").await, Vec::<String>::new());
    }
}

pub async fn rename_conflicts(st: Store) {
    if !st.capability().directories {
        return;
    }
    put(&st, "rc/d1/x", b"x").await;
    put(&st, "rc/d2/y", b"y").await;
    put(&st, "rc/f", b"f").await;
    assert_eq!(
        kind_of(st.rename("rc/d1", "rc/d2").await),
        ErrorKind::Conflict,
        "dir onto non-empty dir"
    );
    assert_eq!(
        kind_of(st.rename("rc/f", "rc/d2").await),
        ErrorKind::Conflict,
        "file onto dir"
    );
    assert_eq!(
        kind_of(st.rename("rc/d1", "rc/f").await),
        ErrorKind::Conflict,
        "dir onto file"
    );
    assert!(st.rename("rc/d1", "rc/d1/inside").await.is_err());
    // Nothing moved.
    assert_eq!(get(&st, "rc/d1/x").await, b"x");
    assert_eq!(get(&st, "rc/d2/y").await, b"y");
    assert_eq!(get(&st, "rc/f").await, b"f");
    // A directory onto an empty one replaces it.
    st.mkdir("rc/e").await.unwrap();
    st.rename("rc/d1", "rc/e").await.unwrap();
    assert_eq!(get(&st, "rc/e/x").await, b"x");
}

pub async fn copy_file(st: Store) {
    if !st.capability().copy {
        put(&st, "cp/a", b"a").await;
        assert_eq!(
            kind_of(st.copy("cp/a", "cp/b").await),
            ErrorKind::Unsupported
        );
        return;
    }
    let data = pattern(300_000);
    put(&st, "cp/a.bin", &data).await;
    st.copy("cp/a.bin", "cp/b.bin").await.unwrap();
    assert!(get(&st, "cp/a.bin").await == data, "source changed");
    assert!(get(&st, "cp/b.bin").await == data, "copy differs");
    st.copy("cp/a.bin", "cp/nested/new/c.bin").await.unwrap();
    assert!(get(&st, "cp/nested/new/c.bin").await == data);

    // Onto an existing file: replaces it; the copies are independent.
    put(&st, "cp/d.txt", b"old").await;
    st.copy("cp/a.bin", "cp/d.txt").await.unwrap();
    assert_eq!(st.stat("cp/d.txt").await.unwrap().size, data.len() as u64);
    put(&st, "cp/a.bin", b"changed").await;
    assert!(get(&st, "cp/b.bin").await == data);

    assert_eq!(
        kind_of(st.copy("cp/missing", "cp/x").await),
        ErrorKind::NotFound
    );
    assert!(
        st.copy("cp/nested", "cp/nested2").await.is_err(),
        "copying a directory"
    );
    assert_eq!(kind_of(st.stat("cp/x").await), ErrorKind::NotFound);
}

pub async fn missing_is_not_found(st: Store) {
    put(&st, "exists/file", b"x").await;
    for path in ["nope", "nope/deeper/file", "exists/nope"] {
        assert_eq!(
            kind_of(st.stat(path).await),
            ErrorKind::NotFound,
            "stat {path}"
        );
        assert_eq!(
            read_err(&st, path).await,
            ErrorKind::NotFound,
            "read {path}"
        );
        assert_eq!(
            kind_of(st.delete(path).await),
            ErrorKind::NotFound,
            "delete {path}"
        );
        assert_eq!(
            kind_of(st.rename(path, "exists/other").await),
            ErrorKind::NotFound,
            "rename {path}"
        );
        if st.capability().copy {
            assert_eq!(
                kind_of(st.copy(path, "exists/other").await),
                ErrorKind::NotFound,
                "copy {path}"
            );
        }
    }
    if st.capability().directories {
        assert_eq!(kind_of(st.list("nope", None, 0).await), ErrorKind::NotFound);
        assert_eq!(kind_of(st.rmdir("nope").await), ErrorKind::NotFound);
    } else {
        assert!(st.list("nope", None, 0).await.unwrap().entries.is_empty());
    }
    assert_eq!(names(&st, "exists").await, vec!["file"]);
}

pub async fn mkdir_rmdir(st: Store) {
    if !st.capability().directories {
        // Directories are implied: mkdir must still succeed.
        st.mkdir("md/a").await.unwrap();
        return;
    }
    st.mkdir("md/a/b/c").await.unwrap();
    for dir in ["md", "md/a", "md/a/b", "md/a/b/c"] {
        let stat = st.stat(dir).await.unwrap();
        assert_eq!((stat.kind, stat.size), (EntryKind::Dir, 0), "{dir}");
    }
    assert_eq!(names(&st, "md/a/b/c").await, Vec::<String>::new());
    let (entries, _) = list_all(&st, "md/a/b", 0).await;
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].name(), entries[0].kind), ("c", EntryKind::Dir));
    st.mkdir("md/a/b/c").await.unwrap();
    st.mkdir("md/a").await.unwrap();

    put(&st, "md/file", b"f").await;
    assert_eq!(kind_of(st.mkdir("md/file").await), ErrorKind::Conflict);
    assert_eq!(kind_of(st.mkdir("md/file/sub").await), ErrorKind::Conflict);
    assert_eq!(kind_of(st.rmdir("md/file").await), ErrorKind::Conflict);

    assert_eq!(kind_of(st.rmdir("md/a").await), ErrorKind::Conflict);
    assert_eq!(kind_of(st.rmdir("md/a/b").await), ErrorKind::Conflict);
    st.rmdir("md/a/b/c").await.unwrap();
    assert_eq!(kind_of(st.stat("md/a/b/c").await), ErrorKind::NotFound);
    st.rmdir("md/a/b").await.unwrap();
    st.rmdir("md/a").await.unwrap();
    assert_eq!(names(&st, "md").await, vec!["file"]);
    assert_eq!(kind_of(st.rmdir("md/a").await), ErrorKind::NotFound);
    assert!(st.rmdir("").await.is_err(), "rmdir of the root");

    // A directory emptied by deletes still exists.
    put(&st, "md/keep/x", b"x").await;
    st.delete("md/keep/x").await.unwrap();
    assert_eq!(st.stat("md/keep").await.unwrap().kind, EntryKind::Dir);
}

pub async fn stat_entries(st: Store) {
    let root = st.stat("").await.unwrap();
    assert_eq!(root.kind, EntryKind::Dir);
    let before = SystemTime::now() - Duration::from_secs(120);
    put(&st, "s/file.txt", b"12345").await;
    let file = st.stat("s/file.txt").await.unwrap();
    assert_eq!(file.path, "s/file.txt");
    assert_eq!(file.name(), "file.txt");
    assert_eq!((file.kind, file.size), (EntryKind::File, 5));
    if let Some(modified) = file.modified {
        assert!(
            modified > before && modified < SystemTime::now() + Duration::from_secs(120),
            "mtime {modified:?} is not about now"
        );
    }
    let dir = st.stat("s").await.unwrap();
    assert_eq!(
        (dir.path.as_str(), dir.kind, dir.size),
        ("s", EntryKind::Dir, 0)
    );
    // Listing and stat agree.
    let (listed, _) = list_all(&st, "s", 0).await;
    assert_eq!(listed[0].size, file.size);
    assert_eq!(listed[0].kind, file.kind);
}

pub async fn dotdot_refused(st: Store) {
    put(&st, "dd/x", b"x").await;
    for path in ["../x", "dd/../../x", "dd/..", ".."] {
        assert_eq!(
            kind_of(st.stat(path).await),
            ErrorKind::Permission,
            "stat {path}"
        );
        assert_eq!(
            read_err(&st, path).await,
            ErrorKind::Permission,
            "read {path}"
        );
        assert_eq!(
            kind_of(st.write(path, once("no")).await),
            ErrorKind::Permission,
            "write {path}"
        );
        assert_eq!(kind_of(st.list(path, None, 0).await), ErrorKind::Permission);
        assert_eq!(kind_of(st.delete(path).await), ErrorKind::Permission);
        assert_eq!(kind_of(st.mkdir(path).await), ErrorKind::Permission);
        assert_eq!(kind_of(st.rmdir(path).await), ErrorKind::Permission);
        assert_eq!(
            kind_of(st.rename("dd/x", path).await),
            ErrorKind::Permission
        );
        assert_eq!(
            kind_of(st.rename(path, "dd/y").await),
            ErrorKind::Permission
        );
        if st.capability().copy {
            assert_eq!(kind_of(st.copy("dd/x", path).await), ErrorKind::Permission);
        }
    }
    assert_eq!(get(&st, "dd/x").await, b"x");
}

pub async fn capability_truth(st: Store) {
    let cap = st.capability();
    match st.usage().await {
        Ok(usage) if cap.usage => {
            let (total, free) = (usage.total.unwrap(), usage.free.unwrap());
            assert!(total > 0 && free <= total, "{usage:?}");
        }
        Ok(usage) => assert!(
            usage.total.is_none() || usage.free.is_none(),
            "usage flag is false but usage reports space: {usage:?}"
        ),
        Err(e) => {
            assert!(!cap.usage, "usage flag is true but usage failed: {e}");
            assert_eq!(e.kind, ErrorKind::Unsupported);
        }
    }
    if cap.directories {
        st.mkdir("cap/empty").await.unwrap();
        assert_eq!(st.stat("cap/empty").await.unwrap().kind, EntryKind::Dir);
        let (entries, _) = list_all(&st, "cap", 0).await;
        assert_eq!(entries.len(), 1);
        assert_eq!(
            (entries[0].name(), entries[0].kind),
            ("empty", EntryKind::Dir)
        );
    }
    if !cap.copy {
        put(&st, "cap/a", b"a").await;
        assert_eq!(
            kind_of(st.copy("cap/a", "cap/b").await),
            ErrorKind::Unsupported
        );
    }
}

pub async fn failed_write_leaves_nothing(st: Store) {
    put(&st, "fw/sibling", b"s").await;
    let err = st.write("fw/broken", failing(&pattern(100_000))).await;
    assert!(err.is_err(), "a failing body must fail the write");
    assert_eq!(kind_of(st.stat("fw/broken").await), ErrorKind::NotFound);
    assert_eq!(names(&st, "fw").await, vec!["sibling"]);

    // A failed overwrite keeps the old content.
    put(&st, "fw/kept", b"old content").await;
    assert!(st.write("fw/kept", failing(b"new")).await.is_err());
    assert_eq!(get(&st, "fw/kept").await, b"old content");
    assert_eq!(names(&st, "fw").await, vec!["kept", "sibling"]);
}

pub async fn write_conflicts(st: Store) {
    if !st.capability().directories {
        return;
    }
    put(&st, "wc/dir/x", b"x").await;
    put(&st, "wc/file", b"f").await;
    assert_eq!(
        kind_of(st.write("wc/dir", once("no")).await),
        ErrorKind::Conflict
    );
    assert_eq!(
        kind_of(st.write("wc/file/child", once("no")).await),
        ErrorKind::Conflict
    );
    assert_eq!(kind_of(st.write("", once("no")).await), ErrorKind::Conflict);
    assert_eq!(read_err(&st, "wc/dir").await, ErrorKind::Conflict);
    assert_eq!(
        kind_of(st.list("wc/file", None, 0).await),
        ErrorKind::Conflict
    );
    assert_eq!(get(&st, "wc/file").await, b"f");
}

pub async fn concurrent_writes(st: Store) {
    let writes = (0..32).map(|i| {
        let st = st.clone();
        async move {
            let data = pattern(10_000 + i);
            st.write(&format!("cc/{i}"), chunked(&data, 1000)).await?;
            Ok::<_, StorageError>(())
        }
    });
    futures::future::try_join_all(writes).await.unwrap();
    let reads = (0..32).map(|i| {
        let st = st.clone();
        async move { (i, get(&st, &format!("cc/{i}")).await) }
    });
    for (i, data) in futures::future::join_all(reads).await {
        assert!(data == pattern(10_000 + i), "file {i}");
    }
    assert_eq!(names(&st, "cc").await.len(), 32);
}

pub async fn probe_ok(st: Store) {
    st.probe().await.unwrap();
    put(&st, "p", b"p").await;
    st.probe().await.unwrap();
}

/// A storage under test and whatever must outlive it (a temp dir, a server handle).
pub struct Fixture {
    /// The storage under test.
    pub storage: Store,
    _keep: Option<Box<dyn std::any::Any + Send>>,
}

impl Fixture {
    /// A fixture keeping `keep` alive as long as the storage is tested.
    pub fn new(storage: Store, keep: Option<Box<dyn std::any::Any + Send>>) -> Self {
        Fixture {
            storage,
            _keep: keep,
        }
    }
}

/// Expands to one `mod <driver>` per listed fixture, with one `#[tokio::test]`
/// per check of the suite. A fixture is an `async fn() -> Option<Fixture>`;
/// `None` skips (print why in the fixture).
#[macro_export]
macro_rules! behaviour_suite {
    ($($driver:ident => $fixture:path),* $(,)?) => {
        $(
            mod $driver {
                $crate::behaviour_suite!(@tests $fixture;
                    write_read_small,
                    write_read_empty,
                    write_read_large,
                    ranged_reads,
                    list_many_paginated,
                    list_sorted_with_kinds,
                    nested_paths,
                    unicode_names,
                    overwrite,
                    delete_file,
                    rename_file,
                    rename_dir,
                    rename_conflicts,
                    copy_file,
                    missing_is_not_found,
                    mkdir_rmdir,
                    stat_entries,
                    dotdot_refused,
                    capability_truth,
                    failed_write_leaves_nothing,
                    write_conflicts,
                    concurrent_writes,
                    probe_ok,
                );
            }
        )*
    };
    (@tests $fixture:path; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                let Some(fixture) = $fixture().await else { return };
                $crate::testkit::$test(fixture.storage.clone()).await;
            }
        )*
    };
}
