//! rclone in tests: whether it can run, and `rclone serve webdav` and
//! `rclone serve s3` as real WebDAV and S3 servers on 127.0.0.1.

use berth_storage::testkit::{available, free_port};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Whether rclone runs; skips `test` without it, unless
/// `BERTH_REQUIRE_RCLONE=1` (scripts/test.sh), where it fails.
pub fn rclone_present(test: &str) -> bool {
    let probe = Command::new("rclone")
        .arg("version")
        .output()
        .map_err(|e| format!("rclone cannot run ({e})"))
        .and_then(|out| {
            out.status
                .success()
                .then_some(())
                .ok_or_else(|| "rclone version failed".to_string())
        });
    available("BERTH_REQUIRE_RCLONE", test, probe)
}

/// `rclone serve <protocol>` of a temp dir on 127.0.0.1; killed on drop.
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The directory it serves.
    pub dir: tempfile::TempDir,
}

impl Served {
    /// Serves a fresh directory over WebDAV as `user` with `pass`.
    pub fn webdav(user: &str, pass: &str) -> Served {
        Served::start("webdav", &["--user", user, "--pass", pass])
    }

    /// Serves a fresh directory over S3 (gofakes3, which checks SigV4) with
    /// `access_key_id` and `secret`; each top directory is a bucket.
    pub fn s3(access_key_id: &str, secret: &str) -> Served {
        Served::start("s3", &["--auth-key", &format!("{access_key_id},{secret}")])
    }

    fn start(protocol: &str, auth: &[&str]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        Served {
            child: serve(protocol, dir.path(), port, auth),
            url: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    /// Serves the same directory over WebDAV at the same address again, now
    /// as `user` with `pass` (the server's password changed).
    pub fn restart_webdav(&mut self, user: &str, pass: &str) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        self.child = serve(
            "webdav",
            self.dir.path(),
            port,
            &["--user", user, "--pass", pass],
        );
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rclone serve <protocol> dir --addr 127.0.0.1:port <auth>`, once it
/// accepts connections.
fn serve(protocol: &str, dir: &Path, port: u16, auth: &[&str]) -> Child {
    let child = Command::new("rclone")
        .arg("serve")
        .arg(protocol)
        .arg(dir)
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .args(auth)
        .env("RCLONE_CONFIG", "/dev/null")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// An OAuth token endpoint on 127.0.0.1 that rotates refresh tokens the way
/// Box does: each refresh token works once, and every answer carries a new
/// one. Access tokens it issues expire at once, so every rclone process
/// refreshes. Stops when dropped.
pub struct TokenServer {
    /// The token URL (`http://127.0.0.1:PORT/token`).
    pub url: String,
    state: std::sync::Arc<std::sync::Mutex<Grants>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// What the token server has seen.
#[derive(Debug, Default, Clone)]
pub struct Grants {
    /// The refresh token that works next.
    pub valid: String,
    /// Every refresh token it issued, the first one included.
    pub issued: Vec<String>,
    /// Refresh requests it refused (a used-up or unknown refresh token).
    pub refused: usize,
}

impl TokenServer {
    /// Starts with `first` as the one valid refresh token; tokens it issues
    /// are `first` plus a counter.
    pub fn start(first: &str) -> TokenServer {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(Grants {
            valid: first.to_owned(),
            issued: vec![first.to_owned()],
            refused: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopping) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => answer_token_request(stream, &shared),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TokenServer { url, state, stop }
    }

    /// What it has seen so far.
    pub fn grants(&self) -> Grants {
        self.state.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Answers one `grant_type=refresh_token` POST.
fn answer_token_request(mut stream: std::net::TcpStream, state: &std::sync::Mutex<Grants>) {
    use std::io::{BufRead, BufReader, Read, Write};
    stream.set_nonblocking(false).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let body = String::from_utf8_lossy(&body);
    let presented = body
        .split('&')
        .find_map(|pair| pair.strip_prefix("refresh_token="))
        .unwrap_or_default()
        .to_owned();
    let (status, answer) = {
        let mut grants = state.lock().unwrap();
        if presented == grants.valid {
            let next = format!("{}-{}", grants.issued[0], grants.issued.len());
            grants.valid = next.clone();
            grants.issued.push(next.clone());
            let answer = serde_json::json!({
                "access_token": format!("access-{next}"),
                "refresh_token": next,
                "token_type": "Bearer",
                "expires_in": 1,
            });
            ("200 OK", answer)
        } else {
            grants.refused += 1;
            (
                "400 Bad Request",
                serde_json::json!({"error": "invalid_grant"}),
            )
        }
    };
    let answer = answer.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
}
