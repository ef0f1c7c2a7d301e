//! alias, union and combine over named in-memory backends: the behaviour
//! suite through each wrapper, then what is particular to each (union
//! policies and upstream modes, combine's fixed root and routing, errors
//! naming the upstream).

use crate::support::{engine, Backends};
use async_trait::async_trait;
use berth_engines::{build, BuildContext, EngineEnv};
use berth_storage::catalog::catalog;
use berth_storage::drivers::{DriverEnv, MemoryStorage};
use berth_storage::testkit::{get, list_all, names, put, Fixture};
use berth_storage::{
    once, ByteStream, Capability, Entry, EntryKind, ErrorKind, ListPage, Result, Storage, SubPath,
    Usage,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const GIB: u64 = 1 << 30;

type Store = Arc<dyn Storage>;

fn memory() -> Store {
    Arc::new(MemoryStorage::new())
}

fn backends(named: &[(&str, &Store)]) -> Backends {
    Backends(
        named
            .iter()
            .map(|(name, st)| (name.to_string(), Arc::clone(st)))
            .collect(),
    )
}

/// Builds like `support::engine` but hands back the error instead of
/// panicking.
async fn try_engine(slug: &str, body: Value, backends: &Backends) -> Result<Store> {
    let config = catalog()
        .get(slug)
        .unwrap()
        .validate_create(&body)
        .unwrap_or_else(|e| panic!("{slug} config: {e}"));
    let env = EngineEnv {
        drivers: DriverEnv::default(),
        state_dir: std::env::temp_dir(),
        hashes: std::sync::Arc::new(berth_layers::MemoryHashStore::new()),
        rclone: Err("rclone is not used here".into()),
    };
    let ctx = BuildContext {
        backend_id: "0123456789abcdef",
        env: &env,
        backends,
    };
    build(slug, &config, &ctx).await
}

async fn alias() -> Option<Fixture> {
    let m = memory();
    m.mkdir("sub/dir").await.unwrap();
    let named = backends(&[("m", &m)]);
    Some(engine("alias", json!({"remote": "m:sub/dir"}), &named).await)
}

async fn union() -> Option<Fixture> {
    let (a, b) = (memory(), memory());
    b.mkdir("x").await.unwrap();
    let named = backends(&[("a", &a), ("b", &b)]);
    Some(engine("union", json!({"upstreams": "a: b:x"}), &named).await)
}

/// New files can only land on the middle upstream.
async fn union_ro_and_nc() -> Option<Fixture> {
    let (n, w, r) = (memory(), memory(), memory());
    let named = backends(&[("n", &n), ("w", &w), ("r", &r)]);
    let body = json!({"upstreams": "n::nc w: r::ro"});
    Some(engine("union", body, &named).await)
}

/// Every create and action reaches both upstreams: writes are teed.
async fn union_all() -> Option<Fixture> {
    let (a, b) = (memory(), memory());
    let named = backends(&[("a", &a), ("b", &b)]);
    let body = json!({"upstreams": "a: b:", "create_policy": "all", "action_policy": "all"});
    Some(engine("union", body, &named).await)
}

fn combined() -> (Store, Store, Backends) {
    let (p, v) = (memory(), memory());
    let named = backends(&[("p", &p), ("v", &v)]);
    (p, v, named)
}

/// The suite inside one combined directory (the root itself is fixed).
async fn combine_subtree() -> Option<Fixture> {
    let (_, v, named) = combined();
    v.mkdir("sub").await.unwrap();
    let body = json!({"upstreams": "photos=p: videos=v:sub"});
    let fixture = engine("combine", body, &named).await;
    let view = SubPath::wrap(fixture.storage.clone(), "videos").unwrap();
    Some(Fixture::new(view, Some(Box::new(fixture))))
}

berth_storage::behaviour_suite! {
    alias => super::alias,
    union => super::union,
    union_ro_and_nc => super::union_ro_and_nc,
    union_all => super::union_all,
    combine => super::combine_subtree,
}

/// A memory store that reports a settable amount of free space.
#[derive(Debug)]
struct Spaced {
    inner: MemoryStorage,
    free: AtomicU64,
}

fn spaced(free: u64) -> (Arc<Spaced>, Store) {
    let s = Arc::new(Spaced {
        inner: MemoryStorage::new(),
        free: AtomicU64::new(free),
    });
    let store: Store = s.clone();
    (s, store)
}

#[async_trait]
impl Storage for Spaced {
    fn capability(&self) -> Capability {
        Capability {
            usage: true,
            ..self.inner.capability()
        }
    }
    async fn stat(&self, path: &str) -> Result<Entry> {
        self.inner.stat(path).await
    }
    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        self.inner.list(dir, cursor, limit).await
    }
    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        self.inner.read(path, range).await
    }
    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
        self.inner.write(path, body).await
    }
    async fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(path).await
    }
    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.inner.copy(from, to).await
    }
    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.inner.rename(from, to).await
    }
    async fn mkdir(&self, path: &str) -> Result<()> {
        self.inner.mkdir(path).await
    }
    async fn rmdir(&self, path: &str) -> Result<()> {
        self.inner.rmdir(path).await
    }
    async fn usage(&self) -> Result<Usage> {
        let used = self.inner.usage().await?.used.unwrap_or(0);
        let free = self.free.load(Ordering::Relaxed);
        Ok(Usage {
            total: Some(used + free),
            used: Some(used),
            free: Some(free),
        })
    }
    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        self.inner.set_modified(path, time).await
    }
}

async fn exists(st: &Store, path: &str) -> bool {
    match st.stat(path).await {
        Ok(_) => true,
        Err(e) if e.kind == ErrorKind::NotFound => false,
        Err(e) => panic!("stat {path}: {e}"),
    }
}

/// Which of `stores` hold `path`.
async fn holders(stores: &[&Store], path: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, st) in stores.iter().enumerate() {
        if exists(st, path).await {
            out.push(i);
        }
    }
    out
}

#[tokio::test]
async fn union_epmfs_creates_where_the_parent_exists_with_most_free_space() {
    let (_, a) = spaced(10 * GIB);
    let (_, b) = spaced(50 * GIB);
    let (_, c) = spaced(100 * GIB);
    a.mkdir("docs").await.unwrap();
    b.mkdir("docs").await.unwrap();
    let named = backends(&[("a", &a), ("b", &b), ("c", &c)]);
    let st = engine("union", json!({"upstreams": "a: b: c:"}), &named)
        .await
        .storage;
    let all = [&a, &b, &c];

    put(&st, "docs/x", b"x").await;
    assert_eq!(
        holders(&all, "docs/x").await,
        vec![1],
        "most free with docs/"
    );
    put(&st, "top.txt", b"t").await;
    assert_eq!(holders(&all, "top.txt").await, vec![2], "most free overall");
    // No upstream has new/deep: the policy picks at the root and the
    // directories are created there.
    put(&st, "new/deep/f", b"f").await;
    assert_eq!(holders(&all, "new/deep/f").await, vec![2]);
    st.mkdir("docs/sub").await.unwrap();
    assert_eq!(holders(&all, "docs/sub").await, vec![1]);
}

#[tokio::test]
async fn union_ff_creates_on_the_first_creatable_and_never_writes_ro() {
    let (r, n, a, b) = (memory(), memory(), memory(), memory());
    put(&r, "old.txt", b"read-only copy").await;
    put(&n, "keep.txt", b"nc copy").await;
    let named = backends(&[("r", &r), ("n", &n), ("a", &a), ("b", &b)]);
    let body = json!({"upstreams": "r::ro n::nc a: b:", "create_policy": "ff"});
    let st = engine("union", body, &named).await.storage;
    let all = [&r, &n, &a, &b];

    put(&st, "new.txt", b"new").await;
    assert_eq!(holders(&all, "new.txt").await, vec![2]);
    st.mkdir("dir").await.unwrap();
    assert_eq!(holders(&all, "dir").await, vec![2]);

    // A file only on the :ro upstream is created anew when written.
    put(&st, "old.txt", b"changed").await;
    assert_eq!(get(&r, "old.txt").await, b"read-only copy");
    assert_eq!(get(&a, "old.txt").await, b"changed");
    assert_eq!(
        get(&st, "old.txt").await,
        b"read-only copy",
        "ff search: r first"
    );

    // Existing files on a :nc upstream may change.
    put(&st, "keep.txt", b"updated").await;
    assert_eq!(get(&n, "keep.txt").await, b"updated");
    assert_eq!(holders(&all, "keep.txt").await, vec![1]);

    // Deleting removes the writable copy; the :ro one stays and cannot go.
    st.delete("old.txt").await.unwrap();
    assert!(!exists(&a, "old.txt").await);
    assert_eq!(get(&st, "old.txt").await, b"read-only copy");
    let err = st.delete("old.txt").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permission);
    assert_eq!(names(&r, "").await, vec!["old.txt"], "r was written");
}

#[tokio::test]
async fn union_lfs_skips_upstreams_below_min_free_space() {
    let (_, a) = spaced(GIB / 2);
    let (_, b) = spaced(2 * GIB);
    let (_, c) = spaced(10 * GIB);
    let named = backends(&[("a", &a), ("b", &b), ("c", &c)]);
    let body = json!({"upstreams": "a: b: c:", "create_policy": "lfs", "min_free_space": "1G"});
    let st = engine("union", body, &named).await.storage;
    put(&st, "f", b"f").await;
    assert_eq!(holders(&[&a, &b, &c], "f").await, vec![1]);

    let body = json!({"upstreams": "a: b: c:", "create_policy": "lfs", "min_free_space": "20G"});
    let st = engine("union", body, &named).await.storage;
    let err = st.write("g", once("g")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Quota);
    assert!(err.message.contains("min_free_space"), "{}", err.message);
}

#[tokio::test]
async fn union_usage_figures_are_cached_for_cache_time() {
    let (a_free, a) = spaced(10 * GIB);
    let (_, b) = spaced(5 * GIB);
    let named = backends(&[("a", &a), ("b", &b)]);
    let cached = json!({"upstreams": "a: b:", "create_policy": "mfs", "cache_time": 600});
    let st = engine("union", cached, &named).await.storage;
    put(&st, "one", b"1").await;
    a_free.free.store(GIB, Ordering::Relaxed);
    put(&st, "two", b"2").await;
    assert_eq!(holders(&[&a, &b], "two").await, vec![0], "figures reused");

    let fresh = json!({"upstreams": "a: b:", "create_policy": "mfs", "cache_time": 0});
    let st = engine("union", fresh, &named).await.storage;
    put(&st, "three", b"3").await;
    assert_eq!(
        holders(&[&a, &b], "three").await,
        vec![1],
        "figures re-read"
    );
}

#[tokio::test]
async fn union_epall_actions_reach_every_writable_copy() {
    let (a, b, c) = (memory(), memory(), memory());
    for st in [&a, &b, &c] {
        put(st, "d/f", b"f").await;
    }
    let named = backends(&[("a", &a), ("b", &b), ("c", &c)]);
    let st = engine("union", json!({"upstreams": "a: b: c::ro"}), &named)
        .await
        .storage;
    let all = [&a, &b, &c];
    let later = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    st.set_modified("d/f", later).await.unwrap();
    for (i, up) in [&a, &b].iter().enumerate() {
        assert_eq!(up.stat("d/f").await.unwrap().modified, Some(later), "{i}");
    }
    assert_ne!(c.stat("d/f").await.unwrap().modified, Some(later));

    st.rename("d/f", "d/g").await.unwrap();
    assert_eq!(holders(&all, "d/g").await, vec![0, 1]);
    st.delete("d/g").await.unwrap();
    assert!(holders(&all, "d/g").await.is_empty());
    // The :ro copy of d/f is still seen.
    assert_eq!(names(&st, "d").await, vec!["f"]);
    assert_eq!(holders(&all, "d/f").await, vec![2]);
}

#[tokio::test]
async fn union_listing_merges_and_the_first_upstream_wins_duplicates() {
    let (a, b) = (memory(), memory());
    put(&a, "x", b"A").await;
    put(&b, "x", b"BB").await;
    put(&b, "y", b"y").await;
    for i in 0..150 {
        if i % 2 == 0 {
            put(&a, &format!("many/f{i:03}"), b"a").await;
        }
        if i % 3 == 0 {
            put(&b, &format!("many/f{i:03}"), b"bb").await;
        }
    }
    let named = backends(&[("a", &a), ("b", &b)]);
    let st = engine("union", json!({"upstreams": "a: b:"}), &named)
        .await
        .storage;
    assert_eq!(names(&st, "").await, vec!["many", "x", "y"]);
    assert_eq!(get(&st, "x").await, b"A");
    assert_eq!(st.stat("x").await.unwrap().size, 1);

    let want: Vec<String> = (0..150)
        .filter(|i| i % 2 == 0 || i % 3 == 0)
        .map(|i| format!("f{i:03}"))
        .collect();
    for limit in [1, 7, 50, 0] {
        let (entries, _) = list_all(&st, "many", limit).await;
        let got: Vec<&str> = entries.iter().map(Entry::name).collect();
        assert_eq!(got, want, "limit {limit}");
        // f000 is on both: a's copy (1 byte) is shown.
        assert_eq!(entries[0].size, 1);
    }

    // With search_policy newest the most recently modified copy wins.
    let later = SystemTime::now() + Duration::from_secs(3600);
    b.set_modified("x", later).await.unwrap();
    let body = json!({"upstreams": "a: b:", "search_policy": "newest"});
    let st = engine("union", body, &named).await.storage;
    assert_eq!(get(&st, "x").await, b"BB");
    let (entries, _) = list_all(&st, "", 0).await;
    assert_eq!(entries[1].size, 2);
}

#[tokio::test]
async fn combine_root_lists_the_configured_dirs_and_routes_paths() {
    let (p, v, named) = combined();
    v.mkdir("sub").await.unwrap();
    let body = json!({"upstreams": "videos=v:sub photos=p:"});
    let st = engine("combine", body, &named).await.storage;

    let (entries, pages) = list_all(&st, "", 1).await;
    assert_eq!(pages, 2);
    let got: Vec<(&str, EntryKind)> = entries.iter().map(|e| (e.name(), e.kind)).collect();
    assert_eq!(
        got,
        vec![("photos", EntryKind::Dir), ("videos", EntryKind::Dir)]
    );
    assert_eq!(st.stat("photos").await.unwrap().kind, EntryKind::Dir);

    put(&st, "photos/a.jpg", b"jpeg").await;
    put(&st, "videos/clips/b.mp4", b"mpeg4").await;
    assert_eq!(get(&p, "a.jpg").await, b"jpeg");
    assert_eq!(get(&v, "sub/clips/b.mp4").await, b"mpeg4");
    assert_eq!(
        st.stat("videos/clips/b.mp4").await.unwrap().path,
        "videos/clips/b.mp4"
    );
    let (entries, _) = list_all(&st, "videos", 0).await;
    assert_eq!(entries[0].path, "videos/clips");

    // The root is fixed.
    for err in [
        st.write("loose.txt", once("x")).await.unwrap_err(),
        st.mkdir("newdir").await.unwrap_err(),
        st.rmdir("photos").await.unwrap_err(),
        st.rename("photos", "pictures").await.unwrap_err(),
        st.write("other/x", once("x")).await.unwrap_err(),
    ] {
        assert_eq!(err.kind, ErrorKind::Permission, "{err}");
    }
    assert_eq!(
        st.write("photos", once("x")).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    st.mkdir("photos").await.unwrap();
    assert_eq!(st.stat("nope").await.unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(
        st.list("nope", None, 0).await.unwrap_err().kind,
        ErrorKind::NotFound
    );

    // Within one upstream: the upstream's rename. Across two: copy + delete
    // for files, refused for directories.
    st.rename("photos/a.jpg", "photos/b.jpg").await.unwrap();
    st.rename("photos/b.jpg", "videos/b.jpg").await.unwrap();
    assert!(!exists(&p, "b.jpg").await);
    assert_eq!(get(&v, "sub/b.jpg").await, b"jpeg");
    st.copy("videos/b.jpg", "photos/copy.jpg").await.unwrap();
    assert_eq!(get(&p, "copy.jpg").await, b"jpeg");
    let err = st.rename("videos/clips", "photos/clips").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported);
    assert!(err.message.contains("move its files"), "{}", err.message);
    assert_eq!(get(&v, "sub/clips/b.mp4").await, b"mpeg4");
    assert!(!st.capability().atomic_rename);
}

#[tokio::test]
async fn alias_passes_through_and_a_missing_backend_is_not_found() {
    let m = memory();
    m.mkdir("sub/dir").await.unwrap();
    let named = backends(&[("m", &m)]);
    let st = engine("alias", json!({"remote": "m:sub/dir"}), &named)
        .await
        .storage;
    put(&st, "f", b"through").await;
    assert_eq!(get(&m, "sub/dir/f").await, b"through");

    let err = try_engine("alias", json!({"remote": "nope:x"}), &named)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.message.contains("'nope'"), "{}", err.message);
    let err = try_engine("union", json!({"upstreams": "m: nope:"}), &named)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.message.contains("nope:"), "{}", err.message);
    let err = try_engine("combine", json!({"upstreams": "a=m: b=nope:"}), &named)
        .await
        .unwrap_err();
    assert!(err.message.contains("'b'"), "{}", err.message);
}

#[tokio::test]
async fn probes_name_the_failing_upstream() {
    let (a, b) = (memory(), memory());
    let named = backends(&[("a", &a), ("b", &b)]);
    // A path under a file can never exist: every probe names that upstream.
    b.write("blocker", berth_storage::once("x")).await.unwrap();

    let st = engine("alias", json!({"remote": "b:blocker/sub"}), &named)
        .await
        .storage;
    let err = st.probe().await.unwrap_err();
    assert!(
        err.message.contains("alias of 'b:blocker/sub'"),
        "{}",
        err.message
    );

    let st = engine("union", json!({"upstreams": "a: b:blocker/sub"}), &named)
        .await
        .storage;
    let err = st.probe().await.unwrap_err();
    assert!(err.message.contains("'b:blocker/sub'"), "{}", err.message);

    let body = json!({"upstreams": "good=a: bad=b:blocker/sub"});
    let st = engine("combine", body, &named).await.storage;
    let err = st.probe().await.unwrap_err();
    assert!(
        err.message.contains("'bad' (b:blocker/sub)"),
        "{}",
        err.message
    );

    // A path that does not exist yet is created by the probe.
    let st = engine("alias", json!({"remote": "b:missing"}), &named)
        .await
        .storage;
    st.probe().await.unwrap();
    assert!(b.stat("missing").await.is_ok());
}
