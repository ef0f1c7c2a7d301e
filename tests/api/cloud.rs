//! S3, Azure Blob and GCS through the API against the emulators started by
//! scripts/test.sh: connect, wrong keys, credential rotation, and secrets
//! never leaving the process.

use crate::common::{assert_error, Api, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// An emulator setting from the environment; `None` skips, unless
/// `BERTH_REQUIRE_EMULATORS=1` (scripts/test.sh), where it fails.
pub(crate) fn setting(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var("BERTH_REQUIRE_EMULATORS").as_deref() == Ok("1") => {
            panic!("BERTH_REQUIRE_EMULATORS=1 but {var} is not set")
        }
        _ => {
            eprintln!("SKIPPED: {var} is not set (scripts/test.sh starts the emulators)");
            None
        }
    }
}

/// Asserts that no response, log line or data file holds `secret`.
pub(crate) fn assert_never_leaked(server: &Server, responses: &[Value], secret: &str) {
    for response in responses {
        assert!(
            !response.to_string().contains(secret),
            "secret in a response: {response}"
        );
    }
    assert!(!server.log().contains(secret), "secret in the log");
    let mut dirs = vec![server.data_dir.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap_or_default();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "secret stored in clear in {path:?}"
            );
        }
    }
}

struct S3 {
    endpoint: String,
    key_id: String,
    secret: String,
    key_id_2: String,
    secret_2: String,
}

fn s3() -> Option<S3> {
    Some(S3 {
        endpoint: setting("BERTH_TEST_S3_ENDPOINT")?,
        key_id: setting("BERTH_TEST_S3_ACCESS_KEY_ID")?,
        secret: setting("BERTH_TEST_S3_SECRET_ACCESS_KEY")?,
        key_id_2: setting("BERTH_TEST_S3_ACCESS_KEY_ID_2")?,
        secret_2: setting("BERTH_TEST_S3_SECRET_ACCESS_KEY_2")?,
    })
}

fn s3_body(s3: &S3, secret: &str) -> Value {
    json!({
        "provider": "Other",
        "endpoint": s3.endpoint,
        "region": "us-east-1",
        "force_path_style": true,
        "access_key_id": s3.key_id,
        "secret_access_key": secret,
    })
}

#[test]
fn s3_connects_rejects_wrong_keys_and_rotates() {
    let Some(s3) = s3() else { return };
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let mut responses = Vec::new();

    let wrong = api.post(
        "/api/v1/backends/s3",
        &s3_body(&s3, "definitely-the-wrong-secret"),
    );
    assert_eq!(wrong.0, StatusCode::BAD_REQUEST, "{}", wrong.1);
    let message = wrong.1["error"].as_str().unwrap().to_lowercase();
    assert!(
        message.contains("credential")
            || message.contains("access key")
            || message.contains("signature"),
        "{message}"
    );
    responses.push(wrong.1);
    assert_eq!(
        api.get("/api/v1/backends").1["count"],
        json!(0),
        "failed connects store nothing"
    );

    let (status, created) = api.post("/api/v1/backends/s3", &s3_body(&s3, &s3.secret));
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["data"]["type"], json!("object_storage"));
    let id = created["data"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/backends/{id}");
    responses.push(created);

    let (_, detail) = api.get(&path);
    assert_eq!(detail["config"]["secret_access_key"], json!("***"));
    assert_eq!(detail["server"], json!("s3:other"));
    responses.push(detail);

    // Identity fields cannot be rotated.
    assert_error(
        &api.put(&path, &json!({"endpoint": "http://elsewhere"})),
        StatusCode::BAD_REQUEST,
        "only credential fields",
    );
    // A no-op rotation succeeds without contacting the remote.
    let (status, same) = api.put(&path, &json!({"secret_access_key": s3.secret}));
    assert_eq!(
        (status, same["message"].clone()),
        (StatusCode::OK, json!("Backend credentials unchanged"))
    );
    // A wrong key is probed and refused; the old key stays in force.
    let bad = api.put(
        &path,
        &json!({"secret_access_key": "rotated-but-wrong-secret"}),
    );
    assert_error(
        &bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Credential validation failed against the remote backend",
    );
    responses.push(bad.1);
    assert_eq!(api.get(&format!("{path}/test")).1["success"], json!(true));
    // Values must be strings or null.
    assert_error(
        &api.put(&path, &json!({"secret_access_key": 42})),
        StatusCode::BAD_REQUEST,
        "secret_access_key",
    );
    // Sending the stored key again is still a no-op after the failed rotation.
    let (status, same) = api.put(
        &path,
        &json!({"session_token": null, "secret_access_key": s3.secret}),
    );
    assert_eq!(
        (status, same["message"].clone()),
        (StatusCode::OK, json!("Backend credentials unchanged"))
    );
    // A second valid key pair of the same user is probed and adopted.
    let (status, rotated) = api.put(
        &path,
        &json!({"access_key_id": s3.key_id_2, "secret_access_key": s3.secret_2}),
    );
    assert_eq!(
        (status, rotated["message"].clone()),
        (StatusCode::OK, json!("Backend credentials updated")),
        "{rotated}"
    );
    assert_eq!(
        api.get(&path).1["config"]["access_key_id"],
        json!(s3.key_id_2)
    );
    assert_eq!(api.get(&format!("{path}/test")).1["success"], json!(true));
    responses.push(api.get("/api/v1/backends").1);
    responses.push(api.get("/api/v1/health/actors").1);

    assert_never_leaked(&server, &responses, &s3.secret);
    assert_never_leaked(&server, &responses, &s3.secret_2);
    assert_never_leaked(&server, &responses, "definitely-the-wrong-secret");
    assert_never_leaked(&server, &responses, "rotated-but-wrong-secret");
}

#[test]
fn wrappers_reference_backends_by_name_and_protect_them() {
    let Some(s3) = s3() else { return };
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let base = api.connect("s3", &json!({"name": "s3-prod", "provider": "Other", "endpoint": s3.endpoint,
        "region": "us-east-1", "force_path_style": true, "access_key_id": s3.key_id, "secret_access_key": s3.secret}));
    let alias = api.connect(
        "alias",
        &json!({"remote": "s3-prod:", "description": "all buckets"}),
    );
    assert_error(
        &api.delete(&format!("/api/v1/backends/{base}")),
        StatusCode::CONFLICT,
        "used by backend",
    );
    assert_error(
        &api.post("/api/v1/backends/alias", &json!({"remote": "nope:x"})),
        StatusCode::BAD_REQUEST,
        "'nope' does not exist",
    );
    // Another org cannot reference it.
    let other = Api::new(&server, "globex");
    assert_error(
        &other.post("/api/v1/backends/alias", &json!({"remote": "s3-prod:"})),
        StatusCode::BAD_REQUEST,
        "does not exist",
    );
    assert_eq!(
        api.delete(&format!("/api/v1/backends/{alias}")).0,
        StatusCode::OK
    );
    assert_eq!(
        api.delete(&format!("/api/v1/backends/{base}")).0,
        StatusCode::OK
    );
}

#[test]
fn azureblob_connects_and_rejects_wrong_keys() {
    let Some(endpoint) = setting("BERTH_TEST_AZURE_ENDPOINT") else {
        return;
    };
    // Azurite's documented development account.
    let key =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    let wrong_key =
        "AAAAvdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let body = |key: &str| json!({"account": "devstoreaccount1", "key": key, "endpoint": endpoint});
    assert_error(
        &api.post("/api/v1/backends/azureblob", &body(wrong_key)),
        StatusCode::BAD_REQUEST,
        "Invalid storage account credentials",
    );
    let id = api.connect("azureblob", &body(key));
    let path = format!("/api/v1/backends/{id}");
    assert_error(
        &api.put(&path, &json!({"key": wrong_key})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "Credential validation failed",
    );
    assert_eq!(api.get(&format!("{path}/test")).1["success"], json!(true));
    let responses = vec![api.get(&path).1, api.get("/api/v1/backends").1];
    assert_never_leaked(&server, &responses, key);
}

#[test]
fn gcs_connects_to_the_emulator() {
    let Some(endpoint) = setting("BERTH_TEST_GCS_ENDPOINT") else {
        return;
    };
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let id = api.connect(
        "google-cloud-storage",
        &json!({"endpoint": endpoint, "anonymous": true}),
    );
    assert_eq!(
        api.get(&format!("/api/v1/backends/{id}/test")).1["success"],
        json!(true)
    );
    let unreachable = api.post(
        "/api/v1/backends/google-cloud-storage",
        &json!({"endpoint": "http://127.0.0.1:9", "anonymous": true}),
    );
    assert_eq!(unreachable.0, StatusCode::BAD_REQUEST);
    assert!(!unreachable.1["error"].as_str().unwrap().is_empty());
    let missing = api.post(
        "/api/v1/backends/google-cloud-storage",
        &json!({"service_account_file": "/etc/hoody/gcs-sa.json"}),
    );
    assert_error(
        &missing,
        StatusCode::BAD_REQUEST,
        "service_account_file '/etc/hoody/gcs-sa.json' is outside the allowed local roots",
    );
    // The host's own identity is not lent to API callers either.
    let ambient = api.post(
        "/api/v1/backends/s3",
        &json!({"endpoint": "http://127.0.0.1:9", "env_auth": true}),
    );
    assert_error(&ambient, StatusCode::BAD_REQUEST, "BERTH_HOST_CREDENTIALS");
}
