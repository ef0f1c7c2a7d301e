//! cache: hits stay local, eviction, invalidation, persistence across
//! rebuilds, refused options.

mod common;

use berth_layers::Cache;
use berth_storage::drivers::MemoryStorage;
use berth_storage::{ErrorKind, Storage};
use common::{config, ctx, get, pattern, put, Counting, Opener};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KIB: u64 = 1024;

async fn cache(
    upstream: Arc<dyn Storage>,
    state: &Path,
    body: Value,
) -> berth_storage::Result<Cache> {
    let opener = Opener::with(upstream);
    Cache::build(&config("cache", body), &ctx(&opener, state)).await
}

/// A memory store with `f` (1 MiB + 5), counted.
async fn upstream() -> (Arc<Counting>, Vec<u8>) {
    let mem = Arc::new(MemoryStorage::new());
    let data = pattern(1024 * 1024 + 5);
    put(&*mem, "dir/f", &data).await;
    (Arc::new(Counting::new(mem)), data)
}

fn reads(c: &Counting) -> usize {
    Counting::count(&c.reads)
}

#[tokio::test]
async fn hits_do_not_touch_the_upstream() {
    let (up, data) = upstream().await;
    let state = tempfile::tempdir().unwrap();
    let st = cache(
        up.clone(),
        state.path(),
        json!({"remote": "m:", "chunk_size": "64K"}),
    )
    .await
    .unwrap();
    assert!(get(&st, "dir/f", None).await == data);
    assert_eq!(reads(&up), 17, "one fetch per piece");
    assert_eq!(st.cached_bytes(), data.len() as u64);
    up.reset();
    assert!(get(&st, "dir/f", None).await == data);
    assert!(get(&st, "dir/f", Some((65_000, 200_000))).await == data[65_000..265_000]);
    assert_eq!(st.stat("dir/f").await.unwrap().size, data.len() as u64);
    st.list("dir", None, 0).await.unwrap();
    st.list("dir", None, 0).await.unwrap();
    assert_eq!(
        (
            reads(&up),
            Counting::count(&up.stats),
            Counting::count(&up.lists)
        ),
        (0, 0, 1),
        "reads, stats and the second listing come from the cache"
    );
}

#[tokio::test]
async fn ranges_fetch_only_their_pieces() {
    let (up, data) = upstream().await;
    let state = tempfile::tempdir().unwrap();
    let st = cache(
        up.clone(),
        state.path(),
        json!({"remote": "m:", "chunk_size": "64K"}),
    )
    .await
    .unwrap();
    // Bytes 200 000..200 010 lie in piece 3.
    assert!(get(&st, "dir/f", Some((200_000, 10))).await == data[200_000..200_010]);
    assert_eq!((reads(&up), st.cached_bytes()), (1, 64 * KIB));
    // Across a piece boundary: pieces 0 and 1.
    assert!(get(&st, "dir/f", Some((65_530, 10))).await == data[65_530..65_540]);
    assert_eq!(reads(&up), 3);
    assert_eq!(get(&st, "dir/f", Some((5_000_000, 10))).await, b"");
    assert_eq!(reads(&up), 3);
}

#[tokio::test]
async fn eviction_keeps_the_total_under_the_cap() {
    let (up, data) = upstream().await;
    let state = tempfile::tempdir().unwrap();
    let body = json!({
        "remote": "m:",
        "chunk_size": "64K",
        "chunk_total_size": "256K",
        "chunk_clean_interval": 0,
    });
    let st = cache(up.clone(), state.path(), body).await.unwrap();
    assert!(get(&st, "dir/f", None).await == data);
    assert!(st.cached_bytes() <= 256 * KIB, "{}", st.cached_bytes());
    // The newest pieces stayed, the oldest went.
    up.reset();
    get(&st, "dir/f", Some((data.len() as u64 - 10, 10))).await;
    assert_eq!(reads(&up), 0);
    get(&st, "dir/f", Some((0, 10))).await;
    assert_eq!(reads(&up), 1);
    // On disk too.
    let on_disk: u64 = walk(&state.path().join("cache/files"))
        .iter()
        .filter(|p| p.file_name().unwrap() != "meta.json")
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert_eq!(on_disk, st.cached_bytes());

    // With a long clean interval the cap is enforced only once per interval.
    let state = tempfile::tempdir().unwrap();
    let body = json!({
        "remote": "m:",
        "chunk_size": "64K",
        "chunk_total_size": "256K",
        "chunk_clean_interval": 3600,
    });
    let st = cache(up.clone(), state.path(), body).await.unwrap();
    get(&st, "dir/f", None).await;
    assert!(st.cached_bytes() > 256 * KIB);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn changes_through_the_cache_invalidate_at_once() {
    let (up, data) = upstream().await;
    let state = tempfile::tempdir().unwrap();
    let st = cache(
        up.clone(),
        state.path(),
        json!({"remote": "m:", "chunk_size": "64K"}),
    )
    .await
    .unwrap();
    get(&st, "dir/f", None).await;
    assert_eq!(st.list("dir", None, 0).await.unwrap().entries.len(), 1);
    put(&st, "dir/f", b"new content").await;
    assert_eq!(get(&st, "dir/f", None).await, b"new content");
    assert_eq!(st.stat("dir/f").await.unwrap().size, 11);
    put(&st, "dir/g", b"g").await;
    assert_eq!(st.list("dir", None, 0).await.unwrap().entries.len(), 2);
    st.rename("dir", "moved").await.unwrap();
    assert_eq!(
        st.stat("dir/f").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(get(&st, "moved/f", None).await, b"new content");
    st.delete("moved/f").await.unwrap();
    assert_eq!(
        st.stat("moved/f").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(st.cached_bytes(), 0);
    drop(data);
}

#[tokio::test]
async fn writes_are_cached_when_asked() {
    let mem = Arc::new(MemoryStorage::new());
    let up = Arc::new(Counting::new(mem));
    let state = tempfile::tempdir().unwrap();
    let st = cache(
        up.clone(),
        state.path(),
        json!({"remote": "m:", "chunk_size": "64K", "writes": true}),
    )
    .await
    .unwrap();
    let data = pattern(300_000);
    st.write("w", common::chunked(&data, 10_000)).await.unwrap();
    assert_eq!(st.cached_bytes(), 300_000);
    up.reset();
    assert!(get(&st, "w", None).await == data);
    assert_eq!(reads(&up), 0, "read back from disk");
    // A failed upload caches nothing and leaves no temp files.
    let failing = berth_storage::testkit::failing(&pattern(100_000));
    assert!(st.write("broken", failing).await.is_err());
    assert_eq!(st.cached_bytes(), 300_000);
    assert!(walk(&state.path().join("cache/tmp")).is_empty());
}

#[tokio::test]
async fn the_cache_survives_a_rebuild_unless_purged() {
    let (up, data) = upstream().await;
    let state = tempfile::tempdir().unwrap();
    let body = json!({"remote": "m:", "chunk_size": "64K"});
    {
        let st = cache(up.clone(), state.path(), body.clone()).await.unwrap();
        get(&st, "dir/f", None).await;
    }
    let st = cache(up.clone(), state.path(), body.clone()).await.unwrap();
    assert_eq!(st.cached_bytes(), data.len() as u64);
    up.reset();
    assert!(get(&st, "dir/f", None).await == data);
    assert_eq!(reads(&up), 0);
    // Another chunk size cannot use the pieces.
    let other = json!({"remote": "m:", "chunk_size": "128K"});
    let st = cache(up.clone(), state.path(), other).await.unwrap();
    assert_eq!(st.cached_bytes(), 0);
    get(&st, "dir/f", None).await;
    // db_purge starts empty.
    let purge = json!({"remote": "m:", "chunk_size": "128K", "db_purge": true});
    let st = cache(up.clone(), state.path(), purge).await.unwrap();
    assert_eq!(st.cached_bytes(), 0);
}

#[tokio::test]
async fn outside_changes_and_damaged_pieces() {
    let (up, data) = upstream().await;
    let state = tempfile::tempdir().unwrap();
    let st = cache(
        up.clone(),
        state.path(),
        json!({"remote": "m:", "chunk_size": "64K", "info_age": 0}),
    )
    .await
    .unwrap();
    get(&st, "dir/f", None).await;
    // A piece file damaged on disk is fetched again.
    let piece = walk(&state.path().join("cache/files"))
        .into_iter()
        .find(|p| p.file_name().unwrap() == "3")
        .unwrap();
    std::fs::write(&piece, b"short").unwrap();
    up.reset();
    assert!(get(&st, "dir/f", None).await == data);
    assert_eq!(reads(&up), 1);
    // With info_age 0 a change behind the cache's back is seen at once.
    tokio::time::sleep(Duration::from_millis(5)).await;
    up.write("dir/f", berth_storage::once("replaced"))
        .await
        .unwrap();
    assert_eq!(get(&st, "dir/f", None).await, b"replaced");
}

#[tokio::test]
async fn concurrent_reads_share_one_fetch() {
    let mem = Arc::new(MemoryStorage::new());
    put(&*mem, "f", &pattern(1000)).await;
    for (retries, at_most) in [(10, 1), (0, 4)] {
        let up = Arc::new(Counting::new(mem.clone()).with_read_delay(Duration::from_millis(200)));
        let state = tempfile::tempdir().unwrap();
        let st = Arc::new(
            cache(
                up.clone(),
                state.path(),
                json!({"remote": "m:", "read_retries": retries}),
            )
            .await
            .unwrap(),
        );
        let reads_done = futures::future::join_all((0..4).map(|_| {
            let st = st.clone();
            async move { get(&*st, "f", None).await }
        }))
        .await;
        assert!(reads_done.iter().all(|d| *d == pattern(1000)));
        let n = reads(&up);
        assert!(
            n >= 1 && n <= at_most,
            "read_retries {retries}: {n} fetches"
        );
        if retries > 0 {
            assert_eq!(n, 1);
        }
    }
}

#[tokio::test]
async fn rps_spaces_upstream_requests() {
    let (up, _) = upstream().await;
    let state = tempfile::tempdir().unwrap();
    let st = cache(
        up.clone(),
        state.path(),
        json!({"remote": "m:", "rps": 20, "info_age": 0}),
    )
    .await
    .unwrap();
    let started = Instant::now();
    for _ in 0..5 {
        st.stat("dir/f").await.unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unsupported_options_are_refused() {
    let mem: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let state = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("plex_url", json!("http://plex:32400")),
        ("plex_username", json!("u")),
        ("plex_password", json!("p")),
        ("plex_token", json!("t")),
        ("plex_insecure", json!("true")),
    ] {
        let mut body = json!({"remote": "m:"});
        body[key] = value;
        let e = cache(mem.clone(), state.path(), body).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        assert!(
            e.message.starts_with("Plex integration is not supported"),
            "{e}"
        );
    }
    for (key, value) in [
        ("chunk_path", json!("/var/tmp/chunks")),
        ("db_path", json!("/var/tmp/db")),
        ("tmp_upload_path", json!("/var/tmp/up")),
        ("tmp_wait_time", json!(30)),
        ("db_wait_time", json!(0)),
        ("workers", json!(0)),
        ("read_retries", json!(-1)),
        ("chunk_size", json!("0")),
    ] {
        let mut body = json!({"remote": "m:"});
        body[key] = value;
        let e = cache(mem.clone(), state.path(), body).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidConfig, "{key}");
        assert!(e.message.contains(key), "{key}: {e}");
    }
    // The spec defaults are fine, and so is chunk_no_memory.
    let body = json!({
        "remote": "m:",
        "chunk_path": "/home/user/.cache/hoody-vfs/cache-backend",
        "db_path": "/home/user/.cache/hoody-vfs/cache-backend",
        "chunk_no_memory": true,
    });
    cache(mem, state.path(), body).await.unwrap();
}

#[tokio::test]
async fn an_unusable_state_directory_fails_the_build() {
    let mem: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let e = cache(mem, &file, json!({"remote": "m:"}))
        .await
        .unwrap_err();
    assert!(e.message.starts_with("Failed to open cache DB: "), "{e}");
}
