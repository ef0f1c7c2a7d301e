//! azureblob against Azurite (`BERTH_TEST_AZURE_ENDPOINT`, started by
//! scripts/start-azurite.sh): the behaviour suite on a fresh container with
//! an account key, with small blocks, with directory markers, with
//! `sas_url` (account and container SAS) and with `use_emulator`, plus
//! Azure-specific checks. The configuration checks need no emulator.

use crate::support::{emulator, engine, unique, Backends};
use berth_engines::{build, BuildContext, EngineEnv};
use berth_storage::catalog::{catalog, Config};
use berth_storage::drivers::DriverEnv;
use berth_storage::testkit::{list_all, Fixture};
use berth_storage::{collect, once, EntryKind, ErrorKind, Result, Storage, SubPath};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Azurite's account and its documented, public key.
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The key config for the emulator plus `extra` fields.
fn body(endpoint: &str, extra: Value) -> Value {
    let mut body = json!({ "account": ACCOUNT, "key": KEY, "endpoint": endpoint });
    if let (Some(map), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        map.extend(extra.clone());
    }
    body
}

/// Creates a fresh container with the key engine; returns its name and the
/// engine that owns the account.
async fn fresh_container(endpoint: &str) -> (String, Fixture) {
    let whole = engine("azureblob", body(endpoint, json!({})), &Backends::default()).await;
    let container = unique("berth");
    whole
        .storage
        .mkdir(&container)
        .await
        .unwrap_or_else(|e| panic!("create container {container}: {e}"));
    (container, whole)
}

/// The engine built from `config` on a fresh container, seen through a
/// `SubPath` as the suite wants.
async fn on_fresh_container(config: impl Fn(&str, &str) -> Value) -> Option<Fixture> {
    let endpoint = emulator("BERTH_TEST_AZURE_ENDPOINT")?;
    let (container, owner) = fresh_container(&endpoint).await;
    let engine = engine(
        "azureblob",
        config(&endpoint, &container),
        &Backends::default(),
    )
    .await;
    let view = SubPath::wrap(engine.storage.clone(), &container).unwrap();
    Some(Fixture::new(view, Some(Box::new((engine, owner)))))
}

async fn fixture() -> Option<Fixture> {
    on_fresh_container(|endpoint, _| body(endpoint, json!({}))).await
}

/// Blocks of 1 MiB above a 1 MiB cutoff: the 10 MiB write stages 11 blocks.
async fn fixture_blocks() -> Option<Fixture> {
    on_fresh_container(|endpoint, _| {
        body(
            endpoint,
            json!({ "chunk_size": "1M", "upload_cutoff": "1M", "upload_concurrency": 4 }),
        )
    })
    .await
}

async fn fixture_markers() -> Option<Fixture> {
    on_fresh_container(|endpoint, _| body(endpoint, json!({ "directory_markers": true }))).await
}

/// No HEAD before reads, no MD5, small listing pages.
async fn fixture_lean() -> Option<Fixture> {
    on_fresh_container(|endpoint, _| {
        body(
            endpoint,
            json!({ "no_head_object": true, "disable_checksum": true, "list_chunk": 1000 }),
        )
    })
    .await
}

async fn fixture_account_sas() -> Option<Fixture> {
    on_fresh_container(|endpoint, _| {
        let token =
            berth_azure::account_sas_token(ACCOUNT, KEY, "rwdlacu", Duration::from_secs(3600))
                .unwrap();
        json!({ "sas_url": format!("{endpoint}?{token}") })
    })
    .await
}

async fn fixture_container_sas() -> Option<Fixture> {
    on_fresh_container(|endpoint, container| {
        let token = berth_azure::container_sas_token(
            ACCOUNT,
            KEY,
            container,
            "racwdl",
            Duration::from_secs(3600),
        )
        .unwrap();
        json!({ "sas_url": format!("{endpoint}/{container}?{token}") })
    })
    .await
}

async fn fixture_emulator() -> Option<Fixture> {
    on_fresh_container(|endpoint, _| json!({ "use_emulator": true, "endpoint": endpoint })).await
}

berth_storage::behaviour_suite! {
    azureblob => super::fixture,
    azureblob_blocks => super::fixture_blocks,
    azureblob_markers => super::fixture_markers,
    azureblob_lean => super::fixture_lean,
    azureblob_account_sas => super::fixture_account_sas,
    azureblob_container_sas => super::fixture_container_sas,
    azureblob_emulator => super::fixture_emulator,
}

/// Validates and builds like `support::engine`, but returns the error.
async fn try_engine(body: Value) -> Result<Arc<dyn Storage>> {
    let config: Config = catalog()
        .get("azureblob")
        .expect("in the catalog")
        .validate_create(&body)
        .unwrap_or_else(|e| panic!("catalog refused {body}: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let env = EngineEnv {
        // The drivers' own handling of host credentials is under test.
        drivers: DriverEnv {
            host_credentials: true,
            ..DriverEnv::default()
        },
        state_dir: dir.path().to_path_buf(),
        hashes: std::sync::Arc::new(berth_layers::MemoryHashStore::new()),
        rclone: Err("rclone is not used here".into()),
    };
    let ctx = BuildContext {
        backend_id: "0123456789abcdef",
        env: &env,
        backends: &Backends::default(),
    };
    build("azureblob", &config, &ctx).await
}

fn must_fail<T>(result: Result<T>) -> berth_storage::StorageError {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn wrong_key_is_invalid_credentials() {
    let Some(endpoint) = emulator("BERTH_TEST_AZURE_ENDPOINT") else {
        return;
    };
    let wrong = format!("{}==", "A".repeat(86));
    let storage = try_engine(json!({ "account": ACCOUNT, "key": wrong, "endpoint": endpoint }))
        .await
        .unwrap();
    let err = must_fail(storage.probe().await);
    assert_eq!(err.kind, ErrorKind::Permission, "{err}");
    assert!(
        err.message
            .starts_with("Invalid storage account credentials"),
        "{err}"
    );
    assert!(!err.message.contains("sig="), "{err}");
    assert!(!err.message.contains(&wrong), "{err}");
}

#[tokio::test]
async fn expired_or_tampered_sas_is_invalid_credentials() {
    let Some(endpoint) = emulator("BERTH_TEST_AZURE_ENDPOINT") else {
        return;
    };
    let token =
        berth_azure::account_sas_token(ACCOUNT, KEY, "rl", Duration::from_secs(3600)).unwrap();
    let tampered = token.replace("sp=rl", "sp=rwdl");
    let storage = try_engine(json!({ "sas_url": format!("{endpoint}?{tampered}") }))
        .await
        .unwrap();
    let err = must_fail(storage.probe().await);
    assert_eq!(err.kind, ErrorKind::Permission, "{err}");
    assert!(
        err.message
            .starts_with("Invalid storage account credentials"),
        "{err}"
    );
    let signature = tampered.rsplit("sig=").next().unwrap();
    assert!(!err.message.contains(signature), "{err}");
}

#[tokio::test]
async fn unreachable_endpoint_is_transient() {
    // Nothing listens on port 9 of the loopback.
    let endpoint = "http://127.0.0.1:9/devstoreaccount1";
    let storage = try_engine(json!({ "account": ACCOUNT, "key": KEY, "endpoint": endpoint }))
        .await
        .unwrap();
    let err = must_fail(storage.probe().await);
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert!(err.is_retryable());
    assert!(err.message.contains(endpoint), "{err}");
    assert!(!err.message.contains("sig="), "{err}");
    let err = must_fail(storage.stat("box/file").await);
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
}

#[tokio::test]
async fn unknown_host_names_the_endpoint() {
    let storage = try_engine(json!({
        "account": ACCOUNT,
        "key": KEY,
        "endpoint": "http://berth-no-such-host.invalid/devstoreaccount1",
    }))
    .await
    .unwrap();
    let err = must_fail(storage.probe().await);
    assert_eq!(err.kind, ErrorKind::Transient, "{err}");
    assert!(err.message.contains("berth-no-such-host.invalid"), "{err}");
}

#[tokio::test]
async fn missing_sas_container_is_not_found() {
    let Some(endpoint) = emulator("BERTH_TEST_AZURE_ENDPOINT") else {
        return;
    };
    let container = unique("berth-missing");
    let token =
        berth_azure::container_sas_token(ACCOUNT, KEY, &container, "rl", Duration::from_secs(60))
            .unwrap();
    let storage = try_engine(json!({ "sas_url": format!("{endpoint}/{container}?{token}") }))
        .await
        .unwrap();
    let err = must_fail(storage.probe().await);
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert!(err.message.contains(&container), "{err}");
}

#[tokio::test]
async fn unsupported_auth_methods_are_refused_clearly() {
    for (extra, field, kind) in [
        (
            json!({"client_certificate_path": "/etc/cert.pem", "client_id": "c", "tenant": "t"}),
            "client_certificate_path",
            ErrorKind::Unsupported,
        ),
        (
            json!({"username": "me@example.com", "password": "pw"}),
            "username",
            ErrorKind::Unsupported,
        ),
        (
            json!({"client_id": "c", "client_secret": "s", "tenant": "t", "endpoint": "http://127.0.0.1:10000/devstoreaccount1"}),
            "client_secret",
            ErrorKind::InvalidConfig,
        ),
        (json!({}), "No credentials", ErrorKind::InvalidConfig),
        (
            json!({"key": KEY, "use_msi": true}),
            "Choose one authentication method",
            ErrorKind::InvalidConfig,
        ),
    ] {
        let mut body = json!({ "account": "acct" });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let err = must_fail(try_engine(body).await);
        assert_eq!(err.kind, kind, "{field}: {err}");
        assert!(err.message.contains(field), "{field}: {err}");
    }
}

#[tokio::test]
async fn root_lists_containers_and_rmdir_removes_empty_ones() {
    let Some(endpoint) = emulator("BERTH_TEST_AZURE_ENDPOINT") else {
        return;
    };
    let (container, whole) = fresh_container(&endpoint).await;
    let st = whole.storage.clone();
    let (root, _) = list_all(&st, "", 0).await;
    let mine = root
        .iter()
        .find(|e| e.path == container)
        .expect("the new container is listed");
    assert_eq!(mine.kind, EntryKind::Dir);
    assert_eq!(st.stat(&container).await.unwrap().kind, EntryKind::Dir);
    // Paged root listing with the last name as cursor.
    let (paged, _) = list_all(&st, "", 1).await;
    assert_eq!(paged.len(), root.len());

    st.write(&format!("{container}/d/f.txt"), once("x"))
        .await
        .unwrap();
    assert_eq!(
        st.rmdir(&container).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    st.delete(&format!("{container}/d/f.txt")).await.unwrap();
    st.rmdir(&container).await.unwrap();
    assert_eq!(
        st.stat(&container).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    // Writing into a missing container creates it...
    let other = unique("berth-auto");
    st.write(&format!("{other}/a"), once("a")).await.unwrap();
    assert_eq!(st.stat(&other).await.unwrap().kind, EntryKind::Dir);
    // ...unless no_check_container.
    let strict = engine(
        "azureblob",
        body(&endpoint, json!({ "no_check_container": true })),
        &Backends::default(),
    )
    .await;
    let err = strict
        .storage
        .write(&format!("{}/a", unique("berth-none")), once("a"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    // Container names follow Azure's rules.
    assert_eq!(
        st.mkdir("Bad_Name").await.unwrap_err().kind,
        ErrorKind::Unsupported
    );
}

#[tokio::test]
async fn names_azure_would_change_are_refused() {
    let Some(fixture) = fixture().await else {
        return;
    };
    let st = fixture.storage.clone();
    for name in ["trailing.", "dir./x", "back\\slash"] {
        let err = st.write(name, once("x")).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unsupported, "{name}: {err}");
        assert_eq!(st.stat(name).await.unwrap_err().kind, ErrorKind::NotFound);
    }
}

#[tokio::test]
async fn listing_order_puts_directories_before_longer_names() {
    let Some(fixture) = fixture().await else {
        return;
    };
    let st = fixture.storage.clone();
    // Azure lists "d.txt" and "d-1" before the prefix "d/".
    for path in ["o/d.txt", "o/d-1", "o/d/inner", "o/d0", "o/c", "o/e.x/y"] {
        st.write(path, once("x")).await.unwrap();
    }
    let want = ["c", "d", "d-1", "d.txt", "d0", "e.x"];
    for limit in [0, 1, 2, 3] {
        let (entries, _) = list_all(&st, "o", limit).await;
        let names: Vec<&str> = entries.iter().map(|e| e.name()).collect();
        assert_eq!(names, want, "limit {limit}");
        assert_eq!(entries[1].kind, EntryKind::Dir);
    }
}

#[tokio::test]
async fn access_tier_and_archive_tier_delete() {
    let Some(endpoint) = emulator("BERTH_TEST_AZURE_ENDPOINT") else {
        return;
    };
    let (container, owner) = fresh_container(&endpoint).await;
    let archive = engine(
        "azureblob",
        body(&endpoint, json!({ "access_tier": "archive" })),
        &Backends::default(),
    )
    .await;
    let path = format!("{container}/cold.bin");
    archive.storage.write(&path, once("frozen")).await.unwrap();
    // An archived blob cannot be overwritten in place...
    let plain = owner.storage.clone();
    let err = plain.write(&path, once("thawed")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict, "{err}");
    assert!(err.message.contains("archive_tier_delete"), "{err}");
    // ...unless archive_tier_delete deletes it first.
    let deleting = engine(
        "azureblob",
        body(&endpoint, json!({ "archive_tier_delete": true })),
        &Backends::default(),
    )
    .await;
    deleting.storage.write(&path, once("thawed")).await.unwrap();
    let data = collect(plain.read(&path, None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(data, b"thawed");
}

#[tokio::test]
async fn public_access_applies_to_new_containers() {
    let Some(endpoint) = emulator("BERTH_TEST_AZURE_ENDPOINT") else {
        return;
    };
    let public = engine(
        "azureblob",
        body(&endpoint, json!({ "public_access": "blob" })),
        &Backends::default(),
    )
    .await;
    let container = unique("berth-public");
    public.storage.mkdir(&container).await.unwrap();
    public
        .storage
        .write(&format!("{container}/open.txt"), once("hello"))
        .await
        .unwrap();
    // Anonymous reads of a public blob work; listing the container does not.
    let anonymous = reqwest_get(&format!("{endpoint}/{container}/open.txt")).await;
    assert_eq!(anonymous, Some(200));
    let listing = reqwest_get(&format!(
        "{endpoint}/{container}?restype=container&comp=list"
    ))
    .await;
    assert_ne!(listing, Some(200));
}

/// The status of an unauthenticated GET, sent as raw HTTP/1.1 (the SDK
/// always signs its requests).
async fn reqwest_get(url: &str) -> Option<u16> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://")?;
        let (host, path) = rest.split_once('/')?;
        let mut stream = std::net::TcpStream::connect(host).ok()?;
        let request = format!(
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nx-ms-version: 2025-11-05\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).ok()?;
        let text = String::from_utf8_lossy(&response);
        text.split_whitespace().nth(1)?.parse().ok()
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test]
async fn container_sas_reaches_only_its_container() {
    let Some(fixture) = fixture_container_sas().await else {
        return;
    };
    // The fixture is a SubPath view; check through a fresh engine instead.
    let endpoint = emulator("BERTH_TEST_AZURE_ENDPOINT").unwrap();
    let (container, _owner) = fresh_container(&endpoint).await;
    let token = berth_azure::container_sas_token(
        ACCOUNT,
        KEY,
        &container,
        "racwdl",
        Duration::from_secs(60),
    )
    .unwrap();
    let st = try_engine(json!({ "sas_url": format!("{endpoint}/{container}?{token}") }))
        .await
        .unwrap();
    st.probe().await.unwrap();
    let (root, _) = list_all(&st, "", 0).await;
    assert_eq!(root.len(), 1);
    assert_eq!(root[0].path, container);
    let err = st.write("other-container/x", once("x")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permission, "{err}");
    fixture.storage.probe().await.unwrap();
}
