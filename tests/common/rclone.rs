//! rclone in tests: whether it can run, and `rclone serve webdav` as a real
//! WebDAV server on 127.0.0.1.

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

/// `rclone serve webdav` of a temp dir with a user and password; killed on drop.
pub struct WebDav {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The directory it serves.
    pub dir: tempfile::TempDir,
}

impl WebDav {
    /// Starts serving a fresh directory as `user` with `pass`.
    pub fn start(user: &str, pass: &str) -> WebDav {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        WebDav {
            child: serve(dir.path(), port, user, pass),
            url: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    /// Serves the same directory at the same address again, now as `user`
    /// with `pass` (the server's password changed).
    pub fn restart(&mut self, user: &str, pass: &str) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        self.child = serve(self.dir.path(), port, user, pass);
    }
}

/// `rclone serve webdav` of `dir` on `port`, once it accepts connections.
fn serve(dir: &Path, port: u16, user: &str, pass: &str) -> Child {
    let child = Command::new("rclone")
        .args(["serve", "webdav"])
        .arg(dir)
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .args(["--user", user, "--pass", pass])
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

impl Drop for WebDav {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
