//! google-cloud-storage against fake-gcs-server (`BERTH_TEST_GCS_ENDPOINT`,
//! started by scripts/start-gcs.sh): the behaviour suite on a fresh bucket,
//! plain and with `directory_markers`, plus GCS-specific checks. The
//! configuration checks need no emulator.

use crate::support::{emulator, engine, unique, Backends};
use berth_engines::{build, BuildContext, EngineEnv};
use berth_storage::catalog::{catalog, Config};
use berth_storage::drivers::DriverEnv;
use berth_storage::testkit::{list_all, Fixture};
use berth_storage::{collect, once, EntryKind, ErrorKind, Result, Storage, SubPath};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The emulator config plus `extra` fields.
fn body(endpoint: &str, extra: Value) -> Value {
    let mut body = json!({ "endpoint": endpoint, "anonymous": true });
    if let (Some(map), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        map.extend(extra.clone());
    }
    body
}

/// The engine on a fresh bucket, seen through a `SubPath` as the suite wants.
async fn on_fresh_bucket(extra: Value) -> Option<Fixture> {
    let endpoint = emulator("BERTH_TEST_GCS_ENDPOINT")?;
    let whole = engine(
        "google-cloud-storage",
        body(&endpoint, extra),
        &Backends::default(),
    )
    .await;
    let bucket = unique("berth");
    whole
        .storage
        .mkdir(&bucket)
        .await
        .unwrap_or_else(|e| panic!("create bucket {bucket}: {e}"));
    let view = SubPath::wrap(whole.storage.clone(), &bucket).unwrap();
    Some(Fixture::new(view, Some(Box::new(whole))))
}

async fn fixture() -> Option<Fixture> {
    on_fresh_bucket(json!({})).await
}

async fn fixture_markers() -> Option<Fixture> {
    on_fresh_bucket(json!({ "directory_markers": true })).await
}

berth_storage::behaviour_suite! {
    gcs => super::fixture,
    gcs_markers => super::fixture_markers,
}

/// Validates and builds like `support::engine`, but returns the error.
async fn try_engine(body: Value) -> Result<Arc<dyn Storage>> {
    let config: Config = catalog()
        .get("google-cloud-storage")
        .expect("in the catalog")
        .validate_create(&body)
        .unwrap_or_else(|e| panic!("catalog refused {body}: {e}"));
    let env = EngineEnv {
        // The drivers' own handling of host credentials is under test.
        drivers: DriverEnv {
            host_credentials: true,
            ..DriverEnv::default()
        },
        state_dir: std::env::temp_dir(),
        hashes: std::sync::Arc::new(berth_layers::MemoryHashStore::new()),
        rclone: Err("rclone is not used here".into()),
    };
    let backends = Backends::default();
    let ctx = BuildContext {
        backend_id: "0123456789abcdef",
        env: &env,
        backends: &backends,
    };
    build("google-cloud-storage", &config, &ctx).await
}

async fn build_err(body: Value) -> berth_storage::StorageError {
    match try_engine(body.clone()).await {
        Ok(st) => panic!("{body} built: {st:?}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn bad_service_account_json_is_invalid_config() {
    let e = build_err(json!({
        "service_account_credentials": "{\"type\": \"service_account\", \"private_key\": \"SECRET-KEY\"",
    }))
    .await;
    assert_eq!(e.kind, ErrorKind::InvalidConfig, "{e}");
    assert!(
        e.message.starts_with(
            "Failed to load service account credentials from service_account_credentials:"
        ),
        "{e}"
    );
    assert!(!e.message.contains("SECRET"), "{e}");

    let key = json!({"type": "service_account", "client_email": "a@b.c",
        "private_key_id": "0123", "project_id": "p",
        "private_key": "-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n"});
    let e = build_err(json!({ "service_account_credentials": key.to_string() })).await;
    assert_eq!(e.kind, ErrorKind::InvalidConfig, "{e}");
    assert!(e.message.contains("not a usable PKCS#8 PEM RSA key"), "{e}");
    assert!(!e.message.contains("SECRET"), "{e}");
}

#[tokio::test]
async fn missing_service_account_file_is_invalid_config() {
    let e = build_err(json!({ "service_account_file": "/etc/hoody/gcs-sa.json" })).await;
    assert_eq!(e.kind, ErrorKind::InvalidConfig, "{e}");
    assert!(
        e.message
            .starts_with("Failed to load service account credentials from /etc/hoody/gcs-sa.json"),
        "{e}"
    );
}

#[tokio::test]
async fn unsupported_options_are_refused_by_name() {
    let cases = [
        (
            json!({"anonymous": true, "client_credentials": true}),
            ErrorKind::Unsupported,
            "client_credentials",
        ),
        (
            json!({"anonymous": true, "auth_url": "https://accounts.example/auth"}),
            ErrorKind::InvalidConfig,
            "auth_url",
        ),
        (
            json!({"anonymous": true, "encoding": "Slash,Dot"}),
            ErrorKind::Unsupported,
            "encoding",
        ),
        (
            json!({"anonymous": true, "bucket_policy_only": true, "bucket_acl": "publicRead"}),
            ErrorKind::InvalidConfig,
            "bucket_acl",
        ),
        (
            json!({"anonymous": true, "client_id": "id.apps.googleusercontent.com"}),
            ErrorKind::InvalidConfig,
            "client_id",
        ),
        (
            json!({"anonymous": true, "env_auth": true}),
            ErrorKind::InvalidConfig,
            "env_auth",
        ),
        (json!({}), ErrorKind::InvalidConfig, "no credentials"),
        (
            json!({"anonymous": true, "endpoint": "localhost:4443"}),
            ErrorKind::InvalidConfig,
            "endpoint",
        ),
        (
            json!({"token": "{\"access_token\": \"ya29.x\", \"expiry\": \"2001-01-01T00:00:00Z\"}"}),
            ErrorKind::InvalidConfig,
            "expired",
        ),
    ];
    for (body, kind, name) in cases {
        let e = build_err(body.clone()).await;
        assert_eq!(e.kind, kind, "{body}: {e}");
        assert!(e.message.contains(name), "{body}: {e}");
    }
}

#[tokio::test]
async fn unreachable_endpoint_is_transient_and_quick() {
    // Nothing listens on port 1; the SDK's retries are bounded.
    let st = try_engine(json!({"anonymous": true, "endpoint": "http://127.0.0.1:1"}))
        .await
        .unwrap();
    let started = Instant::now();
    let e = st.probe().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    assert!(e.message.contains("http://127.0.0.1:1"), "{e}");
    let e = match st.read("bucket/object", None).await {
        Ok(body) => collect(body).await.unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    let e = st.write("bucket/object", once("x")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn buckets_at_the_root() {
    let Some(endpoint) = emulator("BERTH_TEST_GCS_ENDPOINT") else {
        return;
    };
    let st = engine(
        "google-cloud-storage",
        body(&endpoint, json!({})),
        &Backends::default(),
    )
    .await
    .storage
    .clone();
    st.probe().await.unwrap();
    let bucket = unique("berth-root");
    st.mkdir(&bucket).await.unwrap();
    st.mkdir(&bucket).await.unwrap();
    assert_eq!(st.stat(&bucket).await.unwrap().kind, EntryKind::Dir);
    let (buckets, _) = list_all(&st, "", 1).await;
    assert!(buckets
        .iter()
        .any(|e| e.path == bucket && e.kind == EntryKind::Dir));

    st.write(&format!("{bucket}/f"), once("x")).await.unwrap();
    let e = st.rmdir(&bucket).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    assert_eq!(
        st.delete(&bucket).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    assert_eq!(
        st.rename(&bucket, "elsewhere").await.unwrap_err().kind,
        ErrorKind::Unsupported
    );
    st.delete(&format!("{bucket}/f")).await.unwrap();
    st.rmdir(&bucket).await.unwrap();
    assert_eq!(
        st.stat(&bucket).await.unwrap_err().kind,
        ErrorKind::NotFound
    );

    // A missing bucket named in a reference is created by its probe.
    let view = SubPath::wrap(st.clone(), &bucket).unwrap();
    view.probe().await.unwrap();
    assert_eq!(
        st.stat(&bucket).await.unwrap().kind,
        berth_storage::EntryKind::Dir
    );
}

#[tokio::test]
async fn writes_create_missing_buckets_unless_told_not_to() {
    let Some(endpoint) = emulator("BERTH_TEST_GCS_ENDPOINT") else {
        return;
    };
    let st = engine(
        "google-cloud-storage",
        body(&endpoint, json!({})),
        &Backends::default(),
    )
    .await
    .storage
    .clone();
    let bucket = unique("berth-auto");
    st.write(&format!("{bucket}/a/b"), once("hello"))
        .await
        .unwrap();
    assert_eq!(st.stat(&bucket).await.unwrap().kind, EntryKind::Dir);

    let strict = engine(
        "google-cloud-storage",
        body(&endpoint, json!({"no_check_bucket": true})),
        &Backends::default(),
    )
    .await
    .storage
    .clone();
    let missing = unique("berth-missing");
    let e = strict
        .write(&format!("{missing}/x"), once("x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert_eq!(
        strict.stat(&missing).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
}

/// Directory `a` (key `a/`) sorts after `a-1` and `a.txt` on the server but
/// before them by name: pages must still come out in name order.
#[tokio::test]
async fn listing_order_across_pages() {
    let Some(fixture) = fixture().await else {
        return;
    };
    let st = fixture.storage.clone();
    for name in ["d/a-1", "d/a.txt", "d/a/inner", "d/a0", "d/b", "d/a!"] {
        st.write(name, once("x")).await.unwrap();
    }
    for limit in [1, 2, 3, 0] {
        let (entries, _) = list_all(&st, "d", limit).await;
        let names: Vec<(&str, EntryKind)> = entries.iter().map(|e| (e.name(), e.kind)).collect();
        assert_eq!(
            names,
            vec![
                ("a", EntryKind::Dir),
                ("a!", EntryKind::File),
                ("a-1", EntryKind::File),
                ("a.txt", EntryKind::File),
                ("a0", EntryKind::File),
                ("b", EntryKind::File),
            ],
            "limit {limit}"
        );
    }
}

/// Bodies above the resumable threshold stream through a resumable upload;
/// ranged reads over them return exactly the range.
#[tokio::test]
async fn resumable_upload_and_ranges() {
    let Some(fixture) = fixture().await else {
        return;
    };
    let st = fixture.storage.clone();
    let data = berth_storage::testkit::pattern(berth_gcs::RESUMABLE_THRESHOLD * 2 + 12_345);
    let entry = st
        .write("big.bin", berth_storage::testkit::chunked(&data, 1 << 20))
        .await
        .unwrap();
    assert_eq!(entry.size, data.len() as u64);
    let offset = berth_gcs::UPLOAD_CHUNK as u64 - 10;
    let body = st.read("big.bin", Some((offset, 20))).await.unwrap();
    assert_eq!(
        collect(body).await.unwrap(),
        &data[offset as usize..offset as usize + 20]
    );
    assert!(
        collect(st.read("big.bin", None).await.unwrap())
            .await
            .unwrap()
            == data
    );
}

/// A body that fails after the resumable upload started leaves the old
/// object as it was and creates nothing new.
#[tokio::test]
async fn failing_large_body_leaves_nothing() {
    let Some(fixture) = fixture().await else {
        return;
    };
    let st = fixture.storage.clone();
    st.write("kept", once("old")).await.unwrap();
    // Twice 5 MiB, then an error: past the read-ahead, inside the upload.
    let half = berth_storage::testkit::pattern(berth_gcs::RESUMABLE_THRESHOLD / 2 + (1 << 20));
    let failing = || berth_storage::testkit::failing(&half);
    let e = st.write("kept", failing()).await.unwrap_err();
    assert_eq!(e.message, "body failed midway");
    assert_eq!(
        collect(st.read("kept", None).await.unwrap()).await.unwrap(),
        b"old"
    );
    assert!(st.write("new", failing()).await.is_err());
    assert_eq!(st.stat("new").await.unwrap_err().kind, ErrorKind::NotFound);
}
