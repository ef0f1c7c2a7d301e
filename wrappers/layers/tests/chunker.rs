//! chunker: the on-upstream layout (names, metadata, hash types,
//! transactions), compatibility with rclone's layout, damaged files.

mod common;

use berth_layers::Chunker;
use berth_storage::drivers::MemoryStorage;
use berth_storage::{ErrorKind, Storage};
use common::{config, ctx, get, names, pattern, put, Counting, Opener};
use md5::{Digest, Md5};
use serde_json::{json, Value};
use sha1::Sha1;
use std::sync::Arc;

async fn build_over(upstream: Arc<dyn Storage>, body: Value) -> berth_storage::Result<Chunker> {
    let opener = Opener::with(upstream);
    let state = std::env::temp_dir();
    Chunker::build(&config("chunker", body), &ctx(&opener, &state)).await
}

/// A chunker over a fresh memory store, and the store.
async fn chunker(body: Value) -> (Chunker, Arc<MemoryStorage>) {
    let mem = Arc::new(MemoryStorage::new());
    let st = build_over(mem.clone(), body).await.expect("build chunker");
    (st, mem)
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

async fn text(st: &dyn Storage, path: &str) -> String {
    String::from_utf8(get(st, path, None).await).unwrap()
}

#[tokio::test]
async fn layout_matches_rclone() {
    let (st, mem) = chunker(json!({"remote": "m:", "chunk_size": "1000B"})).await;
    let data = pattern(2500);
    let entry = put(&st, "d/big.bin", &data).await;
    assert_eq!(entry.size, 2500);
    put(&st, "d/small.txt", b"hello\n").await;
    assert_eq!(
        names(&*mem, "d").await,
        vec![
            "big.bin",
            "big.bin.hoody-vfs_chunk.001",
            "big.bin.hoody-vfs_chunk.002",
            "big.bin.hoody-vfs_chunk.003",
            "small.txt",
        ]
    );
    assert_eq!(
        text(&*mem, "d/big.bin").await,
        format!(
            r#"{{"ver":1,"size":2500,"nchunks":3,"md5":"{}"}}"#,
            md5_hex(&data)
        )
    );
    for (n, range) in [(1, 0..1000), (2, 1000..2000), (3, 2000..2500)] {
        let chunk = get(&*mem, &format!("d/big.bin.hoody-vfs_chunk.00{n}"), None).await;
        assert!(chunk == data[range], "chunk {n}");
    }
    assert_eq!(get(&*mem, "d/small.txt", None).await, b"hello\n");

    // Seen through the chunker.
    assert_eq!(names(&st, "d").await, vec!["big.bin", "small.txt"]);
    let page = st.list("d", None, 0).await.unwrap();
    assert_eq!(page.entries[0].size, 2500);
    assert_eq!(st.stat("d/big.bin").await.unwrap().size, 2500);
    assert!(get(&st, "d/big.bin", None).await == data);
    for (offset, len) in [
        (900, 200),
        (999, 1002),
        (0, 1000),
        (1000, 1000),
        (2400, 500),
        (2500, 1),
    ] {
        let start = (offset as usize).min(2500);
        let end = (start + len as usize).min(2500);
        assert!(
            get(&st, "d/big.bin", Some((offset, len))).await == data[start..end],
            "range {offset}+{len}"
        );
    }
}

#[tokio::test]
async fn reads_what_rclone_wrote() {
    // The layout rclone 1.75 made of a 2500-byte file with chunk_size 1000B,
    // once with rename transactions and once with norename.
    let mem = Arc::new(MemoryStorage::new());
    let data = pattern(2500);
    let md5 = md5_hex(&data);
    put(
        &*mem,
        "r/big.bin",
        format!(r#"{{"ver":1,"size":2500,"nchunks":3,"md5":"{md5}"}}"#).as_bytes(),
    )
    .await;
    put(
        &*mem,
        "r/nr.bin",
        format!(r#"{{"ver":2,"size":2500,"nchunks":3,"md5":"{md5}","txn":"wzrm45"}}"#).as_bytes(),
    )
    .await;
    for (n, range) in [(1, 0..1000), (2, 1000..2000), (3, 2000..2500)] {
        put(
            &*mem,
            &format!("r/big.bin.rclone_chunk.00{n}"),
            &data[range.clone()],
        )
        .await;
        put(
            &*mem,
            &format!("r/nr.bin.rclone_chunk.00{n}_wzrm45"),
            &data[range],
        )
        .await;
    }
    // Leftovers of an interrupted upload and a control chunk: ignored.
    put(&*mem, "r/big.bin.rclone_chunk.001_ab12cd", b"junk").await;
    put(&*mem, "r/big.bin.rclone_chunk._meta", b"junk").await;
    put(&*mem, "r/nr.bin.rclone_chunk.004_zzzz", b"junk").await;
    let st = build_over(
        mem.clone(),
        json!({"remote": "m:r", "name_format": "*.rclone_chunk.###"}),
    )
    .await
    .unwrap();
    assert_eq!(names(&st, "").await, vec!["big.bin", "nr.bin"]);
    for path in ["big.bin", "nr.bin"] {
        assert_eq!(st.stat(path).await.unwrap().size, 2500);
        assert!(get(&st, path, None).await == data, "{path}");
        assert!(get(&st, path, Some((999, 2))).await == data[999..1001]);
    }
}

#[tokio::test]
async fn hash_types() {
    let data = pattern(2500);
    for (hash_type, field) in [
        ("md5", Some(("md5", md5_hex(&data)))),
        ("sha1", Some(("sha1", sha1_hex(&data)))),
        ("md5all", Some(("md5", md5_hex(&data)))),
        ("none", None),
        // Streamed uploads carry no source hash: quick modes record none.
        ("md5quick", None),
        ("sha1quick", None),
    ] {
        let (st, mem) =
            chunker(json!({"remote": "m:", "chunk_size": "1000B", "hash_type": hash_type})).await;
        put(&st, "big.bin", &data).await;
        let hash = field
            .map(|(name, value)| format!(r#","{name}":"{value}""#))
            .unwrap_or_default();
        assert_eq!(
            text(&*mem, "big.bin").await,
            format!(r#"{{"ver":1,"size":2500,"nchunks":3{hash}}}"#),
            "{hash_type}"
        );
    }

    // The "all" modes give small files metadata too, even empty ones.
    let (st, mem) =
        chunker(json!({"remote": "m:", "chunk_size": "1000B", "hash_type": "sha1all"})).await;
    put(&st, "s.txt", b"hello\n").await;
    put(&st, "empty", b"").await;
    assert_eq!(
        text(&*mem, "s.txt").await,
        r#"{"ver":1,"size":6,"nchunks":1,"sha1":"f572d396fae9206628714fb2ce00f72e94f2258f"}"#
    );
    assert_eq!(
        get(&*mem, "s.txt.hoody-vfs_chunk.001", None).await,
        b"hello\n"
    );
    assert_eq!(
        text(&*mem, "empty").await,
        r#"{"ver":1,"size":0,"nchunks":1,"sha1":"da39a3ee5e6b4b0d3255bfef95601890afd80709"}"#
    );
    assert_eq!(names(&st, "").await, vec!["empty", "s.txt"]);
    assert_eq!(get(&st, "s.txt", None).await, b"hello\n");
    assert_eq!(st.stat("empty").await.unwrap().size, 0);
}

#[tokio::test]
async fn norename_transactions() {
    let (st, mem) =
        chunker(json!({"remote": "m:", "chunk_size": "1000B", "transactions": "norename"})).await;
    let data = pattern(2500);
    put(&st, "big.bin", &data).await;
    let listed = names(&*mem, "").await;
    assert_eq!(listed.len(), 4, "{listed:?}");
    let txn = listed[1].rsplit_once('_').unwrap().1.to_string();
    assert_eq!(txn.len(), 6);
    assert!(txn
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
    for (n, name) in listed[1..].iter().enumerate() {
        assert_eq!(name, &format!("big.bin.hoody-vfs_chunk.00{}_{txn}", n + 1));
    }
    assert_eq!(
        text(&*mem, "big.bin").await,
        format!(
            r#"{{"ver":2,"size":2500,"nchunks":3,"md5":"{}","txn":"{txn}"}}"#,
            md5_hex(&data)
        )
    );
    assert!(get(&st, "big.bin", None).await == data);

    // Overwriting switches to a new transaction and removes the old chunks.
    let bigger = pattern(4200);
    put(&st, "big.bin", &bigger).await;
    let listed = names(&*mem, "").await;
    assert_eq!(listed.len(), 6, "{listed:?}");
    assert!(listed[1..].iter().all(|n| !n.ends_with(&txn)));
    assert!(get(&st, "big.bin", None).await == bigger);
    assert_eq!(names(&st, "").await, vec!["big.bin"]);
}

#[tokio::test]
async fn auto_transactions_follow_the_upstream() {
    let data = pattern(2500);
    let body = json!({"remote": "m:", "chunk_size": "1000B", "transactions": "auto"});
    // Atomic renames: rename transactions.
    let mem = Arc::new(MemoryStorage::new());
    let st = build_over(mem.clone(), body.clone()).await.unwrap();
    put(&st, "f", &data).await;
    assert!(names(&*mem, "")
        .await
        .contains(&"f.hoody-vfs_chunk.001".to_string()));
    // An object store without atomic renames: norename.
    let mem = Arc::new(MemoryStorage::new());
    let counting = Arc::new(Counting::new(mem.clone()).without_atomic_rename());
    let st = build_over(counting, body).await.unwrap();
    put(&st, "f", &data).await;
    assert!(text(&*mem, "f").await.contains(r#""ver":2"#));
    assert!(get(&st, "f", None).await == data);
}

#[tokio::test]
async fn custom_names_from_zero() {
    let (st, mem) = chunker(json!({
        "remote": "m:",
        "chunk_size": "1000B",
        "name_format": "*-##.part",
        "start_from": 0,
    }))
    .await;
    put(&st, "big.bin", &pattern(2500)).await;
    assert_eq!(
        names(&*mem, "").await,
        vec![
            "big.bin",
            "big.bin-00.part",
            "big.bin-01.part",
            "big.bin-02.part"
        ]
    );
}

#[tokio::test]
async fn without_metadata_files_are_their_chunks() {
    let (st, mem) = chunker(json!({
        "remote": "m:",
        "chunk_size": "1000B",
        "meta_format": "none",
        "hash_type": "none",
    }))
    .await;
    put(&st, "small.txt", b"hello\n").await;
    put(&st, "big.bin", &pattern(2500)).await;
    assert_eq!(
        names(&*mem, "").await,
        vec![
            "big.bin.hoody-vfs_chunk.001",
            "big.bin.hoody-vfs_chunk.002",
            "big.bin.hoody-vfs_chunk.003",
            "small.txt.hoody-vfs_chunk.001",
        ]
    );
    assert_eq!(names(&st, "").await, vec!["big.bin", "small.txt"]);
    assert_eq!(st.stat("big.bin").await.unwrap().size, 2500);
    assert_eq!(get(&st, "small.txt", None).await, b"hello\n");
    st.delete("big.bin").await.unwrap();
    assert_eq!(
        names(&*mem, "").await,
        vec!["small.txt.hoody-vfs_chunk.001"]
    );
}

#[tokio::test]
async fn missing_chunks_and_fail_hard() {
    let (st, mem) = chunker(json!({"remote": "m:", "chunk_size": "1000B"})).await;
    put(&st, "d/big.bin", &pattern(2500)).await;
    put(&st, "d/ok.txt", b"ok").await;
    mem.delete("d/big.bin.hoody-vfs_chunk.002").await.unwrap();

    // fail_hard false: the damaged file is skipped in listings...
    assert_eq!(names(&st, "d").await, vec!["ok.txt"]);
    // ... and named in errors when used directly.
    let e = st.stat("d/big.bin").await.unwrap_err();
    assert!(e.message.contains("chunk number 2 is missing"), "{e}");
    assert!(st.read("d/big.bin", None).await.is_err());

    // fail_hard true: the listing fails.
    let hard = build_over(
        mem.clone(),
        json!({"remote": "m:", "chunk_size": "1000B", "fail_hard": true}),
    )
    .await
    .unwrap();
    let e = hard.list("d", None, 0).await.unwrap_err();
    assert!(
        e.message.contains("d/big.bin") && e.message.contains("damaged"),
        "{e}"
    );

    // Metadata that disagrees with the chunks is damage too.
    put(&*mem, "d/big.bin.hoody-vfs_chunk.002", &[0; 1000]).await;
    assert_eq!(names(&hard, "d").await, vec!["big.bin", "ok.txt"]);
    put(&*mem, "d/big.bin", br#"{"ver":1,"size":2500,"nchunks":4}"#).await;
    let e = hard.list("d", None, 0).await.unwrap_err();
    assert!(e.message.contains("metadata says"), "{e}");

    // A damaged file can still be deleted, chunks and all.
    st.delete("d/big.bin").await.unwrap();
    assert_eq!(names(&*mem, "d").await, vec!["ok.txt"]);
}

#[tokio::test]
async fn content_that_looks_like_metadata() {
    let (st, mem) = chunker(json!({"remote": "m:", "chunk_size": "1000B"})).await;
    let fake = br#"{"ver":1,"size":5,"nchunks":1}"#;
    put(&st, "fake.json", fake).await;
    // Stored with real metadata around it, so it reads back unchanged.
    assert_eq!(
        get(&*mem, "fake.json.hoody-vfs_chunk.001", None).await,
        fake
    );
    assert_eq!(get(&st, "fake.json", None).await, fake);
    assert_eq!(st.stat("fake.json").await.unwrap().size, fake.len() as u64);
    // A small file that is not metadata stays plain even with a stray chunk.
    put(&*mem, "plain.txt", b"{not metadata}").await;
    put(&*mem, "plain.txt.hoody-vfs_chunk.001", b"stray").await;
    assert_eq!(get(&st, "plain.txt", None).await, b"{not metadata}");
    assert_eq!(names(&st, "").await, vec!["fake.json", "plain.txt"]);
}

#[tokio::test]
async fn chunk_names_are_reserved() {
    let (st, mem) = chunker(json!({"remote": "m:", "chunk_size": "1000B"})).await;
    put(&st, "big.bin", &pattern(2500)).await;
    let chunk = "big.bin.hoody-vfs_chunk.001";
    assert_eq!(mem.stat(chunk).await.unwrap().size, 1000);
    assert_eq!(st.stat(chunk).await.unwrap_err().kind, ErrorKind::NotFound);
    for result in [
        st.write("x.hoody-vfs_chunk.001", berth_storage::once("no"))
            .await
            .map(|_| ()),
        st.mkdir("x.hoody-vfs_chunk.002").await,
        st.rename("big.bin", "y.hoody-vfs_chunk.003").await,
        st.copy("big.bin", "y.hoody-vfs_chunk.004_abcd").await,
    ] {
        assert_eq!(result.unwrap_err().kind, ErrorKind::Permission);
    }
}

#[tokio::test]
async fn replacing_files_leaves_no_stale_chunks() {
    let (st, mem) = chunker(json!({"remote": "m:", "chunk_size": "1000B"})).await;
    let chunks = |n: usize| -> Vec<String> {
        let mut v = vec!["f".to_string()];
        v.extend((1..=n).map(|i| format!("f.hoody-vfs_chunk.00{i}")));
        v
    };
    put(&st, "f", &pattern(4500)).await;
    assert_eq!(names(&*mem, "").await, chunks(5));
    put(&st, "f", &pattern(1500)).await;
    assert_eq!(names(&*mem, "").await, chunks(2));
    put(&st, "f", b"small").await;
    assert_eq!(names(&*mem, "").await, vec!["f"]);
    put(&st, "f", &pattern(2100)).await;
    assert_eq!(names(&*mem, "").await, chunks(3));
    assert!(get(&st, "f", None).await == pattern(2100));
}

#[tokio::test]
async fn rename_and_copy_move_every_chunk() {
    let (st, mem) = chunker(json!({"remote": "m:", "chunk_size": "1000B"})).await;
    let data = pattern(2500);
    put(&st, "d/big.bin", &data).await;
    st.rename("d/big.bin", "e/moved.bin").await.unwrap();
    assert_eq!(names(&*mem, "d").await, Vec::<String>::new());
    assert_eq!(
        names(&*mem, "e").await,
        vec![
            "moved.bin",
            "moved.bin.hoody-vfs_chunk.001",
            "moved.bin.hoody-vfs_chunk.002",
            "moved.bin.hoody-vfs_chunk.003",
        ]
    );
    assert!(get(&st, "e/moved.bin", None).await == data);

    // Copy onto a composite file with more chunks: the extra ones go.
    put(&st, "e/target.bin", &pattern(4500)).await;
    st.copy("e/moved.bin", "e/target.bin").await.unwrap();
    assert!(get(&st, "e/target.bin", None).await == data);
    assert!(get(&st, "e/moved.bin", None).await == data);
    assert_eq!(names(&*mem, "e").await.len(), 8);
    assert_eq!(names(&st, "e").await, vec!["moved.bin", "target.bin"]);
}

#[tokio::test]
async fn invalid_configs_are_refused() {
    let mem: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    for (body, needle) in [
        (
            json!({"remote": "m:", "meta_format": "none"}),
            "hash_type 'md5' requires meta_format simplejson",
        ),
        (
            json!({"remote": "m:", "meta_format": "none", "hash_type": "none", "transactions": "norename"}),
            "norename",
        ),
        (json!({"remote": "m:", "chunk_size": "0"}), "chunk_size"),
        (json!({"remote": "m:", "name_format": "#*"}), "name_format"),
        (
            json!({"remote": "m:", "name_format": "*.#.#"}),
            "name_format",
        ),
        (json!({"remote": "m:", "start_from": -1}), "start_from"),
    ] {
        let e = build_over(mem.clone(), body.clone()).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidConfig, "{body}");
        assert!(e.message.contains(needle), "{body}: {e}");
    }
    let e = build_over(mem, json!({"remote": "nope:"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
}

/// Every page of `dir` with `limit`, checking order.
async fn paged(st: &dyn Storage, dir: &str, limit: usize) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    let mut cursor = None;
    loop {
        let page = st.list(dir, cursor, limit).await.unwrap();
        assert!(page.entries.len() <= limit);
        out.extend(page.entries.iter().map(|e| (e.name().to_string(), e.size)));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let names: Vec<&String> = out.iter().map(|(n, _)| n).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted);
    out
}

#[tokio::test]
async fn listings_page_across_upstream_pages() {
    // 600 composite files of 3 chunks: 2400 upstream entries, so the
    // chunks of one file may sit on the upstream's next page.
    let (st, mem) = chunker(json!({"remote": "m:", "chunk_size": "10B"})).await;
    futures::future::join_all((0..600).map(|i| {
        let st = &st;
        async move { put(st, &format!("f{i:04}"), &pattern(25 + i % 3)).await }
    }))
    .await;
    assert_eq!(names(&*mem, "").await.len(), 2400);
    for limit in [1, 7, 1000] {
        let got = paged(&st, "", limit).await;
        assert_eq!(got.len(), 600, "limit {limit}");
        for (i, (name, size)) in got.iter().enumerate() {
            assert_eq!(
                (name.as_str(), *size),
                (format!("f{i:04}").as_str(), 25 + i as u64 % 3)
            );
        }
    }
}

#[tokio::test]
async fn without_metadata_names_sort_before_their_chunks() {
    // Chunks of "a" sort after those of "a+c" and "a-b" ('.' > '-' > '+'),
    // yet "a" must be listed first.
    let (st, mem) = chunker(json!({
        "remote": "m:",
        "chunk_size": "10B",
        "meta_format": "none",
        "hash_type": "none",
    }))
    .await;
    for name in ["a.z", "a-b", "a", "a+c", "b"] {
        put(&st, name, name.as_bytes()).await;
    }
    assert_eq!(names(&*mem, "").await[2], "a.hoody-vfs_chunk.001");
    for limit in [1, 2, 10] {
        let got: Vec<String> = paged(&st, "", limit)
            .await
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(got, vec!["a", "a+c", "a-b", "a.z", "b"], "limit {limit}");
    }
}
