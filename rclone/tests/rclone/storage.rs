//! [`RcloneStorage`] against real rclone: the behaviour suite over a `local`
//! remote in a temp dir, and over S3 (the emulator of `scripts/start-s3.sh`:
//! `BERTH_TEST_S3_ENDPOINT`, `BERTH_TEST_S3_ACCESS_KEY_ID`,
//! `BERTH_TEST_S3_SECRET_ACCESS_KEY`; skipped when unset unless
//! `BERTH_REQUIRE_EMULATORS=1`), then what the suite does not check:
//! secrets, bounds, times, spooling, the capability table.
//!
//! Not over rclone's `memory` remote: its data lives inside one rclone
//! process, and `RcloneStorage` runs one per call (see
//! [`memory_remote_forgets_between_commands`]).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use berth_rclone::{option, Rclone, RcloneStorage, RemoteDef, Remotes};
use berth_storage::testkit::{available, chunked, failing, pattern, Fixture};
use berth_storage::{collect, once, ErrorKind, Storage};
use futures::StreamExt;
use tempfile::TempDir;

use crate::{rclone, remote, test_name, SECRET};
use berth_storage::testkit::free_port;

/// Passed in every storage's `scrub` list, and put in paths, to check that
/// it never shows in a message.
const SCRUBBED: &str = "scrubbed-e1b7";

/// A temp dir holding a backend root and the spool directory.
struct Dirs {
    dir: TempDir,
}

impl Dirs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        Dirs { dir }
    }

    fn root(&self) -> String {
        self.dir.path().join("root").to_str().unwrap().to_owned()
    }

    fn spool(&self) -> std::path::PathBuf {
        self.dir.path().join("spool")
    }
}

fn storage(rclone: Arc<Rclone>, main: RemoteDef, root: &str, spool: &Path) -> RcloneStorage {
    let remotes = Remotes::new(main, vec![]).unwrap();
    RcloneStorage::new(rclone, remotes, root.to_owned(), vec![SCRUBBED.to_owned()])
        .with_spool_dir(spool)
}

/// A `local` remote carrying [`SECRET`] (as its description).
fn local_remote(name: &str) -> RemoteDef {
    remote(name, "local", vec![option::secret("description", SECRET)])
}

async fn local_fixture() -> Option<Fixture> {
    let rclone = rclone().await?;
    let dirs = Dirs::new();
    let storage = storage(rclone, local_remote("b_suite"), &dirs.root(), &dirs.spool());
    Some(Fixture::new(Arc::new(storage), Some(Box::new(dirs))))
}

/// The S3 emulator's remote; `None` (skip) without `BERTH_TEST_S3_ENDPOINT`.
fn s3_remote() -> Option<RemoteDef> {
    let endpoint = std::env::var("BERTH_TEST_S3_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty());
    let unset = "BERTH_TEST_S3_ENDPOINT is not set (scripts/start-s3.sh starts the emulator)";
    if !available(
        "BERTH_REQUIRE_EMULATORS",
        &test_name(),
        endpoint.as_ref().map(drop).ok_or_else(|| unset.to_owned()),
    ) {
        return None;
    }
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("BERTH_TEST_S3_ENDPOINT is set but {name} is not (source the env file scripts/start-s3.sh prints)")
        })
    };
    Some(remote(
        "b_suite_s3",
        "s3",
        vec![
            option::plain("provider", "Other"),
            option::plain("endpoint", endpoint?),
            option::plain("region", "us-east-1"),
            option::plain("access_key_id", var("BERTH_TEST_S3_ACCESS_KEY_ID")),
            option::secret("secret_access_key", var("BERTH_TEST_S3_SECRET_ACCESS_KEY")),
        ],
    ))
}

/// A fresh bucket, created through the storage of the whole account, as
/// the backend's root.
async fn s3_fixture() -> Option<Fixture> {
    let main = s3_remote()?;
    let rclone = rclone().await?;
    let dirs = Dirs::new();
    let account = storage(rclone.clone(), main.clone(), "", &dirs.spool());
    let bucket = format!("berth-rclone-{}-{}", std::process::id(), unique());
    account
        .mkdir(&bucket)
        .await
        .unwrap_or_else(|e| panic!("create bucket {bucket}: {e}"));
    let storage = storage(rclone, main, &bucket, &dirs.spool());
    Some(Fixture::new(Arc::new(storage), Some(Box::new(dirs))))
}

fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

berth_storage::behaviour_suite! {
    local => super::local_fixture,
}

/// The suite over the S3 emulator, less `list_many_paginated`: its 2,500
/// writes are 5,000 rclone processes against moto (several minutes of CI on
/// two cores), and `RcloneStorage` pages every remote the same way, in
/// memory over one listing, which the `local` run checks in full.
mod s3 {
    berth_storage::behaviour_suite!(@tests super::s3_fixture;
        write_read_small,
        write_read_empty,
        write_read_large,
        ranged_reads,
        list_sorted_with_kinds,
        nested_paths,
        unicode_names,
        overwrite,
        delete_file,
        rename_file,
        rename_dir,
        rename_conflicts,
        copy_file,
        missing_is_not_found,
        mkdir_rmdir,
        stat_entries,
        dotdot_refused,
        capability_truth,
        failed_write_leaves_nothing,
        write_conflicts,
        concurrent_writes,
        probe_ok,
    );
}

fn kind<T>(result: berth_storage::Result<T>) -> ErrorKind {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.kind,
    }
}

#[tokio::test]
async fn memory_remote_forgets_between_commands() {
    let Some(rclone) = rclone().await else { return };
    let dirs = Dirs::new();
    let memory = storage(
        rclone,
        remote("b_mem", "memory", vec![]),
        "bucket",
        &dirs.spool(),
    );
    // rcat stores the object in its own process; the stat that follows,
    // in the next one, finds an empty store. This is why berth's engines
    // never serve `memory` through rclone.
    let error = memory.write("f", once("x")).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotFound, "{error}");
    assert_eq!(kind(memory.stat("f").await), ErrorKind::NotFound);
}

/// The children run with the remote in their environment only, and the
/// child of a read dies with its body.
#[tokio::test]
async fn secrets_stay_out_of_argv_and_a_dropped_read_kills_its_child() {
    let Some(rclone) = rclone().await else { return };
    let dirs = Dirs::new();
    let st = storage(rclone, local_remote("b_argv"), &dirs.root(), &dirs.spool());
    st.write("big.bin", chunked(&pattern(4 << 20), 1 << 20))
        .await
        .unwrap();
    let mut body = st.read("big.bin", None).await.unwrap();
    body.next().await.unwrap().unwrap();
    // rclone now blocks on the full pipe.
    let children = rclone_children("b_argv:");
    let [(pid, cmdline)] = children.as_slice() else {
        panic!("expected one rclone cat child, found {children:?}")
    };
    assert!(cmdline.contains(" cat "), "{cmdline}");
    assert!(!cmdline.contains(SECRET), "secret in argv: {cmdline}");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ
        .split('\0')
        .any(|var| var == format!("RCLONE_CONFIG_B_ARGV_DESCRIPTION={SECRET}")));
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_running(*pid) {
        assert!(Instant::now() < deadline, "rclone cat outlived its body");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// This process's children whose command line mentions `needle`, with
/// their command line (arguments joined by spaces).
fn rclone_children(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat.rsplit(") ").next()?.split(' ').nth(1)?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (ppid == me && cmdline.contains(needle)).then_some((pid, cmdline))
        })
        .collect()
}

/// The process exists and is not a zombie.
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit(") ").next().unwrap_or("").starts_with('Z'))
}

#[tokio::test]
async fn errors_are_classified_and_scrubbed() {
    let Some(rclone) = rclone().await else { return };
    let dirs = Dirs::new();
    // rclone prints the URL it fails to reach: here a secret.
    let url = format!("http://127.0.0.1:{}/{SECRET}/", free_port());
    let webdav = remote("b_refused", "webdav", vec![option::secret("url", url)]);
    let st = storage(rclone.clone(), webdav, "", &dirs.spool());
    let path = format!("dir-{SCRUBBED}/file");
    for error in [
        st.stat(&path).await.unwrap_err(),
        st.list(&path, None, 0).await.unwrap_err(),
        st.read(&path, None).await.err().unwrap(),
        st.write(&path, once("x")).await.unwrap_err(),
        st.probe().await.unwrap_err(),
    ] {
        assert_eq!(error.kind, ErrorKind::Transient, "{error}");
        assert!(error.message.contains("connection refused"), "{error}");
        assert!(
            !error.message.contains(SECRET) && !error.message.contains(SCRUBBED),
            "{error}"
        );
    }

    let local = storage(
        rclone,
        local_remote("b_errors"),
        &dirs.root(),
        &dirs.spool(),
    );
    local.write("d/f", once("x")).await.unwrap();
    let error = local.rmdir("d").await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Conflict, "{error}");
    assert!(error.message.ends_with("directory not empty"), "{error}");
    let error = local.mkdir("d/f/g").await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Conflict, "{error}");
    assert_eq!(kind(local.read("d/f/g", None).await), ErrorKind::Conflict);
    assert_eq!(kind(local.delete("d/nope").await), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_silent_server_is_transient_within_the_timeout() {
    let Some(rclone) = rclone().await else { return };
    let dirs = Dirs::new();
    // Connections complete in the kernel's backlog; nothing ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let webdav = remote("b_silent", "webdav", vec![option::plain("url", url)]);
    let st = storage(rclone, webdav, "", &dirs.spool()).with_timeout(Duration::from_secs(2));
    let started = Instant::now();
    assert_eq!(kind(st.stat("x").await), ErrorKind::Transient);
    assert_eq!(
        kind(st.read("x", Some((0, 10))).await),
        ErrorKind::Transient
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn set_modified_sets_file_times_only() {
    let Some(rclone) = rclone().await else { return };
    let dirs = Dirs::new();
    let st = storage(
        rclone.clone(),
        local_remote("b_times"),
        &dirs.root(),
        &dirs.spool(),
    );
    assert!(st.capability().set_mtime);
    st.write("d/f", once("x")).await.unwrap();
    let time = SystemTime::UNIX_EPOCH + Duration::new(1_600_000_000, 123_456_789);
    st.set_modified("d/f", time).await.unwrap();
    assert_eq!(st.stat("d/f").await.unwrap().modified, Some(time));
    let listed = st.list("d", None, 0).await.unwrap();
    assert_eq!(listed.entries[0].modified, Some(time));
    assert_eq!(get(&st, "d/f").await, b"x");
    assert_eq!(
        kind(st.set_modified("d/nope", time).await),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(st.set_modified("d", time).await),
        ErrorKind::Unsupported
    );
    assert_eq!(
        kind(st.set_modified("../x", time).await),
        ErrorKind::Permission
    );

    let s3 = remote("b_s3_times", "s3", vec![option::plain("provider", "Other")]);
    let s3 = storage(rclone, s3, "bucket", &dirs.spool());
    assert_eq!(
        kind(s3.set_modified("f", time).await),
        ErrorKind::Unsupported
    );
    assert_eq!(kind(s3.usage().await), ErrorKind::Unsupported);
}

async fn get(st: &RcloneStorage, path: &str) -> Vec<u8> {
    collect(st.read(path, None).await.unwrap()).await.unwrap()
}

/// rclone leaves its spool file behind when killed; berth removes the
/// write's whole spool directory, whatever happened.
#[tokio::test]
async fn writes_leave_no_spool_behind() {
    let Some(rclone) = rclone().await else { return };
    let dirs = Dirs::new();
    let st = storage(rclone, local_remote("b_spool"), &dirs.root(), &dirs.spool());
    let data = pattern(300_000);
    st.write("ok.bin", chunked(&data, 50_000)).await.unwrap();
    assert!(get(&st, "ok.bin").await == data);
    let error = st.write("ok.bin", failing(&data)).await.unwrap_err();
    assert_eq!(error.message, "body failed midway");
    assert!(
        get(&st, "ok.bin").await == data,
        "a failed write changed the object"
    );
    assert!(st.write("d/f", once("x")).await.is_ok());
    assert_eq!(
        kind(st.write("d/f/g", once("x")).await),
        ErrorKind::Conflict
    );
    let left: Vec<_> = std::fs::read_dir(dirs.spool()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The capability table claims nothing rclone's own feature list denies.
#[tokio::test]
async fn capabilities_agree_with_rclone_backend_features() {
    let Some(rclone) = rclone().await else { return };
    let dirs = Dirs::new();
    for rclone_type in ["local", "memory", "s3"] {
        let st = storage(
            rclone.clone(),
            remote("b_features", rclone_type, vec![]),
            "",
            &dirs.spool(),
        );
        let output = std::process::Command::new(rclone.path())
            .args(["backend", "features", &format!(":{rclone_type}:")])
            .env("RCLONE_CONFIG", "/dev/null")
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let feature = |name: &str| answer["Features"][name].as_bool().unwrap();
        let cap = st.capability();
        assert_eq!(
            cap.directories,
            feature("CanHaveEmptyDirectories"),
            "{rclone_type}"
        );
        assert!(!cap.usage || feature("About"), "{rclone_type}");
        assert!(
            !cap.atomic_rename || (feature("Move") && feature("DirMove")),
            "{rclone_type}"
        );
        // rclone's ModTimeNotSupported precision is 100 years.
        let precision = answer["Precision"].as_u64().unwrap();
        assert!(!cap.set_mtime || precision < 1_000_000_000, "{rclone_type}");
    }
}

#[tokio::test]
async fn usage_reports_the_local_filesystem() {
    let Some(rclone) = rclone().await else { return };
    let dirs = Dirs::new();
    let st = storage(rclone, local_remote("b_usage"), &dirs.root(), &dirs.spool());
    let usage = st.usage().await.unwrap();
    let (total, free) = (usage.total.unwrap(), usage.free.unwrap());
    assert!(free <= total && usage.used.unwrap() <= total, "{usage:?}");
}
