//! Mounts through the API and real FUSE: ordinary file operations in every
//! cache mode, persistence across restarts and crashes, healing of external
//! unmounts, DELETE without losing pending uploads, and live PATCH.
//! Skipped when /dev/fuse is unavailable, unless `BERTH_REQUIRE_FUSE=1`.

#[path = "../common/mod.rs"]
mod common;
mod rclone;

use berth_storage::testkit::{available, fuse_device};
use common::{assert_error, Api, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn fuse_available() -> bool {
    available("BERTH_REQUIRE_FUSE", "mount tests", fuse_device())
}

fn is_mounted(path: &Path) -> bool {
    let wanted = path.to_string_lossy().replace(' ', "\\040");
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&wanted))
}

/// Waits until `check` holds (polling), failing after `secs` seconds.
fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..secs * 10 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// A local backend on a fresh directory of the local root, and its directory.
fn local_backend(server: &Server, api: &Api, name: &str) -> (String, PathBuf) {
    let dir = server.local_root.join(name);
    fs::create_dir_all(&dir).unwrap();
    (api.connect("local", &json!({"root": dir})), dir)
}

fn create_mount(api: &Api, body: Value) -> (String, PathBuf) {
    let (status, created) = api.post("/api/v1/mounts", &body);
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["success"], json!(true));
    assert_eq!(created["data"]["status"], json!("active"), "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_string();
    (
        id,
        PathBuf::from(created["data"]["mount_path"].as_str().unwrap()),
    )
}

fn exercise(root: &Path) {
    // Write and read back, a larger file, append, rename, delete, trees, unicode.
    fs::write(root.join("hello.txt"), b"hello").unwrap();
    assert_eq!(fs::read(root.join("hello.txt")).unwrap(), b"hello");
    let big: Vec<u8> = (0..6 * 1024 * 1024u32)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    fs::write(root.join("big.bin"), &big).unwrap();
    assert_eq!(fs::read(root.join("big.bin")).unwrap(), big);
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::write(root.join("a/b/c/deep.txt"), b"deep").unwrap();
    fs::write(root.join("a/ünïcødé 文件.txt"), b"u").unwrap();
    let mut names: Vec<String> = fs::read_dir(root.join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["b", "ünïcødé 文件.txt"]);
    fs::rename(root.join("hello.txt"), root.join("a/moved.txt")).unwrap();
    assert!(!root.join("hello.txt").exists());
    assert_eq!(fs::read(root.join("a/moved.txt")).unwrap(), b"hello");
    fs::remove_file(root.join("a/moved.txt")).unwrap();
    assert!(!root.join("a/moved.txt").exists());
    // Concurrent readers.
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let path = root.join("big.bin");
            let expected = big.clone();
            std::thread::spawn(move || assert_eq!(fs::read(path).unwrap(), expected))
        })
        .collect();
    for reader in readers {
        reader.join().unwrap();
    }
}

#[test]
fn every_cache_mode_serves_ordinary_file_operations() {
    if !fuse_available() {
        return;
    }
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let memory = api.connect("memory", &json!({}));
    for mode in ["off", "minimal", "writes", "full"] {
        let (local, dir) = local_backend(&server, &api, &format!("cache-{mode}"));
        for backend in [&memory, &local] {
            let (id, path) = create_mount(
                &api,
                json!({"backend_id": backend, "label": mode, "vfs_config": {"cache_mode": mode}}),
            );
            if mode == "off" {
                // Off mode streams writes: no read+write opens.
                fs::write(path.join("seq.txt"), b"sequential").unwrap();
                assert_eq!(fs::read(path.join("seq.txt")).unwrap(), b"sequential");
                let rw = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path.join("seq.txt"));
                assert!(rw.is_err(), "read+write open must fail in off mode");
            } else {
                exercise(&path);
            }
            let (_, detail) = api.get(&format!("/api/v1/mounts/{id}"));
            assert_eq!(detail["vfs_config"]["cache_mode"], json!(mode));
            assert_eq!(detail["engine"], json!("native"));
            assert_eq!(
                api.delete(&format!("/api/v1/mounts/{id}")).0,
                StatusCode::OK
            );
            assert!(!is_mounted(&path));
        }
        // What went through the mount reached the local directory.
        let expected = if mode == "off" { "seq.txt" } else { "big.bin" };
        assert!(
            dir.join(expected).exists(),
            "{mode}: {expected} missing in the backend"
        );
    }
    let (_, list) = api.get("/api/v1/mounts");
    assert_eq!(list["count"], json!(0));
}

#[test]
fn mounts_follow_the_api_rules() {
    if !fuse_available() {
        return;
    }
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let backend = api.connect("memory", &json!({}));
    assert_error(
        &api.post("/api/v1/mounts", &json!({})),
        StatusCode::BAD_REQUEST,
        "backend_id",
    );
    assert_error(
        &api.post("/api/v1/mounts", &json!({"backend_id": "0123456789abcdef"})),
        StatusCode::NOT_FOUND,
        "Backend not found",
    );
    assert_error(
        &api.post(
            "/api/v1/mounts",
            &json!({"backend_id": backend, "vfs_config": {"cache_mode": "sometimes"}}),
        ),
        StatusCode::BAD_REQUEST,
        "Invalid cache_mode: must be one of off, minimal, writes, full",
    );
    assert_error(
        &api.post(
            "/api/v1/mounts",
            &json!({"backend_id": backend, "mount_path": "/etc"}),
        ),
        StatusCode::BAD_REQUEST,
        "mount_path",
    );
    assert_error(
        &api.post(
            "/api/v1/mounts",
            &json!({"backend_id": backend, "mount_path": "../x"}),
        ),
        StatusCode::BAD_REQUEST,
        "mount_path",
    );
    let (id, path) = create_mount(
        &api,
        json!({"backend_id": backend, "label": "Photos", "mount_path": "photos",
        "vfs_config": {"cache_max_size": "20G", "cache_max_age": "30m", "dir_cache_time": "1m"}}),
    );
    assert!(id.starts_with("mount_") && id.len() == 38, "{id}");
    assert!(path.ends_with("photos") && is_mounted(&path));
    assert_error(
        &api.post(
            "/api/v1/mounts",
            &json!({"backend_id": backend, "mount_path": "photos"}),
        ),
        StatusCode::CONFLICT,
        "photos",
    );
    assert_error(
        &api.post(
            "/api/v1/mounts",
            &json!({"backend_id": backend, "mount_path": "photos/inner"}),
        ),
        StatusCode::CONFLICT,
        "overlaps",
    );
    let full = server.data_dir.join("mounts/full");
    fs::create_dir_all(&full).unwrap();
    fs::write(full.join("x"), b"x").unwrap();
    assert_error(
        &api.post(
            "/api/v1/mounts",
            &json!({"backend_id": backend, "mount_path": "full"}),
        ),
        StatusCode::CONFLICT,
        "not empty",
    );

    let (_, detail) = api.get(&format!("/api/v1/mounts/{id}"));
    assert_eq!(
        detail["vfs_config"],
        json!({"cache_mode": "writes", "cache_max_age": 1800, "cache_max_size": 21474836480u64, "dir_cache_time": 60})
    );
    assert!(detail["created_at"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(api.get("/api/v1/mounts?label=Photos").1["count"], json!(1));
    assert_eq!(api.get("/api/v1/mounts?label=Other").1["count"], json!(0));
    let (_, backend_view) = api.get(&format!("/api/v1/backends/{backend}"));
    assert_eq!(backend_view["mount_paths"], json!([path]));
    // The backend cannot change or go while mounted.
    assert_error(
        &api.put(
            &format!("/api/v1/backends/{backend}"),
            &json!({"pass": "x"}),
        ),
        StatusCode::CONFLICT,
        "Backend has active mounts; unmount first",
    );
    assert_error(
        &api.delete(&format!("/api/v1/backends/{backend}")),
        StatusCode::CONFLICT,
        "Backend has active mounts; unmount first",
    );
    // Another org sees nothing.
    let other = Api::new(&server, "globex");
    assert_error(
        &other.get(&format!("/api/v1/mounts/{id}")),
        StatusCode::NOT_FOUND,
        &format!("Mount not found: {id}"),
    );
    assert_error(
        &other.post("/api/v1/mounts", &json!({"backend_id": backend})),
        StatusCode::NOT_FOUND,
        "Backend not found",
    );
    // PATCH applies without unmounting.
    fs::write(path.join("before.txt"), b"1").unwrap();
    let (status, patched) = api.server.call(
        "PATCH",
        &format!("/api/v1/mounts/{id}"),
        Some(&api.token),
        Some(&json!({"vfs_config": {"cache_mode": "full", "cache_max_size": "50G"}})),
    );
    assert_eq!(
        (status, patched),
        (
            StatusCode::OK,
            json!({"success": true, "message": "Mount configuration updated"})
        )
    );
    assert!(is_mounted(&path));
    assert_eq!(fs::read(path.join("before.txt")).unwrap(), b"1");
    assert_eq!(
        api.get(&format!("/api/v1/mounts/{id}")).1["vfs_config"]["cache_mode"],
        json!("full")
    );
    let bad = api.server.call(
        "PATCH",
        &format!("/api/v1/mounts/{id}"),
        Some(&api.token),
        Some(&json!({"vfs_config": {"cache_mode": "x"}})),
    );
    assert_error(&bad, StatusCode::BAD_REQUEST, "Invalid cache_mode");
    assert_eq!(
        api.delete(&format!("/api/v1/mounts/{id}")).0,
        StatusCode::OK
    );
    assert_error(
        &api.delete(&format!("/api/v1/mounts/{id}")),
        StatusCode::NOT_FOUND,
        &format!("Mount not found: {id}"),
    );
    assert!(!path.exists(), "berth removes the mount point it created");
    assert_eq!(
        api.delete(&format!("/api/v1/backends/{backend}")).0,
        StatusCode::OK
    );
}

#[test]
fn mounts_survive_restarts_crashes_and_external_unmounts() {
    if !fuse_available() {
        return;
    }
    let mut server = Server::start();
    let api = Api::new(&server, "acme");
    let (backend, dir) = local_backend(&server, &api, "kept");
    let (id, path) = create_mount(&api, json!({"backend_id": backend, "mount_path": "kept"}));
    fs::write(path.join("a.txt"), b"survives").unwrap();

    // Graceful restart: unmounted on SIGTERM, restored with the same id and path.
    server.restart();
    eventually(20, "the mount to come back after a restart", || {
        is_mounted(&path)
    });
    let api = Api::new(&server, "acme");
    let (_, detail) = api.get(&format!("/api/v1/mounts/{id}"));
    assert_eq!(
        (detail["mount_path"].clone(), detail["status"].clone()),
        (json!(path), json!("active"))
    );
    assert_eq!(fs::read(path.join("a.txt")).unwrap(), b"survives");

    // A crash leaves a dead mount point; the next start clears and remounts it.
    server.crash();
    server.restart();
    eventually(20, "the mount to come back after a crash", || {
        fs::read(path.join("a.txt")).is_ok()
    });

    // An external unmount is noticed and healed.
    let unmounted = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg(&path)
        .status()
        .unwrap();
    assert!(unmounted.success());
    eventually(20, "the mount to be healed", || {
        is_mounted(&path) && fs::read(path.join("a.txt")).is_ok()
    });
    let (_, actors) = Api::new(&server, "acme").get("/api/v1/health/actors");
    let mount_actor = actors["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == json!(id))
        .cloned()
        .unwrap();
    assert_eq!(mount_actor["kind"], json!("mount"));
    assert_eq!(mount_actor["state"], json!("active"));
    assert!(dir.join("a.txt").exists());
}

#[test]
fn delete_waits_for_pending_uploads() {
    if !fuse_available() {
        return;
    }
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let (backend, dir) = local_backend(&server, &api, "pending");
    let (id, path) = create_mount(
        &api,
        json!({"backend_id": backend, "vfs_config": {"cache_mode": "writes"}}),
    );
    for i in 0..20 {
        fs::write(path.join(format!("f{i}.txt")), format!("content {i}")).unwrap();
    }
    // Uploads wait for the write-back delay; DELETE must not drop them.
    assert_eq!(
        api.delete(&format!("/api/v1/mounts/{id}")).0,
        StatusCode::OK
    );
    for i in 0..20 {
        assert_eq!(
            fs::read_to_string(dir.join(format!("f{i}.txt"))).unwrap(),
            format!("content {i}")
        );
    }
}

#[test]
fn s3_buckets_mount_in_every_cache_mode() {
    if !fuse_available() {
        return;
    }
    let endpoint = match std::env::var("BERTH_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => endpoint,
        _ if std::env::var("BERTH_REQUIRE_EMULATORS").as_deref() == Ok("1") => {
            panic!("BERTH_REQUIRE_EMULATORS=1 but BERTH_TEST_S3_ENDPOINT is not set")
        }
        _ => return eprintln!("SKIPPED: BERTH_TEST_S3_ENDPOINT is not set"),
    };
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let backend = api.connect(
        "s3",
        &json!({"provider": "Other", "endpoint": endpoint, "region": "us-east-1", "force_path_style": true,
            "access_key_id": std::env::var("BERTH_TEST_S3_ACCESS_KEY_ID").unwrap(),
            "secret_access_key": std::env::var("BERTH_TEST_S3_SECRET_ACCESS_KEY").unwrap()}),
    );
    for mode in ["off", "minimal", "writes", "full"] {
        let bucket = format!("berth-mount-{mode}-{}", std::process::id());
        let (id, path) = create_mount(
            &api,
            json!({"backend_id": backend, "remote_path": bucket, "vfs_config": {"cache_mode": mode}}),
        );
        if mode == "off" {
            fs::write(path.join("seq.txt"), b"sequential").unwrap();
            assert_eq!(fs::read(path.join("seq.txt")).unwrap(), b"sequential");
        } else {
            exercise(&path);
        }
        assert_eq!(
            api.delete(&format!("/api/v1/mounts/{id}")).0,
            StatusCode::OK
        );
        // Everything reached the bucket: mount it again and look.
        let (again, path) = create_mount(
            &api,
            json!({"backend_id": backend, "remote_path": bucket, "vfs_config": {"cache_mode": "off"}}),
        );
        let expected = if mode == "off" {
            "seq.txt"
        } else {
            "a/b/c/deep.txt"
        };
        assert!(
            path.join(expected).exists(),
            "{mode}: {expected} did not reach the bucket"
        );
        assert_eq!(
            api.delete(&format!("/api/v1/mounts/{again}")).0,
            StatusCode::OK
        );
    }
}

/// `rclone serve s3` (gofakes3) answers CreateMultipartUpload with a root
/// element of another name than S3's; berth still writes multipart objects
/// to it, streamed (`off`) and from the write cache (`writes`).
#[test]
fn multipart_writes_reach_rclone_serve_s3() {
    if !fuse_available() || !common::rclone::rclone_present("rclone serve s3") {
        return;
    }
    let s3 = common::rclone::Served::s3("berth-key", "berth-secret");
    fs::create_dir(s3.dir.path().join("bucket")).unwrap();
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let backend = api.connect(
        "s3",
        &json!({"provider": "Other", "endpoint": s3.url, "region": "us-east-1",
            "access_key_id": "berth-key", "secret_access_key": "berth-secret",
            "upload_cutoff": "5M", "chunk_size": "5M"}),
    );
    let data: Vec<u8> = (0..13 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    for mode in ["off", "writes"] {
        let (id, path) = create_mount(
            &api,
            json!({"backend_id": backend, "remote_path": "bucket", "vfs_config": {"cache_mode": mode}}),
        );
        let name = format!("{mode}.bin");
        fs::write(path.join(&name), &data)
            .unwrap_or_else(|e| panic!("{mode}: {e}; log:\n{}", server.log()));
        assert_eq!(
            api.delete(&format!("/api/v1/mounts/{id}")).0,
            StatusCode::OK
        );
        let stored = fs::read(s3.dir.path().join("bucket").join(&name)).unwrap();
        assert!(stored == data, "{mode}: the stored object differs");
    }
}

#[test]
fn an_aborted_fuse_connection_is_healed() {
    if !fuse_available() {
        return;
    }
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let (backend, _dir) = local_backend(&server, &api, "aborted");
    let (_id, path) = create_mount(&api, json!({"backend_id": backend}));
    fs::write(path.join("a.txt"), b"still here").unwrap();
    // The connection number is the minor device number of the mount.
    use std::os::unix::fs::MetadataExt;
    let dev = fs::metadata(&path).unwrap().dev();
    let minor = ((dev & 0xff) | ((dev >> 12) & 0xfff00)) as u32;
    let abort = PathBuf::from(format!("/sys/fs/fuse/connections/{minor}/abort"));
    if fs::write(&abort, b"1").is_err() {
        return eprintln!(
            "SKIPPED: cannot write {} (fusectl not mounted)",
            abort.display()
        );
    }
    eventually(20, "the aborted mount to be healed", || {
        fs::read(path.join("a.txt"))
            .map(|d| d == b"still here")
            .unwrap_or(false)
    });
}

#[test]
fn off_mode_duplicate_closed_before_writing() {
    if !fuse_available() {
        return;
    }
    use std::io::Write;
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let (backend, dir) = local_backend(&server, &api, "dup");
    let (_id, path) = create_mount(
        &api,
        json!({"backend_id": backend, "vfs_config": {"cache_mode": "off"}}),
    );
    // What `dd of=...` does: dup the descriptor, close the original, write.
    let original = fs::File::create(path.join("dd.bin")).unwrap();
    let mut duplicate = original.try_clone().unwrap();
    drop(original);
    let data = vec![7u8; 3 << 20];
    duplicate.write_all(&data).unwrap();
    drop(duplicate);
    assert_eq!(fs::read(dir.join("dd.bin")).unwrap(), data);
    let status = std::process::Command::new("dd")
        .args([
            "if=/dev/zero",
            &format!("of={}", path.join("dd2.bin").display()),
            "bs=1M",
            "count=4",
            "status=none",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    eventually(10, "dd's file to reach the store", || {
        fs::metadata(dir.join("dd2.bin"))
            .map(|m| m.len() == 4 << 20)
            .unwrap_or(false)
    });
}
