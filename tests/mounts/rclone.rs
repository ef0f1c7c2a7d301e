//! Mounts of backends served by rclone: `rclone mount` children owned by the
//! mount actors, through the API and real FUSE. A local directory with
//! `"engine": "rclone"`, the S3 emulator with `"engine": "rclone"`, Debian's
//! sshd (sftp) and `rclone serve webdav` each go through the whole life
//! (mount, use, restart, crash, a killed rclone healed without losing its
//! queued uploads, PATCH, DELETE draining the queue); a union of webdav and
//! a local directory, which rclone serves too, is written, read and
//! unmounted without loss.
//! Skipped without rclone or FUSE, unless `BERTH_REQUIRE_RCLONE=1` and
//! `BERTH_REQUIRE_FUSE=1` (scripts/test.sh).

use super::{create_mount, eventually, exercise, fuse_available, is_mounted};
use crate::common::rclone::{rclone_present, Served};
use crate::common::{Api, Server};
use berth_storage::testkit::available;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

fn rclone_mounts_available(test: &str) -> bool {
    fuse_available() && rclone_present(test)
}

/// The value of `name`, set when scripts/test.sh started the server it
/// names; without it `test` is skipped, unless `require` is `1`, where it
/// fails.
fn server_var(name: &str, require: &str, test: &str) -> Option<String> {
    let value = std::env::var(name).unwrap_or_default();
    let configured = if value.is_empty() {
        Err(format!("{name} is not set"))
    } else {
        Ok(())
    };
    available(require, test, configured).then_some(value)
}

/// What a test of rclone mounts against a test server needs: FUSE, rclone,
/// and the server's variable `name` (see [`server_var`]).
fn rclone_mount_server(test: &str, name: &str, require: &str) -> Option<String> {
    if !rclone_mounts_available(test) {
        return None;
    }
    server_var(name, require, test)
}

/// The filesystem type the kernel shows for the mount at `path`.
fn fstype(path: &Path) -> Option<String> {
    let wanted = path.to_string_lossy().replace(' ', "\\040");
    fs::read_to_string("/proc/self/mountinfo")
        .ok()?
        .lines()
        .filter(|line| line.split(' ').nth(4) == Some(&wanted))
        .filter_map(|line| line.split(" - ").nth(1)?.split(' ').next())
        .map(str::to_string)
        .next_back()
}

/// The command line of the `rclone mount` child serving `path`.
fn rclone_child(path: &Path) -> Option<(i32, Vec<String>)> {
    let wanted = path.to_string_lossy();
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let ours = args.iter().any(|a| a == "mount") && args.iter().any(|a| *a == wanted);
        ours.then_some((pid, args))
    })
}

/// Writes `count` small files, which rclone queues for upload after its
/// write-back delay.
fn write_queued(root: &Path, prefix: &str, count: usize) {
    for i in 0..count {
        fs::write(
            root.join(format!("{prefix}{i}.txt")),
            format!("{prefix} {i}"),
        )
        .unwrap();
    }
}

/// Waits until the rclone child of mount `id` counts at least `count`
/// uploads queued or running (its remote control `vfs/stats`). rclone
/// queues a file when the kernel releases it, a moment after `close`
/// returned: a file not queued yet when rclone is killed is not uploaded by
/// the next child (see docs/SEMANTICS.md).
fn wait_queued(server: &Server, id: &str, count: u64) {
    let socket = server.data_dir.join("vfs").join(id).join("run/rc.sock");
    eventually(10, "rclone to queue the files", || {
        let Ok(out) = std::process::Command::new("rclone")
            .args(["rc", "vfs/stats", "--unix-socket"])
            .arg(&socket)
            .env("RCLONE_CONFIG", "/dev/null")
            .output()
        else {
            return false;
        };
        let stats: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let cache = &stats["diskCache"];
        let pending = cache["uploadsQueued"].as_u64().unwrap_or(0)
            + cache["uploadsInProgress"].as_u64().unwrap_or(0);
        pending >= count
    });
}

/// Reads a file (by its path inside the mounted remote path) from the
/// store itself, behind berth's back; `None` while it is not there.
type Landed<'a> = &'a dyn Fn(&str) -> Option<Vec<u8>>;

/// Asserts the files of [`write_queued`] reached the store.
#[track_caller]
fn assert_uploaded(landed: Landed, prefix: &str, count: usize) {
    for i in 0..count {
        let name = format!("{prefix}{i}.txt");
        assert_eq!(
            landed(&name).unwrap_or_else(|| panic!("{name} did not reach the store")),
            format!("{prefix} {i}").into_bytes()
        );
    }
}

/// A directory on this machine as what a mount's files land in.
fn in_dir(dir: &Path) -> impl Fn(&str) -> Option<Vec<u8>> + '_ {
    move |name| fs::read(dir.join(name)).ok()
}

/// Mounts `backend` (at `remote_path`) in writes mode, checks that rclone
/// serves it without `secret` on its command line, writes and reads
/// through it, and DELETEs it right after writing files that are still
/// queued. The caller looks for them in the store.
fn write_then_delete(api: &Api, backend: &str, remote_path: &str, secret: &str) {
    let (id, path) = create_mount(
        api,
        json!({"backend_id": backend, "remote_path": remote_path, "vfs_config": {"cache_mode": "writes"}}),
    );
    assert_eq!(fstype(&path).as_deref(), Some("fuse.rclone"));
    let (_, args) = rclone_child(&path).expect("an rclone mount child");
    assert!(!args.join(" ").contains(secret), "{args:?}");
    fs::create_dir_all(path.join("dir/sub")).unwrap();
    fs::write(path.join("dir/sub/ünï.txt"), b"through rclone").unwrap();
    assert_eq!(
        fs::read(path.join("dir/sub/ünï.txt")).unwrap(),
        b"through rclone"
    );
    write_queued(&path, "q", 10);
    let deleted = api.delete(&format!("/api/v1/mounts/{id}"));
    assert_eq!(deleted.0, StatusCode::OK, "{}", deleted.1);
    assert!(!is_mounted(&path));
    assert!(rclone_child(&path).is_none(), "the rclone child is gone");
}

/// The whole life of an rclone mount of `backend` at `remote_path`, in
/// `server` (restarted and crashed on the way): mount, use, graceful
/// restart, a killed rclone healed without losing its queued uploads, a
/// crash of berth, PATCH, and DELETE draining the queue. The backend's
/// `secret`, if it has one, must not appear on rclone's command line.
fn live_through_restarts_crashes_and_kills(
    server: &mut Server,
    backend: &str,
    remote_path: &str,
    secret: Option<&str>,
    landed: Landed,
) {
    let api = Api::new(server, "acme");
    let (id, path) = create_mount(
        &api,
        json!({"backend_id": backend, "remote_path": remote_path, "vfs_config": {"cache_mode": "writes"}}),
    );
    assert_eq!(fstype(&path).as_deref(), Some("fuse.rclone"));
    assert_eq!(
        api.get(&format!("/api/v1/mounts/{id}")).1["engine"],
        json!("rclone")
    );
    let (_, args) = rclone_child(&path).expect("an rclone mount child");
    let command = args.join(" ");
    assert!(command.contains("--vfs-cache-mode writes"), "{command}");
    assert!(
        secret.is_none_or(|secret| !command.contains(secret)),
        "{command}"
    );
    exercise(&path);
    // Uploaded after rclone's write-back delay.
    eventually(30, "deep.txt to be uploaded", || {
        landed("a/b/c/deep.txt").is_some()
    });

    // Graceful restart: the upload queue drains, the mount comes back.
    write_queued(&path, "restart", 5);
    server.restart();
    assert_uploaded(landed, "restart", 5);
    eventually(30, "the rclone mount to come back after a restart", || {
        fstype(&path).as_deref() == Some("fuse.rclone")
    });
    let api = Api::new(server, "acme");
    assert_eq!(fs::read(path.join("big.bin")).unwrap().len(), 6 << 20);

    // rclone killed with queued uploads: the actor starts a new child on
    // the same cache, which uploads them.
    write_queued(&path, "killed", 5);
    wait_queued(server, &id, 5);
    let (pid, _) = rclone_child(&path).unwrap();
    // SAFETY: kill(2) of a pid read from /proc; no memory involved.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    eventually(30, "a new rclone child", || {
        rclone_child(&path).is_some_and(|(new, _)| new != pid)
            && fs::read_dir(&path).is_ok()
            && fstype(&path).as_deref() == Some("fuse.rclone")
    });
    eventually(30, "the killed child's queue to be uploaded", || {
        (0..5).all(|i| landed(&format!("killed{i}.txt")).is_some())
    });
    assert_uploaded(landed, "killed", 5);
    let (_, actors) = api.get("/api/v1/health/actors");
    let actor = actors["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == json!(id))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(actor["state"], json!("active"), "{actors}");
    // The dashboard sees why: rclone's exit and the end of its log.
    let why = actor["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("rclone exited (signal: 9"), "{why}");

    // berth killed: its rclone child unmounts on the parent-death signal,
    // and the next start mounts again.
    server.crash();
    eventually(20, "the orphaned rclone to exit", || {
        rclone_child(&path).is_none()
    });
    server.restart();
    eventually(30, "the mount to come back after a crash", || {
        fs::read(path.join("a/b/c/deep.txt")).is_ok()
    });

    // PATCH restarts rclone with the new flags; the mount stays in place.
    let api = Api::new(server, "acme");
    let patched = api.server.call(
        "PATCH",
        &format!("/api/v1/mounts/{id}"),
        Some(&api.token),
        Some(&json!({"vfs_config": {"cache_mode": "full"}})),
    );
    assert_eq!(patched.0, StatusCode::OK, "{}", patched.1);
    eventually(30, "rclone to run with the new cache mode", || {
        rclone_child(&path)
            .is_some_and(|(_, args)| args.join(" ").contains("--vfs-cache-mode full"))
            && fstype(&path).as_deref() == Some("fuse.rclone")
    });
    eventually(30, "the mount to be active again", || {
        api.get(&format!("/api/v1/mounts/{id}")).1["status"] == json!("active")
    });
    assert_eq!(
        fs::read(path.join("a/b/c/deep.txt")).unwrap(),
        b"deep".to_vec()
    );

    // DELETE drains what is still queued.
    write_queued(&path, "deleted", 10);
    let deleted = api.delete(&format!("/api/v1/mounts/{id}"));
    assert_eq!(deleted.0, StatusCode::OK, "{}", deleted.1);
    assert_uploaded(landed, "deleted", 10);
    assert!(!path.exists(), "berth removes the mount point it created");
    assert!(rclone_child(&path).is_none());
}

#[test]
fn rclone_mounts_of_local_directories_live_through_restarts_crashes_and_kills() {
    if !rclone_mounts_available(
        "rclone_mounts_of_local_directories_live_through_restarts_crashes_and_kills",
    ) {
        return;
    }
    let mut server = Server::start();
    let dir = server.local_root.join("via-rclone");
    fs::create_dir_all(&dir).unwrap();
    let backend =
        Api::new(&server, "acme").connect("local", &json!({"root": dir, "engine": "rclone"}));
    live_through_restarts_crashes_and_kills(&mut server, &backend, "", None, &in_dir(&dir));
}

#[test]
fn rclone_mounts_of_s3_live_through_restarts_crashes_and_kills() {
    let Some(endpoint) = rclone_mount_server(
        "rclone_mounts_of_s3_live_through_restarts_crashes_and_kills",
        "BERTH_TEST_S3_ENDPOINT",
        "BERTH_REQUIRE_EMULATORS",
    ) else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let (key, secret) = (
        var("BERTH_TEST_S3_ACCESS_KEY_ID"),
        var("BERTH_TEST_S3_SECRET_ACCESS_KEY"),
    );
    let mut server = Server::start();
    let backend = Api::new(&server, "acme").connect(
        "s3",
        &json!({"provider": "Other", "endpoint": endpoint, "region": "us-east-1", "force_path_style": true,
            "access_key_id": key, "secret_access_key": secret, "engine": "rclone"}),
    );
    let bucket = format!("berth-rclone-{}", std::process::id());
    // The bucket read by rclone itself, as a client of the emulator.
    let landed = |name: &str| {
        let out = std::process::Command::new("rclone")
            .args(["cat", &format!("s3:{bucket}/{name}")])
            .env("RCLONE_CONFIG", "/dev/null")
            .env("RCLONE_CONFIG_S3_TYPE", "s3")
            .env("RCLONE_CONFIG_S3_PROVIDER", "Other")
            .env("RCLONE_CONFIG_S3_ENDPOINT", &endpoint)
            .env("RCLONE_CONFIG_S3_ACCESS_KEY_ID", &key)
            .env("RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", &secret)
            .output()
            .ok()?;
        // `rclone cat` of a missing object prints nothing and succeeds; the
        // files written here are never empty.
        (out.status.success() && !out.stdout.is_empty()).then_some(out.stdout)
    };
    live_through_restarts_crashes_and_kills(&mut server, &backend, &bucket, Some(&secret), &landed);
}

#[test]
fn rclone_mounts_of_sftp_live_through_restarts_crashes_and_kills() {
    let Some(port) = rclone_mount_server(
        "rclone_mounts_of_sftp_live_through_restarts_crashes_and_kills",
        "BERTH_TEST_SFTP_PORT",
        "BERTH_REQUIRE_SFTP",
    ) else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let mut server = Server::start();
    let backend = Api::new(&server, "acme").connect(
        "sftp",
        &json!({"host": var("BERTH_TEST_SFTP_HOST"), "port": port.parse::<u16>().unwrap(),
            "user": var("BERTH_TEST_SFTP_USER"), "pass": var("BERTH_TEST_SFTP_PASS")}),
    );
    let remote_path = format!("berth-mount-{}", std::process::id());
    let home = Path::new(&var("BERTH_TEST_SFTP_HOME")).join(&remote_path);
    live_through_restarts_crashes_and_kills(
        &mut server,
        &backend,
        &remote_path,
        Some(&var("BERTH_TEST_SFTP_PASS")),
        &in_dir(&home),
    );
    fs::remove_dir_all(home).unwrap();
}

#[test]
fn rclone_mounts_of_webdav_live_through_restarts_crashes_and_kills() {
    if !rclone_mounts_available("rclone_mounts_of_webdav_live_through_restarts_crashes_and_kills") {
        return;
    }
    let dav = Served::webdav("alice", "dav-Pa55");
    let mut server = Server::start();
    let backend = Api::new(&server, "acme").connect(
        "webdav",
        &json!({"url": dav.url, "user": "alice", "pass": "dav-Pa55", "vendor": "rclone"}),
    );
    let share = dav.dir.path().join("share");
    live_through_restarts_crashes_and_kills(
        &mut server,
        &backend,
        "share",
        Some("dav-Pa55"),
        &in_dir(&share),
    );
}

#[test]
fn rclone_mounts_of_wrappers_over_webdav_run_rclone() {
    if !rclone_mounts_available("rclone_mounts_of_wrappers_over_webdav_run_rclone") {
        return;
    }
    let dav = Served::webdav("alice", "dav-Pa55");
    fs::create_dir_all(dav.dir.path().join("share")).unwrap();
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let webdav = api.connect(
        "webdav",
        &json!({"name": "dav", "url": dav.url, "user": "alice", "pass": "dav-Pa55", "vendor": "rclone"}),
    );
    let side = server.local_root.join("side");
    fs::create_dir_all(&side).unwrap();
    fs::write(side.join("beside.txt"), b"from the local side").unwrap();
    let upstreams = format!("dav:share {}:ro", side.display());
    let union = api.connect("union", &json!({"name": "both", "upstreams": upstreams}));

    // rclone mounts the union; its upstreams are read through it, and the
    // webdav password cannot change under the running child.
    let (id, path) = create_mount(&api, json!({"backend_id": union}));
    assert_eq!(fstype(&path).as_deref(), Some("fuse.rclone"));
    assert_eq!(
        fs::read(path.join("beside.txt")).unwrap(),
        b"from the local side"
    );
    let rotated = api.put(
        &format!("/api/v1/backends/{webdav}"),
        &json!({"pass": "dav-New-Pa55"}),
    );
    assert_eq!(rotated.0, StatusCode::CONFLICT, "{}", rotated.1);
    assert!(
        rotated.1.to_string().contains("backend 'both' (union)"),
        "{}",
        rotated.1
    );
    let deleted = api.delete(&format!("/api/v1/mounts/{id}"));
    assert_eq!(deleted.0, StatusCode::OK, "{}", deleted.1);

    // What is written lands on the webdav server (the local side is read-only).
    write_then_delete(&api, &union, "", "dav-Pa55");
    let landed = dav.dir.path().join("share");
    assert_eq!(
        fs::read(landed.join("dir/sub/ünï.txt")).unwrap(),
        b"through rclone"
    );
    assert_uploaded(&in_dir(&landed), "q", 10);
    assert!(!side.join("dir").exists());
}
