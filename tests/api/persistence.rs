//! Restarts keep every backend (SQLite and PostgreSQL); configs are encrypted
//! at rest.

use crate::common::{postgres_url, Api, Options, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn backends(api: &Api) -> Vec<Value> {
    let (status, list) = api.get("/api/v1/backends");
    assert_eq!(status, StatusCode::OK);
    list["backends"].as_array().unwrap().clone()
}

fn restart_keeps_backends(options: Options) {
    let mut server = Server::start_with(options);
    let api = Api::new(&server, "acme");
    let root = server.local_root.join("kept");
    std::fs::create_dir_all(&root).unwrap();
    let local = api.connect("local", &json!({"root": root, "name": "kept"}));
    let memory = api.connect("memory", &json!({"description": "scratch"}));
    let before = backends(&api);
    server.restart();
    let api = Api::new(&server, "acme");
    let after = backends(&api);
    let ids = |list: &[Value]| list.iter().map(|b| b["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&after), ids(&before));
    assert!(ids(&after).contains(&json!(local)) && ids(&after).contains(&json!(memory)));
    for (a, b) in before.iter().zip(&after) {
        for key in [
            "backend_type",
            "server",
            "user",
            "created_at",
            "name",
            "description",
            "config",
            "state",
        ] {
            assert_eq!(a[key], b[key], "{key} changed across the restart");
        }
    }
    assert_eq!(
        api.get(&format!("/api/v1/backends/{local}/test")).1["success"],
        json!(true)
    );
    // A crash (SIGKILL) loses nothing either.
    server.crash();
    server.restart();
    assert_eq!(ids(&backends(&Api::new(&server, "acme"))), ids(&before));
    // Deleted backends stay deleted.
    let api = Api::new(&server, "acme");
    assert_eq!(
        api.delete(&format!("/api/v1/backends/{memory}")).0,
        StatusCode::OK
    );
    server.restart();
    let api = Api::new(&server, "acme");
    assert_eq!(ids(&backends(&api)), vec![json!(local)]);
}

#[test]
fn restart_keeps_backends_on_sqlite() {
    restart_keeps_backends(Options::default());
}

#[test]
fn restart_keeps_backends_on_postgres() {
    let Some(url) = postgres_url() else { return };
    // A schema of its own keeps this test independent of other runs.
    let schema = format!("berth_test_{}", std::process::id());
    let url_with_schema = format!("{url}?options=-c%20search_path%3D{schema}");
    let admin = std::process::Command::new("psql")
        .arg(&url)
        .args([
            "-c",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
        ])
        .output()
        .expect("psql");
    assert!(
        admin.status.success(),
        "{}",
        String::from_utf8_lossy(&admin.stderr)
    );
    restart_keeps_backends(Options {
        database_url: Some(url_with_schema),
        ..Options::default()
    });
}

#[test]
fn configs_are_encrypted_at_rest() {
    let mut server = Server::start();
    let api = Api::new(&server, "acme");
    let marker = "sealed-marker-7f3a9c";
    let root = server.local_root.join(marker);
    std::fs::create_dir_all(&root).unwrap();
    api.connect("local", &json!({"root": root}));
    server.stop();
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&server.data_dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap_or_default();
        if bytes.windows(marker.len()).any(|w| w == marker.as_bytes()) {
            found.push(path);
        }
    }
    assert!(
        found.is_empty(),
        "config value stored in clear in {found:?}"
    );
    // The master key was generated with mode 0600 and the config still opens.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(server.data_dir.join("master.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    server.restart();
    let list = Api::new(&server, "acme").get("/api/v1/backends").1;
    assert_eq!(list["backends"][0]["config"]["root"], json!(root));
}

#[test]
fn a_wrong_master_key_stops_the_start_instead_of_dropping_backends() {
    let mut server = Server::start();
    Api::new(&server, "acme").connect("memory", &json!({}));
    server.stop();
    let key_file = server.data_dir.join("master.key");
    std::fs::remove_file(&key_file).unwrap();
    let output = server.cli(&["serve"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("master key"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
