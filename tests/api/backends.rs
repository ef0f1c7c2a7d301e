//! Backend management: connect, list, inspect, test, update, delete.

use crate::common::{assert_error, Api, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[test]
fn memory_backend_lifecycle() {
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let (status, created) = api.post(
        "/api/v1/backends/memory",
        &json!({"description": "Ephemeral scratch space"}),
    );
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["success"], json!(true));
    assert_eq!(created["message"], json!("Backend connected successfully"));
    let data = &created["data"];
    assert_eq!(data["backend_type"], json!("memory"));
    assert_eq!(data["type"], json!("memory"));
    assert_eq!(data["mount_paths"], json!([]));
    let id = data["id"].as_str().unwrap().to_string();
    assert!(
        id.len() == 16
            && id
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{id}"
    );

    let (status, list) = api.get("/api/v1/backends");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["count"], json!(1));
    let item = &list["backends"][0];
    for key in [
        "id",
        "backend_type",
        "server",
        "user",
        "connected",
        "mount_paths",
        "created_at",
    ] {
        assert!(item.get(key).is_some(), "list item lacks {key}: {item}");
    }
    assert_eq!(item["connected"], json!(true));
    assert_eq!(item["state"], json!("connected"));
    assert_eq!(item["server"], json!("memory:generic"));
    assert!(chrono::DateTime::parse_from_rfc3339(item["created_at"].as_str().unwrap()).is_ok());

    let (status, detail) = api.get(&format!("/api/v1/backends/{id}"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["id"], json!(id));
    assert_eq!(detail["description"], json!("Ephemeral scratch space"));
    assert!(
        detail.get("last_used").is_none(),
        "never tested yet: {detail}"
    );

    let (status, test) = api.get(&format!("/api/v1/backends/{id}/test"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        test,
        json!({"success": true, "message": "Connection successful"})
    );
    let (_, detail) = api.get(&format!("/api/v1/backends/{id}"));
    assert!(
        chrono::DateTime::parse_from_rfc3339(detail["last_used"].as_str().unwrap()).is_ok(),
        "{detail}"
    );

    let (status, deleted) = api.delete(&format!("/api/v1/backends/{id}"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        deleted,
        json!({"success": true, "message": "Backend disconnected"})
    );
    assert_error(
        &api.get(&format!("/api/v1/backends/{id}")),
        StatusCode::NOT_FOUND,
        "Backend not found",
    );
    assert_error(
        &api.delete(&format!("/api/v1/backends/{id}")),
        StatusCode::NOT_FOUND,
        "Backend not found",
    );
    assert_eq!(api.get("/api/v1/backends").1["count"], json!(0));
}

#[test]
fn ids_and_unknown_things_are_clear_errors() {
    let server = Server::start();
    let api = Api::new(&server, "acme");
    assert_error(
        &api.get("/api/v1/backends/not-hex"),
        StatusCode::BAD_REQUEST,
        "16 lowercase hex",
    );
    assert_error(
        &api.get("/api/v1/backends/ABCDEF0123456789"),
        StatusCode::BAD_REQUEST,
        "16 lowercase hex",
    );
    assert_error(
        &api.get("/api/v1/backends/0123456789abcdef"),
        StatusCode::NOT_FOUND,
        "Backend not found",
    );
    assert_error(
        &api.get("/api/v1/backends/0123456789abcdef/test"),
        StatusCode::NOT_FOUND,
        "Backend not found",
    );
    assert_error(
        &api.post("/api/v1/backends/nosuchprovider", &json!({})),
        StatusCode::NOT_FOUND,
        "nosuchprovider",
    );
    assert_error(
        &api.get("/api/v1/nothing-here"),
        StatusCode::NOT_FOUND,
        "Not found",
    );
}

#[test]
fn bodies_must_be_small_json_objects() {
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let token = api.token.clone();
    let big = serde_json::to_vec(&json!({"description": "x".repeat(17 * 1024)})).unwrap();
    assert_error(
        &server.call_raw("POST", "/api/v1/backends/memory", &token, big),
        StatusCode::PAYLOAD_TOO_LARGE,
        "16 KB",
    );
    assert_error(
        &server.call_raw(
            "POST",
            "/api/v1/backends/memory",
            &token,
            b"{not json".to_vec(),
        ),
        StatusCode::BAD_REQUEST,
        "JSON",
    );
    assert_error(
        &api.post("/api/v1/backends/memory", &json!([1, 2])),
        StatusCode::BAD_REQUEST,
        "JSON object",
    );
    assert_eq!(
        api.get("/api/v1/backends").1["count"],
        json!(0),
        "nothing half-written"
    );
}

#[test]
fn names_are_validated_and_unique_per_org() {
    let server = Server::start();
    let api = Api::new(&server, "acme");
    assert_error(
        &api.post("/api/v1/backends/memory", &json!({"name": "Bad Name"})),
        StatusCode::BAD_REQUEST,
        "name",
    );
    let id = api.connect("memory", &json!({"name": "scratch"}));
    assert_error(
        &api.post("/api/v1/backends/memory", &json!({"name": "scratch"})),
        StatusCode::CONFLICT,
        "scratch",
    );
    assert_eq!(
        api.get(&format!("/api/v1/backends/{id}")).1["name"],
        json!("scratch")
    );
    api.delete(&format!("/api/v1/backends/{id}"));
    api.connect("memory", &json!({"name": "scratch"}));
}

#[test]
fn local_backends_stay_inside_the_local_roots() {
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let inside = server.local_root.join("photos");
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::write(inside.join("a.txt"), "hello").unwrap();
    let id = api.connect("local", &json!({"root": inside, "description": "photos"}));
    let (_, detail) = api.get(&format!("/api/v1/backends/{id}"));
    assert_eq!(detail["config"]["root"], json!(inside));
    // The default root is the first local root.
    api.connect(
        "local",
        &json!({"no_preallocate": true, "one_file_system": true}),
    );
    for outside in ["/etc", "/"] {
        assert_error(
            &api.post("/api/v1/backends/local", &json!({"root": outside})),
            StatusCode::BAD_REQUEST,
            "root",
        );
    }
    let escape = server.local_root.join("escape");
    std::os::unix::fs::symlink("/etc", &escape).unwrap();
    assert_error(
        &api.post("/api/v1/backends/local", &json!({"root": escape})),
        StatusCode::BAD_REQUEST,
        "root",
    );
    let dotdot = format!("{}/../..", server.local_root.display());
    assert_error(
        &api.post("/api/v1/backends/local", &json!({"root": dotdot})),
        StatusCode::BAD_REQUEST,
        "root",
    );
    assert_error(
        &api.post("/api/v1/backends/local", &json!({"time_type": "sometimes"})),
        StatusCode::BAD_REQUEST,
        "Invalid time_type: must be one of mtime, atime, btime, ctime",
    );
    assert_eq!(
        api.get("/api/v1/backends").1["count"],
        json!(2),
        "failed connects store nothing"
    );
}

#[test]
fn a_failing_probe_is_reported_and_retried() {
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let root = server.local_root.join("vanishing");
    std::fs::create_dir_all(&root).unwrap();
    let id = api.connect("local", &json!({"root": root}));
    std::fs::remove_dir(&root).unwrap();
    let (status, test) = api.get(&format!("/api/v1/backends/{id}/test"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(test["success"], json!(false), "{test}");
    assert!(!test["message"].as_str().unwrap().is_empty());
    let (_, detail) = api.get(&format!("/api/v1/backends/{id}"));
    assert_eq!(detail["connected"], json!(false));
    assert!(
        matches!(detail["state"].as_str(), Some("failed" | "connecting")),
        "{detail}"
    );
    // The backend actor retries by itself and recovers once the root is back.
    std::fs::create_dir_all(&root).unwrap();
    let recovered = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        api.get(&format!("/api/v1/backends/{id}")).1["connected"] == json!(true)
    });
    assert!(
        recovered,
        "backend did not recover: {}",
        api.get(&format!("/api/v1/backends/{id}")).1
    );
}

#[test]
fn credential_updates_follow_the_rules() {
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let id = api.connect("memory", &json!({}));
    let path = format!("/api/v1/backends/{id}");
    assert_error(
        &api.put(&path, &json!({"description": "renamed"})),
        StatusCode::BAD_REQUEST,
        "Invalid request: only credential fields are allowed",
    );
    assert_error(
        &api.put("/api/v1/backends/0123456789abcdef", &json!({"pass": "x"})),
        StatusCode::NOT_FOUND,
        "Backend not found",
    );
    let big = serde_json::to_vec(&json!({"pass": "x".repeat(17 * 1024)})).unwrap();
    assert_error(
        &server.call_raw("PUT", &path, &api.token, big),
        StatusCode::PAYLOAD_TOO_LARGE,
        "16 KB",
    );
    assert_eq!(
        api.get(&path).1["description"],
        json!(""),
        "nothing changed"
    );
}

#[test]
fn actor_health_lists_the_registry_and_backends() {
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let id = api.connect("memory", &json!({}));
    let (status, health) = api.get("/api/v1/health/actors");
    assert_eq!(status, StatusCode::OK);
    let actors = health["actors"].as_array().unwrap();
    let find = |kind: &str| {
        actors
            .iter()
            .find(|a| a["kind"] == json!(kind))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let registry = find("registry");
    assert_eq!(registry["state"], json!("running"));
    let backend = find("backend");
    assert_eq!(backend["id"], json!(id));
    assert_eq!(backend["state"], json!("connected"));
    assert_eq!(backend["restarts"], json!(0));
    assert!(
        backend.get("since").is_some() && backend.get("last_error").is_some(),
        "{backend}"
    );
}
