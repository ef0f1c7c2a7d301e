//! s3 against a real S3 server: the moto server of `scripts/start-s3.sh`,
//! which checks keys. The tests read
//! `BERTH_TEST_S3_ENDPOINT` (skip when unset), `BERTH_TEST_S3_ACCESS_KEY_ID`
//! and `BERTH_TEST_S3_SECRET_ACCESS_KEY` (all three written by the script to
//! `/tmp/berth-s3-<port>.env`).
//!
//! The s3 root holds buckets, while the suite wants a root it can fill. Each
//! fixture builds the engine through the catalog and the factory, creates a
//! fresh bucket with the driver's own `mkdir` (bucket creation is part of
//! what is tested) and hands the suite a `SubPath` view of that bucket, the
//! same view an `alias` or a `name:bucket` remote gives in the service.

use crate::support::{emulator, engine, unique, Backends};
use berth_storage::catalog::catalog;
use berth_storage::testkit::{self, chunked, get, list_all, pattern, put, Fixture};
use berth_storage::{collect, once, EntryKind, ErrorKind, Storage, StorageError, SubPath};
use serde_json::{json, Value};
use std::sync::Arc;

type Store = Arc<dyn Storage>;

/// The emulator's endpoint and keys; `None` (skip) without an endpoint.
fn server() -> Option<(String, String, String)> {
    let endpoint = emulator("BERTH_TEST_S3_ENDPOINT")?;
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("BERTH_TEST_S3_ENDPOINT is set but {name} is not (source the env file scripts/start-s3.sh prints)")
        })
    };
    Some((
        endpoint,
        var("BERTH_TEST_S3_ACCESS_KEY_ID"),
        var("BERTH_TEST_S3_SECRET_ACCESS_KEY"),
    ))
}

/// The config body for the emulator with `extra` fields on top.
fn body(endpoint: &str, id: &str, secret: &str, extra: Value) -> Value {
    let mut body = json!({
        "endpoint": endpoint,
        "access_key_id": id,
        "secret_access_key": secret,
    });
    let object = body.as_object_mut().unwrap();
    for (key, value) in extra.as_object().unwrap() {
        object.insert(key.clone(), value.clone());
    }
    body
}

/// The engine at the emulator's root (buckets), with `extra` options.
async fn root(extra: Value) -> Option<Fixture> {
    let (endpoint, id, secret) = server()?;
    Some(
        engine(
            "s3",
            body(&endpoint, &id, &secret, extra),
            &Backends::default(),
        )
        .await,
    )
}

/// A fresh bucket created through the engine, seen as the suite's root.
async fn bucket(extra: Value) -> Option<Fixture> {
    let fixture = root(extra).await?;
    let name = unique("berth");
    fixture
        .storage
        .mkdir(&name)
        .await
        .unwrap_or_else(|e| panic!("create bucket {name}: {e}"));
    let view = SubPath::wrap(fixture.storage.clone(), &name).unwrap();
    Some(Fixture::new(view, Some(Box::new(fixture))))
}

/// Defaults: path style, ListObjects v1, single PUTs below 200 MiB.
async fn s3_bucket() -> Option<Fixture> {
    bucket(json!({})).await
}

/// Multipart everywhere: 5 MiB cutoff and parts (the 10 MiB write is three
/// parts, three in flight), multipart copies above 5 MiB, ListObjectsV2
/// with URL-encoded keys, multipart ETags checked, small listing requests.
async fn s3_multipart() -> Option<Fixture> {
    bucket(json!({
        "upload_cutoff": "5M",
        "chunk_size": "5M",
        "upload_concurrency": 3,
        "copy_cutoff": "5M",
        "list_version": 2,
        "list_url_encode": "true",
        "use_multipart_etag": "true",
        "list_chunk": 300,
    }))
    .await
}

/// Directory markers: empty directories exist, so the suite also checks the
/// directory rules (conflicts, rmdir, emptied directories).
async fn s3_markers() -> Option<Fixture> {
    bucket(json!({"directory_markers": true})).await
}

berth_storage::behaviour_suite! {
    s3 => super::s3_bucket,
    s3_multipart => super::s3_multipart,
    s3_markers => super::s3_markers,
}

/// Validates with the catalog and builds with the driver's `build` (what the
/// factory calls for `s3`), returning build errors instead of panicking as
/// `support::engine` does.
async fn try_build(body: Value) -> Result<Store, StorageError> {
    let config = catalog()
        .get("s3")
        .unwrap()
        .validate_create(&body)
        .unwrap_or_else(|e| panic!("catalog refused {body}: {e}"));
    berth_s3::build(&config).await
}

fn error<T>(result: Result<T, StorageError>) -> StorageError {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn wrong_keys_are_permission_errors_with_the_s3_code() {
    let Some((endpoint, id, secret)) = server() else {
        return;
    };
    let wrong_secret = try_build(body(&endpoint, &id, "not-the-secret", json!({})))
        .await
        .unwrap();
    let err = error(wrong_secret.probe().await);
    assert_eq!(err.kind, ErrorKind::Permission, "{}", err.message);
    assert!(
        err.message
            .contains("S3 rejected the credentials (SignatureDoesNotMatch)"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("not-the-secret"));
    assert_eq!(
        error(wrong_secret.list("", None, 0).await).kind,
        ErrorKind::Permission
    );
    // HEAD answers carry no error code: still Permission.
    assert_eq!(
        error(wrong_secret.stat("some-bucket/key").await).kind,
        ErrorKind::Permission
    );

    let unknown_key = try_build(body(&endpoint, "AKIAUNKNOWNKEY000000", &secret, json!({})))
        .await
        .unwrap();
    let err = error(unknown_key.probe().await);
    assert_eq!(err.kind, ErrorKind::Permission);
    assert!(
        err.message
            .contains("S3 rejected the credentials (InvalidAccessKeyId)"),
        "{}",
        err.message
    );

    let anonymous = try_build(json!({"endpoint": endpoint})).await.unwrap();
    assert_eq!(
        error(anonymous.probe().await).kind,
        ErrorKind::Permission,
        "anonymous requests are refused by a server that checks keys"
    );
}

#[tokio::test]
async fn unreachable_endpoints_are_transient() {
    for endpoint in ["http://127.0.0.1:1", "http://berth-no-such-host.invalid"] {
        let storage = try_build(json!({
            "endpoint": endpoint,
            "access_key_id": "AKID",
            "secret_access_key": "secret",
        }))
        .await
        .unwrap();
        let err = error(storage.probe().await);
        assert_eq!(
            err.kind,
            ErrorKind::Transient,
            "{endpoint}: {}",
            err.message
        );
        assert!(
            err.message
                .starts_with(&format!("cannot reach S3 endpoint {endpoint}: ")),
            "{}",
            err.message
        );
        assert!(err.is_retryable());
    }
}

#[tokio::test]
async fn unsupported_options_are_refused_at_build() {
    let base = json!({"endpoint": "http://127.0.0.1:1"});
    for (field, value) in [
        ("versions", json!(true)),
        ("version_at", json!("2025-01-01T00:00:00Z")),
        ("v2_auth", json!(true)),
        ("use_accelerate_endpoint", json!(true)),
        ("decompress", json!(true)),
        ("download_url", json!("https://cdn.example.com")),
        ("sts_endpoint", json!("https://sts.example.com")),
        ("chunk_size", json!("1M")),
    ] {
        let mut config = base.clone();
        config[field] = value;
        let err = error(try_build(config).await);
        assert_eq!(
            err.kind,
            ErrorKind::InvalidConfig,
            "{field}: {}",
            err.message
        );
        assert!(err.message.contains(field), "{field}: {}", err.message);
    }
    let err = error(
        try_build(json!({
            "endpoint": "http://127.0.0.1:1",
            "sse_customer_algorithm": "AES256",
            "sse_customer_key": "too-short-key",
        }))
        .await,
    );
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    assert!(!err.message.contains("too-short-key"), "{}", err.message);
}

#[tokio::test]
async fn buckets_at_the_root() {
    let Some(fixture) = root(json!({})).await else {
        return;
    };
    let st = fixture.storage.clone();
    st.probe().await.unwrap();
    let name = unique("berth");
    assert_eq!(error(st.stat(&name).await).kind, ErrorKind::NotFound);
    let err = error(st.list(&name, None, 1).await);
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(
        err.message
            .contains(&format!("S3 bucket '{name}' does not exist")),
        "{}",
        err.message
    );

    st.mkdir(&name).await.unwrap();
    st.mkdir(&name).await.unwrap();
    assert_eq!(st.stat(&name).await.unwrap().kind, EntryKind::Dir);
    let (buckets, _) = list_all(&st, "", 1).await;
    assert!(buckets
        .iter()
        .any(|e| e.path == name && e.kind == EntryKind::Dir));
    put(&st, &format!("{name}/x"), b"x").await;
    assert_eq!(error(st.rmdir(&name).await).kind, ErrorKind::Conflict);
    st.delete(&format!("{name}/x")).await.unwrap();
    st.rmdir(&name).await.unwrap();
    assert_eq!(error(st.stat(&name).await).kind, ErrorKind::NotFound);
    assert_eq!(error(st.rmdir(&name).await).kind, ErrorKind::NotFound);

    // A write creates a missing bucket (no_check_bucket=false).
    put(&st, &format!("{name}/auto/created"), b"y").await;
    assert_eq!(get(&st, &format!("{name}/auto/created")).await, b"y");
    // Names that cannot be buckets are simply not there.
    assert_eq!(error(st.stat(".Trash-0").await).kind, ErrorKind::NotFound);
    assert_eq!(
        error(st.rename(&name, "other-bucket").await).kind,
        ErrorKind::Unsupported
    );
}

#[tokio::test]
async fn no_check_bucket_never_creates() {
    let Some(fixture) = root(json!({"no_check_bucket": true})).await else {
        return;
    };
    let name = unique("berth");
    fixture.storage.mkdir(&name).await.unwrap();
    let err = error(fixture.storage.write(&format!("{name}/f"), once("x")).await);
    assert_eq!(err.kind, ErrorKind::NotFound, "{}", err.message);
}

#[tokio::test]
async fn names_sort_before_keys_across_pages() {
    let Some(fixture) = s3_bucket().await else {
        return;
    };
    let st = fixture.storage.clone();
    // By key S3 returns a-1, a.txt, a/ ; by name a comes first.
    put(&st, "o/a.txt", b"1").await;
    put(&st, "o/a-1", b"2").await;
    put(&st, "o/a/inner", b"3").await;
    put(&st, "o/a b/inner", b"4").await;
    put(&st, "o/b", b"5").await;
    for limit in [0, 1, 2, 3] {
        let (entries, _) = list_all(&st, "o", limit).await;
        let got: Vec<(&str, EntryKind)> = entries.iter().map(|e| (e.name(), e.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("a", EntryKind::Dir),
                ("a b", EntryKind::Dir),
                ("a-1", EntryKind::File),
                ("a.txt", EntryKind::File),
                ("b", EntryKind::File),
            ],
            "limit {limit}"
        );
    }
}

#[tokio::test]
async fn directory_markers_are_objects_other_clients_see() {
    let Some((endpoint, id, secret)) = server() else {
        return;
    };
    let markers = try_build(body(
        &endpoint,
        &id,
        &secret,
        json!({"directory_markers": true}),
    ))
    .await
    .unwrap();
    let plain = try_build(body(&endpoint, &id, &secret, json!({})))
        .await
        .unwrap();
    assert!(markers.capability().directories && !plain.capability().directories);
    // A write into a missing bucket creates it, markers or not.
    let other = unique("berth");
    put(&markers, &format!("{other}/new/file"), b"n").await;
    assert_eq!(get(&plain, &format!("{other}/new/file")).await, b"n");

    let name = unique("berth");
    markers.mkdir(&format!("{name}/a/b")).await.unwrap();
    let markers: Store = SubPath::wrap(markers, &name).unwrap();
    let plain: Store = SubPath::wrap(plain, &name).unwrap();

    // The markers are `a/` and `a/b/` objects: a marker-less client sees
    // the directories they imply, and reading the marker gives nothing.
    assert_eq!(testkit::names(&plain, "a").await, vec!["b"]);
    assert_eq!(plain.stat("a/b").await.unwrap().kind, EntryKind::Dir);
    assert_eq!(markers.stat("a/b").await.unwrap().kind, EntryKind::Dir);
    assert!(testkit::names(&markers, "a/b").await.is_empty());

    // Without markers mkdir below a bucket is a no-op and the empty
    // directory does not exist; rmdir of it is fine.
    plain.mkdir("plain/empty").await.unwrap();
    assert_eq!(
        error(plain.stat("plain/empty").await).kind,
        ErrorKind::NotFound
    );
    plain.rmdir("plain/empty").await.unwrap();

    // Emptied by a delete, a marker directory stays.
    put(&markers, "a/b/file", b"f").await;
    markers.delete("a/b/file").await.unwrap();
    assert_eq!(markers.stat("a/b").await.unwrap().kind, EntryKind::Dir);
    markers.rmdir("a/b").await.unwrap();
    assert_eq!(error(markers.stat("a/b").await).kind, ErrorKind::NotFound);
    assert_eq!(markers.stat("a").await.unwrap().kind, EntryKind::Dir);
    markers.rmdir("a").await.unwrap();
    assert!(testkit::names(&plain, "").await.is_empty());
}

#[tokio::test]
async fn server_side_encryption_round_trips() {
    let key = "0123456789abcdef0123456789abcdef";
    for extra in [
        json!({"server_side_encryption": "AES256", "storage_class": "STANDARD_IA", "acl": "private"}),
        json!({"sse_customer_algorithm": "AES256", "sse_customer_key": key}),
    ] {
        let Some(fixture) = bucket(extra.clone()).await else {
            return;
        };
        let st = fixture.storage.clone();
        let data = pattern(200_000);
        put(&st, "enc/a.bin", &data).await;
        assert!(get(&st, "enc/a.bin").await == data, "{extra}");
        let range = collect(st.read("enc/a.bin", Some((1000, 10))).await.unwrap())
            .await
            .unwrap();
        assert_eq!(range, &data[1000..1010]);
        assert_eq!(st.stat("enc/a.bin").await.unwrap().size, 200_000);
        st.copy("enc/a.bin", "enc/b.bin").await.unwrap();
        assert!(get(&st, "enc/b.bin").await == data, "{extra}");
        st.rename("enc", "moved").await.unwrap();
        assert!(get(&st, "moved/b.bin").await == data, "{extra}");
    }
}

#[tokio::test]
async fn large_copies_and_renames_are_multipart() {
    let Some(fixture) = bucket(json!({"copy_cutoff": "5M", "upload_concurrency": 2})).await else {
        return;
    };
    let st = fixture.storage.clone();
    let data = pattern(12 * 1024 * 1024 + 3);
    st.write("big/src.bin", chunked(&data, 1 << 20))
        .await
        .unwrap();
    st.copy("big/src.bin", "big/copy.bin").await.unwrap();
    assert!(
        get(&st, "big/copy.bin").await == data,
        "multipart copy differs"
    );
    st.rename("big", "moved").await.unwrap();
    assert!(get(&st, "moved/src.bin").await == data);
    assert_eq!(
        testkit::names(&st, "moved").await,
        vec!["copy.bin", "src.bin"]
    );
}

#[tokio::test]
async fn a_failed_multipart_upload_leaves_nothing() {
    let Some(fixture) = bucket(json!({"upload_cutoff": "5M", "chunk_size": "5M"})).await else {
        return;
    };
    let st = fixture.storage.clone();
    put(&st, "keep", b"old").await;
    // 2 × 6 MiB of good data (parts in flight or done), then an error.
    let err = error(st.write("keep", testkit::failing(&pattern(6 << 20))).await);
    assert_eq!(err.message, "body failed midway");
    assert_eq!(get(&st, "keep").await, b"old");
}

#[tokio::test]
async fn env_auth_reads_a_shared_credentials_file() {
    let Some((endpoint, id, secret)) = server() else {
        return;
    };
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        eprintln!("SKIPPED: AWS_ACCESS_KEY_ID is set and would take precedence");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        format!("[berth]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    let storage = try_build(json!({
        "endpoint": endpoint,
        "env_auth": true,
        "shared_credentials_file": file.display().to_string(),
        "profile": "berth",
    }))
    .await
    .unwrap();
    storage.probe().await.unwrap();
}
