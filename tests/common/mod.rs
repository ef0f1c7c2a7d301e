//! Test harness: runs the real `berth` binary on a free port with its own data
//! dir, and talks to it over real HTTP.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod rclone;

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The JWT secret every test server uses.
pub const JWT_SECRET: &str = "integration-test-secret";

/// How to start a server.
#[derive(Clone, Default)]
pub struct Options {
    /// `BERTH_DATABASE_URL`; SQLite in the data dir when `None`.
    pub database_url: Option<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

/// A running `berth serve`. Stopped (SIGTERM) when dropped.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The data dir (kept across restarts).
    pub data_dir: PathBuf,
    /// The directory local backends may expose.
    pub local_root: PathBuf,
    options: Options,
    _tmp: std::sync::Arc<tempfile::TempDir>,
    client: Client,
}

/// A test PostgreSQL URL: `Some` when `BERTH_TEST_POSTGRES_URL` is set; when it
/// is not, the test is skipped, unless `BERTH_REQUIRE_POSTGRES=1` (set by
/// scripts/test.sh), where it fails.
pub fn postgres_url() -> Option<String> {
    match std::env::var("BERTH_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("BERTH_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            panic!("BERTH_REQUIRE_POSTGRES=1 but BERTH_TEST_POSTGRES_URL is not set")
        }
        _ => {
            eprintln!("SKIPPED: BERTH_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)");
            None
        }
    }
}

impl Server {
    /// A fresh server on SQLite.
    pub fn start() -> Server {
        Self::start_with(Options::default())
    }

    /// A fresh server with options.
    pub fn start_with(options: Options) -> Server {
        let tmp = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
        let data_dir = tmp.path().join("data");
        let local_root = tmp.path().join("local");
        std::fs::create_dir_all(&local_root).unwrap();
        let mut server = Server {
            child: None,
            base: String::new(),
            data_dir,
            local_root,
            options,
            _tmp: tmp,
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        server.spawn();
        server
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BERTH_LISTEN", "127.0.0.1:0")
            .env("BERTH_DATA_DIR", &self.data_dir)
            .env("BERTH_LOCAL_ROOTS", &self.local_root)
            .env("BERTH_JWT_SECRET", JWT_SECRET)
            .env("BERTH_LOG", "info")
            .env("BERTH_RETRY_BASE", "1s")
            .env("BERTH_PROBE_TIMEOUT", "10s");
        if let Some(url) = &self.options.database_url {
            cmd.env("BERTH_DATABASE_URL", url);
        }
        for (key, value) in &self.options.env {
            cmd.env(key, value);
        }
        cmd
    }

    /// Runs a `berth` subcommand with this server's environment.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.command().args(args).output().expect("run berth")
    }

    /// Where the server's stderr (its log) goes.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.with_file_name("berth.log")
    }

    fn spawn(&mut self) {
        std::fs::create_dir_all(&self.data_dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut child = self
            .command()
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn berth");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("berth listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => self.base = base,
            Err(_) => {
                let _ = child.kill();
                panic!("berth did not start; log:\n{}", self.log());
            }
        }
        self.child = Some(child);
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Stops the server with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            for _ in 0..200 {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server with SIGKILL (a crash).
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts again on the same data dir and database.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// A token for `org` with `scope`, valid for an hour.
    pub fn token(&self, org: &str, scope: &str) -> String {
        berth::auth::JwtKey::new(JWT_SECRET.as_bytes()).mint(org, scope, Duration::from_secs(3600))
    }

    /// Sends a request; answers the status and the JSON body (Null if none).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request)
    }

    /// Sends a raw body.
    pub fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body);
        self.send(request)
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().expect("request");
        let status = response.status();
        let text = response.text().unwrap_or_default();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client bound to one server and one token.
pub struct Api<'a> {
    /// The server.
    pub server: &'a Server,
    /// The bearer token.
    pub token: String,
}

impl<'a> Api<'a> {
    /// A client for `org` with read and write scopes.
    pub fn new(server: &'a Server, org: &str) -> Api<'a> {
        Api {
            server,
            token: server.token(org, "read write"),
        }
    }

    /// GET.
    pub fn get(&self, path: &str) -> (StatusCode, Value) {
        self.server.call("GET", path, Some(&self.token), None)
    }

    /// POST with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.server
            .call("POST", path, Some(&self.token), Some(body))
    }

    /// PUT with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.server.call("PUT", path, Some(&self.token), Some(body))
    }

    /// DELETE.
    pub fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.server.call("DELETE", path, Some(&self.token), None)
    }

    /// Connects a backend and answers its id, failing the test otherwise.
    pub fn connect(&self, slug: &str, body: &Value) -> String {
        let (status, json) = self.post(&format!("/api/v1/backends/{slug}"), body);
        assert_eq!(status, StatusCode::CREATED, "connect {slug}: {json}");
        json["data"]["id"].as_str().unwrap().to_string()
    }
}

/// The spec's provider tables.
pub fn spec_providers() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec/providers.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).unwrap();
    json["providers"].as_array().unwrap().clone()
}

/// Asserts an error envelope with `status` whose message contains `needle`.
#[track_caller]
pub fn assert_error(result: &(StatusCode, Value), status: StatusCode, needle: &str) {
    let (got, body) = result;
    assert_eq!(*got, status, "body: {body}");
    assert_eq!(body["success"], Value::Bool(false), "body: {body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(needle),
        "error {message:?} should contain {needle:?}"
    );
}
