//! Mounts of backends served by rclone: `rclone mount` children owned by the
//! mount actors, through the API and real FUSE. A local directory with
//! `"engine": "rclone"` goes through the whole life (mount, use, restart,
//! crash, a killed rclone healed without losing its queued uploads, PATCH,
//! DELETE draining the queue); the S3 emulator, Debian's sshd (sftp) and
//! `rclone serve webdav` are written, read and unmounted without loss, as
//! is a union of webdav and a local directory, which rclone serves too.
//! Skipped without rclone or FUSE, unless `BERTH_REQUIRE_RCLONE=1` and
//! `BERTH_REQUIRE_FUSE=1` (scripts/test.sh).

use super::{create_mount, eventually, exercise, fuse_available, is_mounted};
use crate::common::rclone::{rclone_present, WebDav};
use crate::common::{Api, Server};
use berth_storage::testkit::available;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

fn rclone_mounts_available(test: &str) -> bool {
    fuse_available() && rclone_present(test)
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

/// Asserts the files of [`write_queued`] reached `dir`.
#[track_caller]
fn assert_uploaded(dir: &Path, prefix: &str, count: usize) {
    for i in 0..count {
        let file = dir.join(format!("{prefix}{i}.txt"));
        assert_eq!(
            fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())),
            format!("{prefix} {i}")
        );
    }
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

#[test]
fn rclone_mounts_live_through_restarts_crashes_and_kills() {
    if !rclone_mounts_available("rclone_mounts_live_through_restarts_crashes_and_kills") {
        return;
    }
    let mut server = Server::start();
    let api = Api::new(&server, "acme");
    let dir = server.local_root.join("via-rclone");
    fs::create_dir_all(&dir).unwrap();
    let backend = api.connect("local", &json!({"root": dir, "engine": "rclone"}));
    let (id, path) = create_mount(
        &api,
        json!({"backend_id": backend, "mount_path": "via-rclone", "vfs_config": {"cache_mode": "writes"}}),
    );
    assert_eq!(fstype(&path).as_deref(), Some("fuse.rclone"));
    let (_, args) = rclone_child(&path).expect("an rclone mount child");
    assert!(
        args.join(" ").contains("--vfs-cache-mode writes"),
        "{args:?}"
    );
    exercise(&path);
    // Uploaded after rclone's write-back delay.
    eventually(20, "deep.txt to be uploaded", || {
        dir.join("a/b/c/deep.txt").exists()
    });

    // Graceful restart: the upload queue drains, the mount comes back.
    write_queued(&path, "restart", 5);
    server.restart();
    assert_uploaded(&dir, "restart", 5);
    eventually(30, "the rclone mount to come back after a restart", || {
        fstype(&path).as_deref() == Some("fuse.rclone")
    });
    let api = Api::new(&server, "acme");
    assert_eq!(fs::read(path.join("big.bin")).unwrap().len(), 6 << 20);

    // rclone killed with queued uploads: the actor starts a new child on
    // the same cache, which uploads them.
    write_queued(&path, "killed", 5);
    let (pid, _) = rclone_child(&path).unwrap();
    // SAFETY: kill(2) of a pid read from /proc; no memory involved.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    eventually(30, "a new rclone child", || {
        rclone_child(&path).is_some_and(|(new, _)| new != pid)
            && fs::read_dir(&path).is_ok()
            && fstype(&path).as_deref() == Some("fuse.rclone")
    });
    eventually(30, "the killed child's queue to be uploaded", || {
        (0..5).all(|i| dir.join(format!("killed{i}.txt")).exists())
    });
    assert_uploaded(&dir, "killed", 5);
    let (_, actors) = api.get("/api/v1/health/actors");
    let actor = actors["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == json!(id))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(actor["state"], json!("active"), "{actors}");

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
    let api = Api::new(&server, "acme");
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
    assert_uploaded(&dir, "deleted", 10);
    assert!(!path.exists(), "berth removes the mount point it created");
    assert!(rclone_child(&path).is_none());
}

#[test]
fn rclone_mounts_of_s3_keep_every_write() {
    if !rclone_mounts_available("rclone_mounts_of_s3_keep_every_write") {
        return;
    }
    let endpoint = std::env::var("BERTH_TEST_S3_ENDPOINT").unwrap_or_default();
    let configured = if endpoint.is_empty() {
        Err("BERTH_TEST_S3_ENDPOINT is not set".to_string())
    } else {
        Ok(())
    };
    if !available(
        "BERTH_REQUIRE_EMULATORS",
        "rclone_mounts_of_s3_keep_every_write",
        configured,
    ) {
        return;
    }
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let s3 = json!({"provider": "Other", "endpoint": endpoint, "region": "us-east-1", "force_path_style": true,
        "access_key_id": std::env::var("BERTH_TEST_S3_ACCESS_KEY_ID").unwrap(),
        "secret_access_key": std::env::var("BERTH_TEST_S3_SECRET_ACCESS_KEY").unwrap()});
    let mut through_rclone = s3.clone();
    through_rclone["engine"] = json!("rclone");
    let backend = api.connect("s3", &through_rclone);
    let bucket = format!("berth-rclone-{}", std::process::id());
    write_then_delete(
        &api,
        &backend,
        &bucket,
        &std::env::var("BERTH_TEST_S3_SECRET_ACCESS_KEY").unwrap(),
    );
    // What rclone uploaded is there for berth's own S3 driver.
    let native = api.connect("s3", &json!(s3));
    let (id, path) = create_mount(
        &api,
        json!({"backend_id": native, "remote_path": bucket, "vfs_config": {"cache_mode": "off"}}),
    );
    assert_eq!(
        fs::read(path.join("dir/sub/ünï.txt")).unwrap(),
        b"through rclone"
    );
    assert_uploaded(&path, "q", 10);
    assert_eq!(
        api.delete(&format!("/api/v1/mounts/{id}")).0,
        StatusCode::OK
    );
}

#[test]
fn rclone_mounts_of_sftp_keep_every_write() {
    if !rclone_mounts_available("rclone_mounts_of_sftp_keep_every_write") {
        return;
    }
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let configured = if var("BERTH_TEST_SFTP_PORT").is_empty() {
        Err("BERTH_TEST_SFTP_PORT is not set (scripts/start-sftp.sh)".to_string())
    } else {
        Ok(())
    };
    if !available(
        "BERTH_REQUIRE_SFTP",
        "rclone_mounts_of_sftp_keep_every_write",
        configured,
    ) {
        return;
    }
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let backend = api.connect(
        "sftp",
        &json!({"host": var("BERTH_TEST_SFTP_HOST"), "port": var("BERTH_TEST_SFTP_PORT").parse::<u16>().unwrap(),
            "user": var("BERTH_TEST_SFTP_USER"), "pass": var("BERTH_TEST_SFTP_PASS")}),
    );
    let remote_path = format!("berth-mount-{}", std::process::id());
    write_then_delete(&api, &backend, &remote_path, &var("BERTH_TEST_SFTP_PASS"));
    let landed = Path::new(&var("BERTH_TEST_SFTP_HOME")).join(&remote_path);
    assert_eq!(
        fs::read(landed.join("dir/sub/ünï.txt")).unwrap(),
        b"through rclone"
    );
    assert_uploaded(&landed, "q", 10);
    fs::remove_dir_all(landed).unwrap();
}

#[test]
fn rclone_mounts_of_webdav_keep_every_write() {
    if !rclone_mounts_available("rclone_mounts_of_webdav_keep_every_write") {
        return;
    }
    let dav = WebDav::start("alice", "dav-Pa55");
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let backend = api.connect(
        "webdav",
        &json!({"url": dav.url, "user": "alice", "pass": "dav-Pa55", "vendor": "rclone"}),
    );
    write_then_delete(&api, &backend, "share", "dav-Pa55");
    let landed = dav.dir.path().join("share");
    assert_eq!(
        fs::read(landed.join("dir/sub/ünï.txt")).unwrap(),
        b"through rclone"
    );
    assert_uploaded(&landed, "q", 10);
}

#[test]
fn rclone_mounts_of_wrappers_over_webdav_run_rclone() {
    if !rclone_mounts_available("rclone_mounts_of_wrappers_over_webdav_run_rclone") {
        return;
    }
    let dav = WebDav::start("alice", "dav-Pa55");
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
    assert_uploaded(&landed, "q", 10);
    assert!(!side.join("dir").exists());
}
