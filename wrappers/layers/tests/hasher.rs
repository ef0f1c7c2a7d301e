//! hasher: hashes computed while streaming, kept in a real SQLite database
//! across rebuilds, freshness, max_age, auto_size, refused hash types.

mod common;

use berth_db::Db;
use berth_layers::{DbHashStore, HashStore, Hasher, MemoryHashStore, StoredHashes};
use berth_storage::drivers::MemoryStorage;
use berth_storage::{ErrorKind, Storage};
use common::{config, ctx, get, put, Counting, Opener};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ID: &str = "00000000000000aa";

const HELLO: [(&str, &str); 5] = [
    ("md5", "b1946ac92492d2347c6235b4d2611184"),
    ("sha1", "f572d396fae9206628714fb2ce00f72e94f2258f"),
    (
        "sha256",
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
    ),
    (
        "sha512",
        "e7c22b994c59d9cf2b48e549b1e24666636045930d3da7c1acb299d1c3b7f931f94aae41edda2c2b207a36e10f8bcb8d45223e54878f5b316e7ce3b6bc019629",
    ),
    ("crc32", "363a3020"),
];

fn hello(types: &[&str]) -> Vec<(String, String)> {
    types
        .iter()
        .map(|t| {
            let (_, v) = HELLO.iter().find(|(n, _)| n == t).unwrap();
            (t.to_string(), v.to_string())
        })
        .collect()
}

async fn hasher(
    upstream: Arc<dyn Storage>,
    store: Arc<dyn HashStore>,
    body: Value,
) -> berth_storage::Result<Hasher> {
    let opener = Opener::with(upstream);
    let state = std::env::temp_dir();
    Hasher::build(&config("hasher", body), &ctx(&opener, &state), store).await
}

fn sqlite(dir: &tempfile::TempDir) -> Db {
    Db::connect(&dir.path().join("berth.db").display().to_string()).unwrap()
}

#[tokio::test]
async fn hashes_persist_in_sqlite_across_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let mem = Arc::new(MemoryStorage::new());
    let counting = Arc::new(Counting::new(mem.clone()));
    let body = json!({"remote": "m:", "hashes": "md5,sha1,sha256,sha512,crc32", "max_age": "off"});
    let all = ["md5", "sha1", "sha256", "sha512", "crc32"];
    {
        let st = hasher(
            counting.clone(),
            Arc::new(DbHashStore::new(sqlite(&dir))),
            body.clone(),
        )
        .await
        .unwrap();
        put(&st, "docs/hello.txt", b"hello\n").await;
        assert_eq!(st.hashes("docs/hello.txt").await.unwrap(), hello(&all));
    }
    // A new process: a new connection to the same file, a new hasher.
    let db = sqlite(&dir);
    let row = db.get_hashes(ID, "docs/hello.txt").unwrap().unwrap();
    assert_eq!(row.size, 6);
    assert!(row.hashes_json.contains(HELLO[0].1), "{}", row.hashes_json);
    let st = hasher(
        counting.clone(),
        Arc::new(DbHashStore::new(db.clone())),
        body,
    )
    .await
    .unwrap();
    counting.reset();
    assert_eq!(st.hashes("/docs//hello.txt").await.unwrap(), hello(&all));
    assert_eq!(
        Counting::count(&counting.reads),
        0,
        "served from the database"
    );

    // Renames move records (directories too); deletes drop them.
    st.rename("docs", "papers").await.unwrap();
    assert!(db.get_hashes(ID, "docs/hello.txt").unwrap().is_none());
    assert_eq!(st.hashes("papers/hello.txt").await.unwrap(), hello(&all));
    st.rename("papers/hello.txt", "hi.txt").await.unwrap();
    assert_eq!(st.hashes("hi.txt").await.unwrap(), hello(&all));
    st.delete("hi.txt").await.unwrap();
    assert!(db.get_hashes(ID, "hi.txt").unwrap().is_none());
    assert_eq!(
        st.hashes("hi.txt").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn changed_files_are_not_trusted() {
    let mem = Arc::new(MemoryStorage::new());
    let store = Arc::new(MemoryHashStore::new());
    let st = hasher(
        mem.clone(),
        store.clone(),
        json!({"remote": "m:", "max_age": -1}),
    )
    .await
    .unwrap();
    put(&st, "f", b"hello\n").await;
    assert_eq!(st.hashes("f").await.unwrap(), hello(&["md5", "sha1"]));
    // Changed behind the hasher's back: the record no longer matches.
    tokio::time::sleep(Duration::from_millis(5)).await;
    put(&*mem, "f", b"HELLO\n").await;
    assert_eq!(st.hashes("f").await.unwrap(), vec![]);
    // A full read through the hasher records the new hashes.
    assert_eq!(get(&st, "f", None).await, b"HELLO\n");
    let got = st.hashes("f").await.unwrap();
    assert_eq!(got.len(), 2);
    assert_ne!(got, hello(&["md5", "sha1"]));
    // A partial read does not.
    put(&*mem, "g", b"hello\n").await;
    get(&st, "g", Some((0, 3))).await;
    assert_eq!(st.hashes("g").await.unwrap(), vec![]);
    assert_eq!(
        st.hashes("").await.unwrap_err().kind,
        ErrorKind::Conflict,
        "a directory has no hashes"
    );
}

#[tokio::test]
async fn auto_size_hashes_small_files_on_demand() {
    let mem = Arc::new(MemoryStorage::new());
    put(&*mem, "small", b"hello\n").await;
    put(&*mem, "big", &[7; 100]).await;
    let store = Arc::new(MemoryHashStore::new());
    let st = hasher(
        mem.clone(),
        store.clone(),
        json!({"remote": "m:", "hashes": "sha256", "max_age": 3600, "auto_size": "50B"}),
    )
    .await
    .unwrap();
    assert_eq!(st.hashes("small").await.unwrap(), hello(&["sha256"]));
    assert!(store.get(ID, "small").await.unwrap().is_some(), "kept");
    assert_eq!(st.hashes("big").await.unwrap(), vec![]);
}

#[tokio::test]
async fn max_age() {
    let mem = Arc::new(MemoryStorage::new());
    // 0 keeps nothing, but small files can still be hashed on demand.
    let store = Arc::new(MemoryHashStore::new());
    let st = hasher(
        mem.clone(),
        store.clone(),
        json!({"remote": "m:", "hashes": "md5", "auto_size": "1K"}),
    )
    .await
    .unwrap();
    put(&st, "f", b"hello\n").await;
    get(&st, "f", None).await;
    assert_eq!(store.get(ID, "f").await.unwrap(), None);
    assert_eq!(st.hashes("f").await.unwrap(), hello(&["md5"]));
    assert_eq!(store.get(ID, "f").await.unwrap(), None);

    // N seconds: older records are ignored.
    let st = hasher(
        mem.clone(),
        store.clone(),
        json!({"remote": "m:", "hashes": "md5", "max_age": "1h"}),
    )
    .await
    .unwrap();
    let entry = mem.stat("f").await.unwrap();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mtime_ms = entry
        .modified
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let record = |age_ms: i64| StoredHashes {
        size: 6,
        mtime_ms: Some(mtime_ms),
        hashes: BTreeMap::from([("md5".to_string(), HELLO[0].1.to_string())]),
        updated_at_ms: now_ms - age_ms,
    };
    store.put(ID, "f", &record(3_000_000)).await.unwrap();
    assert_eq!(st.hashes("f").await.unwrap(), hello(&["md5"]));
    store.put(ID, "f", &record(4_000_000)).await.unwrap();
    assert_eq!(st.hashes("f").await.unwrap(), vec![]);
}

#[tokio::test]
async fn copy_and_set_modified_keep_records() {
    let mem = Arc::new(MemoryStorage::new());
    let store = Arc::new(MemoryHashStore::new());
    let st = hasher(
        mem.clone(),
        store.clone(),
        json!({"remote": "m:", "max_age": "off"}),
    )
    .await
    .unwrap();
    put(&st, "a", b"hello\n").await;
    st.copy("a", "b").await.unwrap();
    assert_eq!(st.hashes("b").await.unwrap(), hello(&["md5", "sha1"]));
    st.set_modified("a", UNIX_EPOCH + Duration::from_secs(1_000_000))
        .await
        .unwrap();
    assert_eq!(st.hashes("a").await.unwrap(), hello(&["md5", "sha1"]));
    let record = store.get(ID, "a").await.unwrap().unwrap();
    assert_eq!(record.mtime_ms, Some(1_000_000_000));
}

#[tokio::test]
async fn unsupported_hash_types_are_refused() {
    let mem: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    for kind in [
        "blake3",
        "whirlpool",
        "xxh3",
        "xxh128",
        "dropbox",
        "hidrive",
        "mailru",
        "quickxor",
    ] {
        let e = hasher(
            mem.clone(),
            Arc::new(MemoryHashStore::new()),
            json!({"remote": "m:", "hashes": format!("md5,{kind}")}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        assert_eq!(e.message, format!("Unsupported hash type: {kind}"));
    }
    // The spec's own example request.
    let e = hasher(
        mem.clone(),
        Arc::new(MemoryHashStore::new()),
        json!({"remote": "s3-prod:data", "hashes": "md5,sha1,blake3", "max_age": 86400}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message, "Unsupported hash type: blake3");
}
