//! Providers served by rclone, through the API: connect, test and wrong
//! credentials against real servers (`rclone serve webdav` on 127.0.0.1, a
//! local directory with `"engine": "rclone"`), wrappers over them served by
//! rclone too, OAuth tokens rclone refreshes kept (GCS emulator behind a
//! rotating token server), clear refusals, and secrets that never leave the
//! process.
//! Skipped without rclone, unless `BERTH_REQUIRE_RCLONE=1`
//! (scripts/test.sh).

use crate::cloud::{assert_never_leaked, setting};
use crate::common::rclone::{rclone_present, Served, TokenServer};
use crate::common::{assert_error, Api, Options, Server};
use berth_storage::testkit::free_port;
use reqwest::StatusCode;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[test]
fn webdav_connects_and_wrong_passwords_are_clear_400s() {
    if !rclone_present("webdav_connects_and_wrong_passwords_are_clear_400s") {
        return;
    }
    let pass = "webdav-secret-Pa55";
    let dav = Served::webdav("alice", pass);
    std::fs::write(dav.dir.path().join("hello.txt"), b"hi").unwrap();
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let body = json!({"url": dav.url, "user": "alice", "pass": pass, "vendor": "rclone"});
    let created = api.post("/api/v1/backends/webdav", &body);
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let data = &created.1["data"];
    assert_eq!(data["backend_type"], "webdav");
    let id = data["id"].as_str().unwrap();
    let shown = api.get(&format!("/api/v1/backends/{id}"));
    assert_eq!(shown.1["state"], "connected", "{}", shown.1);
    assert_eq!(shown.1["config"]["pass"], "***");
    let tested = api.get(&format!("/api/v1/backends/{id}/test"));
    assert_eq!(tested.0, StatusCode::OK, "{}", tested.1);

    let wrong = "not-the-Pa55word";
    let body = json!({"url": dav.url, "user": "alice", "pass": wrong, "name": "bad"});
    let refused = api.post("/api/v1/backends/webdav", &body);
    assert_error(&refused, StatusCode::BAD_REQUEST, "authentication failed");
    let listed = api.get("/api/v1/backends");
    assert_eq!(listed.1["backends"].as_array().unwrap().len(), 1);
    assert_never_leaked(
        &server,
        &[created.1, shown.1, tested.1, refused.1, listed.1],
        pass,
    );
    assert_never_leaked(&server, &[], wrong);
}

#[test]
fn local_directories_run_in_rclone_on_request() {
    if !rclone_present("local_directories_run_in_rclone_on_request") {
        return;
    }
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let root = server.local_root.join("through-rclone");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), b"a").unwrap();
    let body = json!({"root": root, "engine": "rclone"});
    let id = api.connect("local", &body);
    let shown = api.get(&format!("/api/v1/backends/{id}"));
    assert_eq!(shown.1["config"]["engine"], "rclone", "{}", shown.1);
    let tested = api.get(&format!("/api/v1/backends/{id}/test"));
    assert_eq!(tested.0, StatusCode::OK, "{}", tested.1);
    // Confined like the native driver: no root outside the allowed ones.
    let outside = api.post(
        "/api/v1/backends/local",
        &json!({"root": "/etc", "engine": "rclone"}),
    );
    assert_eq!(outside.0, StatusCode::BAD_REQUEST, "{}", outside.1);
}

#[test]
fn what_rclone_cannot_serve_is_refused_clearly() {
    if !rclone_present("what_rclone_cannot_serve_is_refused_clearly") {
        return;
    }
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let port = free_port();
    let closed = api.post(
        "/api/v1/backends/sftp",
        &json!({"host": "127.0.0.1", "port": port, "user": "bob", "pass": "sftp-Secret-9"}),
    );
    assert_error(&closed, StatusCode::BAD_REQUEST, "connection refused");
    let memory = api.post("/api/v1/backends/memory", &json!({"engine": "rclone"}));
    assert_error(&memory, StatusCode::BAD_REQUEST, "use engine native");
    let native = api.post(
        "/api/v1/backends/dropbox",
        &json!({"token": "{}", "engine": "native"}),
    );
    assert_error(
        &native,
        StatusCode::BAD_REQUEST,
        "Invalid engine: this provider has no native engine; engine must be rclone",
    );
    let gone = api.post("/api/v1/backends/uptobox", &json!({"access_token": "x"}));
    assert_error(&gone, StatusCode::BAD_REQUEST, "uptobox closed in 2023");
    assert_never_leaked(&server, &[closed.1], "sftp-Secret-9");
}

/// A script in `dir` that appends its command line to `dir/commands.log`,
/// then runs the real rclone: berth's `BERTH_RCLONE`, so the test sees
/// which remotes berth asks rclone for.
fn logged_rclone(dir: &Path) -> (PathBuf, PathBuf) {
    let log = dir.join("commands.log");
    let script = dir.join("rclone-logged");
    let body = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec rclone \"$@\"\n",
        log.display()
    );
    std::fs::write(&script, body).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

#[test]
fn wrappers_over_rclone_backends_run_in_rclone() {
    if !rclone_present("wrappers_over_rclone_backends_run_in_rclone") {
        return;
    }
    let (old, new) = ("dav-Old-Pa55", "dav-New-Pa55");
    let mut dav = Served::webdav("alice", old);
    std::fs::create_dir_all(dav.dir.path().join("share")).unwrap();
    let tools = tempfile::tempdir().unwrap();
    let (rclone, commands) = logged_rclone(tools.path());
    let server = Server::start_with(Options {
        env: vec![("BERTH_RCLONE".into(), rclone.display().to_string())],
        ..Options::default()
    });
    let api = Api::new(&server, "acme");
    let webdav = api.connect(
        "webdav",
        &json!({"name": "dav", "url": dav.url, "user": "alice", "pass": old, "vendor": "rclone"}),
    );
    let side = server.local_root.join("side");
    std::fs::create_dir_all(&side).unwrap();
    let upstreams = format!("dav:share {}:ro", side.display());
    let union = api.connect("union", &json!({"name": "both", "upstreams": upstreams}));
    let alias = api.connect("alias", &json!({"remote": "both:"}));
    let native = api.connect("union", &json!({"upstreams": side}));
    let ran = |id: &str| {
        let log = std::fs::read_to_string(&commands).unwrap_or_default();
        log.lines().any(|l| l.contains(&format!("b_{id}:")))
    };
    for id in [&union, &alias] {
        let tested = api.get(&format!("/api/v1/backends/{id}/test"));
        assert_eq!(tested.1["success"], json!(true), "{}", tested.1);
        assert!(ran(id), "rclone was not asked for backend {id}");
    }
    let tested = api.get(&format!("/api/v1/backends/{native}/test"));
    assert_eq!(tested.1["success"], json!(true), "{}", tested.1);
    assert!(!ran(&native), "a union of local directories stays native");

    // The server's password changes: the wrappers fail until the webdav
    // backend's credentials are rotated, then work again (rebuilt).
    dav.restart_webdav("alice", new);
    let stale = api.get(&format!("/api/v1/backends/{alias}/test"));
    assert_eq!(stale.1["success"], json!(false), "{}", stale.1);
    let rotated = api.put(&format!("/api/v1/backends/{webdav}"), &json!({"pass": new}));
    assert_eq!(rotated.0, StatusCode::OK, "{}", rotated.1);
    let mut responses = vec![stale.1, rotated.1];
    for id in [&union, &alias] {
        let tested = api.get(&format!("/api/v1/backends/{id}/test"));
        assert_eq!(tested.1["success"], json!(true), "{}", tested.1);
        responses.push(api.get(&format!("/api/v1/backends/{id}")).1);
    }
    for pass in [old, new] {
        assert_never_leaked(&server, &responses, pass);
    }
}

#[test]
fn wrappers_over_backends_rclone_cannot_serve_are_refused() {
    if !rclone_present("wrappers_over_backends_rclone_cannot_serve_are_refused") {
        return;
    }
    let dav = Served::webdav("alice", "dav-Pa55");
    let server = Server::start();
    let api = Api::new(&server, "acme");
    api.connect(
        "webdav",
        &json!({"name": "dav", "url": dav.url, "user": "alice", "pass": "dav-Pa55", "vendor": "rclone"}),
    );
    api.connect("memory", &json!({"name": "mem"}));
    let refused = api.post("/api/v1/backends/union", &json!({"upstreams": "dav: mem:"}));
    assert_error(
        &refused,
        StatusCode::BAD_REQUEST,
        "backend 'mem' (memory), which this union uses, cannot run in rclone",
    );
}

/// A backend whose OAuth refresh token rotates on every refresh (as Box's
/// do) keeps working through many rclone processes, a restart, and the loss
/// of berth's token file: each refreshed token reaches the database, and
/// none is stored or shown in clear.
#[test]
fn oauth_tokens_rclone_refreshes_are_kept() {
    if !rclone_present("oauth_tokens_rclone_refreshes_are_kept") {
        return;
    }
    let Some(gcs) = setting("BERTH_TEST_GCS_ENDPOINT") else {
        return;
    };
    let tokens = TokenServer::start("refresh-rotating-7f3a");
    let mut server = Server::start();
    let api = Api::new(&server, "acme");
    let token = json!({
        "access_token": "access-expired-7f3a",
        "refresh_token": "refresh-rotating-7f3a",
        "token_type": "Bearer",
        "expiry": "2020-01-01T00:00:00Z",
    });
    let body = json!({
        "engine": "rclone",
        "endpoint": format!("{gcs}/storage/v1/"),
        "project_number": "berth-test",
        "token": token.to_string(),
        "token_url": tokens.url,
    });
    let created = api.post("/api/v1/backends/google-cloud-storage", &body);
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let id = created.1["data"]["id"].as_str().unwrap().to_owned();
    let test = format!("/api/v1/backends/{id}/test");
    let mut responses = vec![created.1];
    // Without the token file, the database's token must be the latest:
    // here the one the connect probe got.
    let restart_without_token_file = |server: &mut Server| {
        server.stop();
        std::fs::remove_dir_all(server.data_dir.join("rclone")).unwrap();
        server.restart();
    };
    restart_without_token_file(&mut server);
    let api = Api::new(&server, "acme");
    for _ in 0..3 {
        let tested = api.get(&test);
        assert_eq!(tested.1["success"], json!(true), "{}", tested.1);
        responses.push(tested.1);
    }
    server.restart();
    let api = Api::new(&server, "acme");
    let tested = api.get(&test);
    assert_eq!(tested.1["success"], json!(true), "{}", tested.1);
    restart_without_token_file(&mut server);
    let api = Api::new(&server, "acme");
    let tested = api.get(&test);
    assert_eq!(tested.1["success"], json!(true), "{}", tested.1);
    responses.push(tested.1);
    responses.push(api.get(&format!("/api/v1/backends/{id}")).1);

    let grants = tokens.grants();
    assert!(grants.issued.len() >= 6, "{grants:?}");
    assert_eq!(grants.refused, 0, "a used-up refresh token was sent");
    for issued in &grants.issued {
        assert_never_leaked(&server, &responses, issued);
    }
}
