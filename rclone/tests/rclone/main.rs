//! berth-rclone against the real rclone binary: probes, real FUSE mounts of
//! a `local` remote in a temp dir, and [`RcloneStorage`](berth_rclone::RcloneStorage)
//! ([`storage`]). Skips (printing why) without rclone or FUSE, unless
//! `BERTH_REQUIRE_RCLONE=1`.

mod storage;

use berth_storage::testkit::free_port;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_rclone::{
    option, CacheMode, ProbeErrorKind, Rclone, RcloneError, RcloneMount, RcloneOption, RemoteDef,
    Remotes, VfsFlags, MIN_VERSION,
};
use tempfile::TempDir;

const MOUNT_TIMEOUT: Duration = Duration::from_secs(20);
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Passed as a secret option of every test remote; must never reach argv.
const SECRET: &str = "berth-test-secret-5f2a";

/// The running test's name (libtest names each test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("berth-rclone test")
        .to_owned()
}

/// Skips the calling test (or fails it under `BERTH_REQUIRE_RCLONE=1`).
fn skip(reason: &str) {
    berth_storage::testkit::available("BERTH_REQUIRE_RCLONE", &test_name(), Err(reason.into()));
}

/// The rclone of `BERTH_RCLONE` or `PATH`, located once per test binary.
async fn rclone() -> Option<Arc<Rclone>> {
    static RCLONE: tokio::sync::OnceCell<Result<Arc<Rclone>, String>> =
        tokio::sync::OnceCell::const_new();
    let located = RCLONE
        .get_or_init(|| async {
            let configured = std::env::var_os("BERTH_RCLONE").map(PathBuf::from);
            Rclone::locate(configured.as_deref())
                .await
                .map(Arc::new)
                .map_err(|e| format!("no usable rclone: {e}"))
        })
        .await;
    match located {
        Ok(rclone) => Some(rclone.clone()),
        Err(why) => {
            skip(why);
            None
        }
    }
}

/// rclone, plus FUSE (`/dev/fuse` and `fusermount3`).
async fn rclone_with_fuse() -> Option<Arc<Rclone>> {
    let rclone = rclone().await?;
    let fusermount = Command::new("fusermount3").arg("-V").output().is_ok();
    if !Path::new("/dev/fuse").exists() || !fusermount {
        skip("FUSE is not available (/dev/fuse and fusermount3 are needed)");
        return None;
    }
    Some(rclone)
}

fn remote(name: &str, rclone_type: &str, options: Vec<RcloneOption>) -> RemoteDef {
    RemoteDef {
        name: name.into(),
        rclone_type: rclone_type.into(),
        options,
    }
}

/// A `local` remote carrying [`SECRET`] (as its description).
fn local_remotes(name: &str) -> Remotes {
    let options = vec![option::secret("description", SECRET)];
    Remotes::new(remote(name, "local", options), vec![]).unwrap()
}

/// A temp dir holding the backing store, mount point, cache and run dirs.
struct Fixture {
    _dir: TempDir,
    backing: PathBuf,
    mount_point: PathBuf,
    cache: PathBuf,
    run: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        std::fs::create_dir(path.join("backing")).unwrap();
        Fixture {
            backing: path.join("backing"),
            mount_point: path.join("mnt"),
            cache: path.join("cache"),
            run: path.join("run"),
            _dir: dir,
        }
    }

    async fn mount(&self, rclone: &Rclone, name: &str, vfs: &VfsFlags) -> RcloneMount {
        let mut mount = RcloneMount::spawn(
            rclone,
            &local_remotes(name),
            self.backing.to_str().unwrap(),
            &self.mount_point,
            vfs,
            &self.cache,
            &self.run,
        )
        .await
        .unwrap();
        mount.wait_mounted(MOUNT_TIMEOUT).await.unwrap();
        mount
    }
}

fn is_mounted(point: &Path) -> bool {
    let point = point.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(point))
}

async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn locates_rclone_and_rejects_what_is_not() {
    let Some(rclone) = rclone().await else { return };
    assert!(rclone.version() >= MIN_VERSION);
    let missing = Rclone::locate(Some(Path::new("/nonexistent/rclone"))).await;
    assert!(
        matches!(missing, Err(RcloneError::Missing { .. })),
        "{missing:?}"
    );
    let not_rclone = Rclone::locate(Some(Path::new("true"))).await;
    assert!(
        matches!(not_rclone, Err(RcloneError::NotRclone { .. })),
        "{not_rclone:?}"
    );
}

#[tokio::test]
async fn probe_lists_a_dir_and_explains_missing_ones_and_closed_ports() {
    let Some(rclone) = rclone().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let local = local_remotes("b_probe_local");
    let root = dir.path().to_str().unwrap();
    rclone
        .probe(&local, root, PROBE_TIMEOUT, &[])
        .await
        .unwrap();

    let missing = format!("{root}/nope");
    let error = rclone
        .probe(&local, &missing, PROBE_TIMEOUT, &[])
        .await
        .unwrap_err();
    assert_eq!(error.kind, ProbeErrorKind::NotFound, "{error}");

    let sftp = Remotes::new(
        remote(
            "b_probe_sftp",
            "sftp",
            vec![
                option::plain("host", "127.0.0.1"),
                option::plain("port", free_port().to_string()),
                option::plain("user", "bob"),
                option::obscured("pass", SECRET),
            ],
        ),
        vec![],
    )
    .unwrap();
    let error = rclone
        .probe(&sftp, "", PROBE_TIMEOUT, &["bob"])
        .await
        .unwrap_err();
    assert_eq!(error.kind, ProbeErrorKind::ConnectionRefused, "{error}");
    assert!(error.message.starts_with("connection refused: "), "{error}");
    assert!(
        !error.message.contains(SECRET) && !error.message.contains('\n'),
        "{error}"
    );
}

#[tokio::test]
async fn probe_errors_never_show_secrets() {
    let Some(rclone) = rclone().await else { return };
    // rclone prints the URL it failed to reach (a secret here) and the path.
    let url = format!("http://127.0.0.1:{}/{SECRET}/", free_port());
    let options = vec![option::secret("url", url)];
    let webdav = Remotes::new(remote("b_probe_secret", "webdav", options), vec![]).unwrap();
    let error = rclone
        .probe(
            &webdav,
            "extra-secret-dir",
            PROBE_TIMEOUT,
            &["extra-secret-dir"],
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind, ProbeErrorKind::ConnectionRefused, "{error}");
    // The whole URL is the secret option's value, then the scrubbed path.
    assert!(error.message.contains("Propfind \"******\""), "{error}");
    assert!(!error.message.contains(SECRET) && !error.message.contains("extra-secret"));
}

/// `rclone serve webdav` on a free loopback port, killed when dropped.
struct WebDav {
    child: std::process::Child,
    url: String,
}

impl WebDav {
    fn start(rclone: &Rclone, root: &Path, user: &str, pass: &str) -> Self {
        let port = free_port();
        let child = Command::new(rclone.path())
            .args(["serve", "webdav"])
            .arg(root)
            .args([
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--user",
                user,
                "--pass",
                pass,
            ])
            .env("RCLONE_CONFIG", "/dev/null")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rclone serve webdav did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        WebDav {
            child,
            url: format!("http://127.0.0.1:{port}/"),
        }
    }
}

impl Drop for WebDav {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn probe_reports_a_bad_webdav_password_without_showing_it() {
    let Some(rclone) = rclone().await else { return };
    let root = tempfile::tempdir().unwrap();
    let server = WebDav::start(&rclone, root.path(), "alice", "right-password");
    let webdav = |pass: &str| {
        let options = vec![
            option::plain("url", server.url.clone()),
            option::plain("user", "alice"),
            option::obscured("pass", pass),
        ];
        Remotes::new(remote("b_dav", "webdav", options), vec![]).unwrap()
    };
    let good = webdav("right-password");
    rclone.probe(&good, "", PROBE_TIMEOUT, &[]).await.unwrap();
    let bad = webdav("wrong-password");
    let error = rclone
        .probe(&bad, "", PROBE_TIMEOUT, &[])
        .await
        .unwrap_err();
    assert_eq!(error.kind, ProbeErrorKind::Auth, "{error}");
    assert!(error.message.contains("401"), "{error}");
    assert!(!error.message.contains("wrong-password"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_serves_reads_and_writes_and_keeps_secrets_out_of_argv() {
    let Some(rclone) = rclone_with_fuse().await else {
        return;
    };
    let fx = Fixture::new();
    let vfs = VfsFlags {
        write_back: Some(Duration::from_millis(100)),
        ..VfsFlags::default()
    };
    let mut mount = fx.mount(&rclone, "b_mount_rw", &vfs).await;
    assert!(mount.is_alive());

    let pid = mount.pid().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains(" mount b_mount_rw:"), "{cmdline}");
    assert!(!cmdline.contains(SECRET), "secret in argv: {cmdline}");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mut rclone_vars: Vec<String> = String::from_utf8_lossy(&environ)
        .split('\0')
        .filter(|var| var.starts_with("RCLONE_"))
        .map(str::to_owned)
        .collect();
    rclone_vars.sort();
    assert_eq!(
        rclone_vars,
        [
            "RCLONE_CONFIG=/dev/null".to_owned(),
            format!("RCLONE_CONFIG_B_MOUNT_RW_DESCRIPTION={SECRET}"),
            "RCLONE_CONFIG_B_MOUNT_RW_TYPE=local".to_owned(),
        ]
    );
    let socket_dir = std::fs::metadata(&fx.run).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&socket_dir.permissions()) & 0o777,
        0o700
    );

    std::fs::write(fx.backing.join("before.txt"), "from the store").unwrap();
    let through = mount.mount_point().join("before.txt");
    assert_eq!(std::fs::read_to_string(through).unwrap(), "from the store");
    std::fs::create_dir(mount.mount_point().join("sub")).unwrap();
    std::fs::write(mount.mount_point().join("sub/hello.txt"), "hello, berth").unwrap();
    let read_back = std::fs::read_to_string(mount.mount_point().join("sub/hello.txt")).unwrap();
    assert_eq!(read_back, "hello, berth");

    mount.unmount(Duration::from_secs(20)).await.unwrap();
    assert!(!is_mounted(mount.mount_point()));
    let stored = std::fs::read_to_string(fx.backing.join("sub/hello.txt")).unwrap();
    assert_eq!(stored, "hello, berth");
    assert!(!mount.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmount_uploads_every_queued_file_first() {
    let Some(rclone) = rclone_with_fuse().await else {
        return;
    };
    let fx = Fixture::new();
    let vfs = VfsFlags {
        cache_mode: CacheMode::Writes,
        write_back: Some(Duration::from_secs(600)),
        ..VfsFlags::default()
    };
    let mut mount = fx.mount(&rclone, "b_mount_drain", &vfs).await;
    let files: Vec<(String, String)> = (0..5)
        .map(|i| {
            (
                format!("file-{i}.txt"),
                format!("content {i} ").repeat(1000),
            )
        })
        .collect();
    for (name, content) in &files {
        std::fs::write(mount.mount_point().join(name), content).unwrap();
    }
    // The kernel sends RELEASE after close(2) returns: the queue fills shortly.
    let deadline = Instant::now() + Duration::from_secs(10);
    while mount.pending_uploads().await.unwrap() < files.len() as u64 {
        assert!(Instant::now() < deadline, "the files were never queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !fx.backing.join("file-0.txt").exists(),
        "uploaded before its write-back delay"
    );

    // A drain that cannot finish leaves the mount up, the queue intact.
    let error = mount.unmount(Duration::ZERO).await.unwrap_err();
    assert!(
        matches!(error, RcloneError::DrainTimeout { pending: 5, .. }),
        "{error}"
    );
    assert!(mount.is_alive());

    let started = Instant::now();
    mount.unmount(Duration::from_secs(30)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the queue was not hurried"
    );
    assert!(!is_mounted(mount.mount_point()));
    for (name, content) in &files {
        let stored = std::fs::read_to_string(fx.backing.join(name)).unwrap();
        assert_eq!(&stored, content, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_child_is_not_alive_and_its_dead_mount_is_cleared() {
    let Some(rclone) = rclone_with_fuse().await else {
        return;
    };
    let fx = Fixture::new();
    let mut mount = fx
        .mount(&rclone, "b_mount_kill", &VfsFlags::default())
        .await;
    assert!(mount.is_alive());
    let pid = mount.pid().unwrap() as libc::pid_t;
    // SAFETY: kill(2) of the rclone child this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    eventually("is_alive turns false", Duration::from_secs(10), || {
        !mount.is_alive()
    })
    .await;
    // SIGKILL leaves the FUSE mount dead but mounted; unmount clears it.
    mount.unmount(Duration::from_secs(5)).await.unwrap();
    assert!(!is_mounted(mount.mount_point()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_mounted_fails_early_with_rclones_reason() {
    let Some(rclone) = rclone_with_fuse().await else {
        return;
    };
    let fx = Fixture::new();
    std::fs::create_dir(&fx.mount_point).unwrap();
    std::fs::write(fx.mount_point.join("in-the-way"), "").unwrap();
    let mut mount = RcloneMount::spawn(
        &rclone,
        &local_remotes("b_mount_busy"),
        fx.backing.to_str().unwrap(),
        &fx.mount_point,
        &VfsFlags::default(),
        &fx.cache,
        &fx.run,
    )
    .await
    .unwrap();
    let started = Instant::now();
    let error = mount.wait_mounted(MOUNT_TIMEOUT).await.unwrap_err();
    assert!(started.elapsed() < MOUNT_TIMEOUT / 2);
    let RcloneError::Exited { stderr, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(stderr.contains("is not empty"), "{stderr}");
}

/// Env var telling [`helper_mount_then_wait`] where to work.
const HELPER_DIR: &str = "BERTH_RCLONE_TEST_HELPER_DIR";

/// Not a test: run by [`the_mount_dies_with_its_parent_process`] in a child
/// process, it mounts, writes rclone's pid to `<dir>/pid`, and waits to be
/// killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of the_mount_dies_with_its_parent_process"]
async fn helper_mount_then_wait() {
    let Some(dir) = std::env::var_os(HELPER_DIR).map(PathBuf::from) else {
        return;
    };
    let rclone = rclone().await.unwrap();
    let fixture = Fixture::new();
    let mount = fixture
        .mount(&rclone, "b_mount_orphan", &VfsFlags::default())
        .await;
    let record = format!("{} {}", mount.pid().unwrap(), mount.mount_point().display());
    std::fs::write(dir.join("pid.tmp"), record).unwrap();
    std::fs::rename(dir.join("pid.tmp"), dir.join("pid")).unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test]
async fn the_mount_dies_with_its_parent_process() {
    if rclone_with_fuse().await.is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_mount_then_wait",
            "--ignored",
            "--nocapture",
        ])
        .env(HELPER_DIR, dir.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let record = dir.path().join("pid");
    eventually("the helper mounted", Duration::from_secs(30), || {
        record.exists()
    })
    .await;
    let record = std::fs::read_to_string(record).unwrap();
    let (pid, mount_point) = record.split_once(' ').unwrap();
    let mount_point = PathBuf::from(mount_point);
    assert!(is_mounted(&mount_point));

    helper.kill().unwrap();
    helper.wait().unwrap();
    let rclone_proc = PathBuf::from(format!("/proc/{pid}"));
    // rclone got SIGTERM from the kernel, unmounted and exited (a zombie
    // until init reaps it is fine).
    eventually(
        "rclone exits with its parent",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(rclone_proc.join("stat")).map_or(true, |stat| {
                stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z'))
            })
        },
    )
    .await;
    eventually("the mount goes", Duration::from_secs(10), || {
        !is_mounted(&mount_point)
    })
    .await;
}
