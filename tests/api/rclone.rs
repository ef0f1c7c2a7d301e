//! Providers served by rclone, through the API: connect, test and wrong
//! credentials against real servers (`rclone serve webdav` on 127.0.0.1, a
//! local directory with `"engine": "rclone"`), clear refusals, and secrets
//! that never leave the process. Skipped without rclone, unless
//! `BERTH_REQUIRE_RCLONE=1` (scripts/test.sh).

use crate::cloud::assert_never_leaked;
use crate::common::rclone::{rclone_present, WebDav};
use crate::common::{assert_error, Api, Server};
use berth_storage::testkit::free_port;
use reqwest::StatusCode;
use serde_json::json;

#[test]
fn webdav_connects_and_wrong_passwords_are_clear_400s() {
    if !rclone_present("webdav_connects_and_wrong_passwords_are_clear_400s") {
        return;
    }
    let pass = "webdav-secret-Pa55";
    let dav = WebDav::start("alice", pass);
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
