//! `local`-only checks: root confinement, symlinks, every option, atomic
//! writes, probe. Also the factory's handling of slugs.

use berth_storage::drivers::{DriverEnv, LocalStorage};
use berth_storage::testkit::{chunked, get, names, pattern, put};
use berth_storage::{collect, once, ErrorKind, Storage, StorageError};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Map, Value};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

type Store = Arc<dyn Storage>;

fn config(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("object")
}

fn env_for(dirs: &[&Path]) -> DriverEnv {
    DriverEnv {
        local_roots: dirs.iter().map(|d| d.to_path_buf()).collect(),
        host_credentials: false,
    }
}

/// Builds a `local` driver the way the engine factory does.
async fn build(config: &Map<String, Value>, env: &DriverEnv) -> Result<Store, StorageError> {
    Ok(Arc::new(LocalStorage::from_config(config, env).await?))
}

/// A `local` backend on a fresh temp dir with extra options.
async fn local_with(options: Value) -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = build(&config(options), &env_for(&[dir.path()]))
        .await
        .unwrap_or_else(|e| panic!("build: {e}"));
    (dir, store)
}

async fn build_err(options: Value, env: &DriverEnv) -> StorageError {
    match build(&config(options), env).await {
        Ok(s) => panic!("expected a config error, built {s:?}"),
        Err(e) => e,
    }
}

fn kind_of<T: std::fmt::Debug>(result: Result<T, StorageError>) -> ErrorKind {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.kind,
    }
}

async fn read_result(st: &Store, path: &str) -> Result<Vec<u8>, StorageError> {
    collect(st.read(path, None).await?).await
}

/// Names on disk (including hidden ones) in `dir`.
fn disk_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn assert_no_temp_files(dir: &Path) {
    for entry in walk(dir) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".berth-tmp-"),
            "temp file left: {entry:?}"
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

// ---------------------------------------------------------------- root

#[tokio::test]
async fn root_must_be_inside_allowed_roots() {
    let allowed = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let env = env_for(&[allowed.path()]);
    let outside = "is outside the allowed local roots (BERTH_LOCAL_ROOTS)";

    let err = build_err(json!({"root": other.path()}), &env).await;
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    assert_eq!(
        err.message,
        format!("root '{}' {outside}", other.path().display())
    );
    assert!(build_err(json!({"root": "/etc"}), &env)
        .await
        .message
        .contains(outside));
    // A path that climbs out lexically.
    let climb = format!("{}/../..", allowed.path().display());
    assert!(build_err(json!({"root": climb}), &env)
        .await
        .message
        .contains(outside));
    // A symlink inside the allowed root pointing out of it.
    symlink(other.path(), allowed.path().join("escape")).unwrap();
    let escape = allowed.path().join("escape");
    assert!(build_err(json!({"root": escape}), &env)
        .await
        .message
        .contains(outside));
    // Missing paths outside do not reveal whether they exist.
    let missing_outside = other.path().join("missing");
    assert!(build_err(json!({"root": missing_outside}), &env)
        .await
        .message
        .contains(outside));
    // Nothing is allowed without local roots.
    let err = build_err(json!({"root": allowed.path()}), &DriverEnv::default()).await;
    assert!(err.message.contains(outside));
    let err = build_err(json!({"root": ""}), &DriverEnv::default()).await;
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    assert!(err.message.contains("BERTH_LOCAL_ROOTS"));
}

#[tokio::test]
async fn root_must_exist_and_be_an_absolute_directory() {
    let allowed = tempfile::tempdir().unwrap();
    let env = env_for(&[allowed.path()]);
    let missing = allowed.path().join("missing");
    let err = build_err(json!({"root": missing}), &env).await;
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    assert!(err.message.contains("does not exist"), "{}", err.message);

    fs::write(allowed.path().join("file"), b"x").unwrap();
    let err = build_err(json!({"root": allowed.path().join("file")}), &env).await;
    assert!(
        err.message.contains("is not a directory"),
        "{}",
        err.message
    );

    let err = build_err(json!({"root": "relative/dir"}), &env).await;
    assert!(err.message.contains("absolute"), "{}", err.message);

    // A sub-directory, and "" meaning the first allowed root.
    fs::create_dir(allowed.path().join("sub")).unwrap();
    let sub = LocalStorage::from_config(&config(json!({"root": allowed.path().join("sub")})), &env)
        .await
        .unwrap();
    assert_eq!(
        sub.root(),
        fs::canonicalize(allowed.path().join("sub")).unwrap()
    );
    let second = tempfile::tempdir().unwrap();
    let env2 = DriverEnv {
        local_roots: vec![
            PathBuf::from("/nonexistent-berth-root"),
            allowed.path().into(),
            second.path().into(),
        ],
        ..DriverEnv::default()
    };
    let inside_second = LocalStorage::from_config(&config(json!({"root": second.path()})), &env2)
        .await
        .unwrap();
    assert_eq!(
        inside_second.root(),
        fs::canonicalize(second.path()).unwrap()
    );
    let default = LocalStorage::from_config(&config(json!({"root": ""})), &env)
        .await
        .unwrap();
    assert_eq!(default.root(), fs::canonicalize(allowed.path()).unwrap());
}

// ---------------------------------------------------------------- symlinks

/// A root holding links out of it (to /etc, /etc/passwd and another temp
/// dir) and links inside it.
struct LinkFarm {
    root: TempDir,
    outside: TempDir,
}

fn link_farm() -> LinkFarm {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::write(outside.path().join("secret"), b"secret").unwrap();
    symlink("/etc", r.join("etc")).unwrap();
    symlink("/etc/passwd", r.join("passwd")).unwrap();
    symlink(outside.path(), r.join("outdir")).unwrap();
    symlink(outside.path().join("secret"), r.join("secretlink")).unwrap();
    fs::create_dir(r.join("real")).unwrap();
    fs::write(r.join("real/file.txt"), b"inside").unwrap();
    symlink("real", r.join("indir")).unwrap();
    symlink("real/file.txt", r.join("infile")).unwrap();
    symlink("missing-target", r.join("dangling")).unwrap();
    LinkFarm { root, outside }
}

async fn farm_store(farm: &LinkFarm, options: Value) -> Store {
    let mut options = config(options);
    options.insert("root".into(), json!(farm.root.path()));
    build(&options, &env_for(&[farm.root.path()]))
        .await
        .unwrap()
}

const ESCAPES: [&str; 4] = ["etc", "passwd", "outdir", "secretlink"];

/// Nothing outside the root can be read, listed or written through `st`.
async fn assert_confined(st: &Store, farm: &LinkFarm) {
    for path in [
        "etc/passwd",
        "passwd",
        "outdir/secret",
        "secretlink",
        "etc/hostname",
    ] {
        assert!(read_result(st, path).await.is_err(), "read {path}");
    }
    assert!(st.list("etc", None, 0).await.is_err());
    assert!(st.list("outdir", None, 0).await.is_err());
    assert!(st.write("outdir/planted", once("x")).await.is_err());
    assert!(st.mkdir("outdir/planted-dir").await.is_err());
    assert!(st.rename("real/file.txt", "outdir/moved").await.is_err());
    assert!(st.copy("real/file.txt", "outdir/copied").await.is_err());
    // Writing the link's own name may replace the link (default and `links`)
    // or be refused (`copy_links`); either way the target is untouched.
    let _ = st.write("secretlink", once("x")).await;
    assert_eq!(
        fs::read(farm.outside.path().join("secret")).unwrap(),
        b"secret",
        "a file outside the root was changed"
    );
    assert_eq!(disk_names(farm.outside.path()), vec!["secret"]);
    for path in ["../etc/passwd", "real/../../etc/passwd"] {
        assert_eq!(kind_of(read_result(st, path).await), ErrorKind::Permission);
    }
}

#[tokio::test]
async fn symlinks_are_skipped_by_default() {
    let farm = link_farm();
    let st = farm_store(&farm, json!({})).await;
    assert_eq!(names(&st, "").await, vec!["real"]);
    for path in ESCAPES.iter().chain(&["indir", "infile", "dangling"]) {
        assert_eq!(kind_of(st.stat(path).await), ErrorKind::NotFound, "{path}");
        assert_eq!(
            kind_of(st.delete(path).await),
            ErrorKind::NotFound,
            "{path}"
        );
    }
    assert_eq!(
        kind_of(st.stat("indir/file.txt").await),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind_of(st.write("indir/new", once("x")).await),
        ErrorKind::Conflict
    );
    assert_confined(&st, &farm).await;
    assert!(fs::symlink_metadata(farm.root.path().join("etc"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[tokio::test]
async fn copy_links_follows_only_inside_the_root() {
    let farm = link_farm();
    let st = farm_store(&farm, json!({"copy_links": true})).await;
    // Links out of the root and dangling ones are skipped; inside ones followed.
    assert_eq!(names(&st, "").await, vec!["indir", "infile", "real"]);
    assert_eq!(names(&st, "indir").await, vec!["file.txt"]);
    assert_eq!(get(&st, "infile").await, b"inside");
    assert_eq!(get(&st, "indir/file.txt").await, b"inside");
    let stat = st.stat("infile").await.unwrap();
    assert_eq!((stat.path.as_str(), stat.size), ("infile", 6));
    for path in ESCAPES {
        assert_eq!(
            kind_of(st.stat(path).await),
            ErrorKind::Permission,
            "{path}"
        );
    }
    assert_eq!(kind_of(st.stat("dangling").await), ErrorKind::NotFound);
    assert_confined(&st, &farm).await;

    // Writing through an inside link writes its target.
    put(&st, "infile", b"rewritten").await;
    assert_eq!(
        fs::read(farm.root.path().join("real/file.txt")).unwrap(),
        b"rewritten"
    );
    put(&st, "indir/new.txt", b"new").await;
    assert_eq!(
        fs::read(farm.root.path().join("real/new.txt")).unwrap(),
        b"new"
    );
    // Deleting a link removes the link, not the target.
    st.delete("infile").await.unwrap();
    assert!(!farm.root.path().join("infile").exists());
    assert!(farm.root.path().join("real/file.txt").exists());
}

#[tokio::test]
async fn links_shows_symlinks_as_link_files() {
    let farm = link_farm();
    let st = farm_store(&farm, json!({"links": true})).await;
    assert_eq!(
        names(&st, "").await,
        vec![
            "dangling.hoody-vfslink",
            "etc.hoody-vfslink",
            "indir.hoody-vfslink",
            "infile.hoody-vfslink",
            "outdir.hoody-vfslink",
            "passwd.hoody-vfslink",
            "real",
            "secretlink.hoody-vfslink",
        ]
    );
    assert_eq!(get(&st, "etc.hoody-vfslink").await, b"/etc");
    assert_eq!(get(&st, "infile.hoody-vfslink").await, b"real/file.txt");
    assert_eq!(st.stat("infile.hoody-vfslink").await.unwrap().size, 13);
    assert_eq!(kind_of(st.stat("infile").await), ErrorKind::NotFound);
    assert!(read_result(&st, "etc.hoody-vfslink/passwd").await.is_err());
    assert_confined(&st, &farm).await;

    // Writing a link file creates a symlink, inside the root only.
    put(&st, "real/new.hoody-vfslink", b"file.txt").await;
    let made = farm.root.path().join("real/new");
    assert_eq!(fs::read_link(&made).unwrap(), PathBuf::from("file.txt"));
    assert_eq!(get(&st, "real/new.hoody-vfslink").await, b"file.txt");
    for bad in ["/etc/passwd", "../../outside", "../.."] {
        let err = st
            .write("real/bad.hoody-vfslink", once(bad))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permission, "{bad}");
    }
    assert!(fs::symlink_metadata(farm.root.path().join("real/bad")).is_err());
    assert_no_temp_files(farm.root.path());

    // copy, rename and delete act on the link.
    st.copy("real/new.hoody-vfslink", "real/copy.hoody-vfslink")
        .await
        .unwrap();
    assert_eq!(
        fs::read_link(farm.root.path().join("real/copy")).unwrap(),
        PathBuf::from("file.txt")
    );
    st.rename("real/copy.hoody-vfslink", "real/moved.hoody-vfslink")
        .await
        .unwrap();
    assert_eq!(
        kind_of(st.rename("real/moved.hoody-vfslink", "real/plain").await),
        ErrorKind::Unsupported
    );
    st.delete("real/moved.hoody-vfslink").await.unwrap();
    assert_eq!(
        names(&st, "real").await,
        vec!["file.txt", "new.hoody-vfslink"]
    );
    assert_eq!(
        fs::read(farm.root.path().join("real/file.txt")).unwrap(),
        b"inside"
    );
}

#[tokio::test]
async fn links_and_copy_links_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = build_err(
        json!({"links": true, "copy_links": true}),
        &env_for(&[dir.path()]),
    )
    .await;
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    assert!(err.message.contains("links and copy_links"));
}

/// Counts WARN events on the current thread.
struct WarnCounter(Arc<AtomicUsize>);

impl tracing::Subscriber for WarnCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

async fn warnings_while_listing(st: &Store) -> usize {
    let count = Arc::new(AtomicUsize::new(0));
    let dispatch = tracing::Dispatch::new(WarnCounter(count.clone()));
    let _guard = tracing::dispatcher::set_default(&dispatch);
    st.list("", None, 0).await.unwrap();
    count.load(Ordering::SeqCst)
}

#[tokio::test]
async fn skip_links_silences_the_skipped_symlink_warning() {
    let farm = link_farm();
    let noisy = farm_store(&farm, json!({})).await;
    assert!(warnings_while_listing(&noisy).await >= 7);
    let quiet = farm_store(&farm, json!({"skip_links": true})).await;
    assert_eq!(warnings_while_listing(&quiet).await, 0);
    assert_eq!(names(&quiet, "").await, vec!["real"]);
    // copy_links warns about links it cannot follow, unless skip_links.
    let follow = farm_store(&farm, json!({"copy_links": true})).await;
    assert!(warnings_while_listing(&follow).await >= 5);
    let follow_quiet = farm_store(&farm, json!({"copy_links": true, "skip_links": true})).await;
    assert_eq!(warnings_while_listing(&follow_quiet).await, 0);
}

// ---------------------------------------------------------------- options

#[tokio::test]
async fn options_are_validated_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_for(&[dir.path()]);
    let cases = [
        (json!({"zero_size_links": true}), "zero_size_links"),
        (json!({"encoding": "1234"}), "encoding"),
        (json!({"encoding": "Slash,Dot,Colon"}), "encoding"),
        (json!({"case_insensitive": true}), "case_insensitive"),
        (
            json!({"case_insensitive": true, "case_sensitive": true}),
            "case_sensitive",
        ),
        (json!({"links": "yes"}), "links"),
        (json!({"one_file_system": 1}), "one_file_system"),
        (json!({"time_type": true}), "time_type"),
        (json!({"root": 5}), "root"),
    ];
    for (options, field) in cases {
        let err = build_err(options.clone(), &env).await;
        assert_eq!(err.kind, ErrorKind::InvalidConfig, "{options}");
        assert!(err.message.contains(field), "{options}: {}", err.message);
    }
    let err = build_err(json!({"time_type": "bogus"}), &env).await;
    assert_eq!(
        err.message,
        "Invalid time_type: must be one of mtime, atime, btime, ctime"
    );

    let accepted = [
        json!({"encoding": "33554434"}),
        json!({"encoding": "Slash,Dot"}),
        json!({"encoding": ""}),
        json!({"encoding": 33554434}),
        json!({"case_sensitive": true}),
        json!({"zero_size_links": false}),
        json!({"no_preallocate": true, "no_sparse": true, "nounc": true, "no_clone": true}),
        json!({"nounc": "true"}),
        json!({"description": "Local archive drive", "no_preallocate": true, "one_file_system": true}),
        json!({"time_type": "0"}),
        json!({"time_type": "mtime"}),
        json!({"time_type": "atime"}),
        json!({"time_type": "ctime"}),
        json!({"time_type": "3"}),
    ];
    for options in accepted {
        let mut options = config(options);
        options.insert("root".into(), json!(""));
        build(&options, &env)
            .await
            .unwrap_or_else(|e| panic!("{options:?}: {e}"));
    }
    // The full default config from the catalog is accepted.
    let defaults = json!({
        "root": "", "description": "", "encoding": "33554434", "case_insensitive": false,
        "case_sensitive": false, "links": false, "copy_links": false, "skip_links": false,
        "zero_size_links": false, "unicode_normalization": false, "one_file_system": false,
        "nounc": false, "no_preallocate": false, "no_sparse": false, "no_check_updated": false,
        "no_set_modtime": false, "no_clone": false, "time_type": "0"
    });
    build(&config(defaults), &env).await.unwrap();
}

#[tokio::test]
async fn time_type_selects_the_reported_time() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_for(&[dir.path()]);
    let mtime = UNIX_EPOCH + Duration::from_secs(978_307_200); // 2001-01-01
    let atime = UNIX_EPOCH + Duration::from_secs(1_009_843_200); // 2002-01-01
    let path = dir.path().join("f.txt");
    fs::write(&path, b"x").unwrap();
    fs::create_dir(dir.path().join("d")).unwrap();
    for p in [path.clone(), dir.path().join("d")] {
        let times = fs::FileTimes::new().set_modified(mtime).set_accessed(atime);
        fs::File::open(&p).unwrap().set_times(times).unwrap();
    }
    let recent = SystemTime::now() - Duration::from_secs(3600);
    for (time_type, check) in [
        ("0", Some(mtime)),
        ("", Some(mtime)),
        ("mtime", Some(mtime)),
        ("atime", Some(atime)),
        ("ctime", None),
    ] {
        let st = build(&config(json!({"time_type": time_type})), &env)
            .await
            .unwrap();
        for name in ["f.txt", "d"] {
            let got = st.stat(name).await.unwrap().modified.unwrap();
            match check {
                Some(want) => assert_eq!(got, want, "{time_type} {name}"),
                None => assert!(got > recent, "{time_type} {name}: {got:?}"),
            }
        }
        let listed = st.list("", None, 0).await.unwrap();
        assert_eq!(
            listed.entries[1].modified,
            st.stat("f.txt").await.unwrap().modified
        );
    }
    // btime: a recent creation time where the filesystem keeps one, else a
    // clear config error.
    match build(&config(json!({"time_type": "btime"})), &env).await {
        Ok(st) => {
            let got = st.stat("f.txt").await.unwrap().modified.unwrap();
            assert!(got > recent, "btime {got:?}");
        }
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::InvalidConfig);
            assert!(e.message.contains("btime"), "{}", e.message);
        }
    }
}

#[tokio::test]
async fn no_set_modtime_refuses_setting_times() {
    let when = UNIX_EPOCH + Duration::from_secs(1_234_567_890);
    let dir = tempfile::tempdir().unwrap();
    let env = env_for(&[dir.path()]);
    let st = LocalStorage::from_config(&Map::new(), &env).await.unwrap();
    assert!(st.capability().set_mtime);
    st.write("f", once("x")).await.unwrap();
    st.set_modified("f", when).await.unwrap();
    assert_eq!(st.stat("f").await.unwrap().modified, Some(when));

    let frozen = LocalStorage::from_config(&config(json!({"no_set_modtime": true})), &env)
        .await
        .unwrap();
    assert!(!frozen.capability().set_mtime);
    frozen.write("g", once("x")).await.unwrap();
    let before = frozen.stat("g").await.unwrap().modified;
    let err = frozen.set_modified("g", when).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported);
    assert!(err.message.contains("no_set_modtime"));
    assert_eq!(frozen.stat("g").await.unwrap().modified, before);
}

#[tokio::test]
async fn unicode_normalization_uses_nfc_names() {
    let nfd = "cafe\u{301}.txt";
    let nfc = "caf\u{e9}.txt";
    let nfd_dir = "re\u{301}sume\u{301}";
    let nfc_dir = "r\u{e9}sum\u{e9}";
    let (dir, plain) = local_with(json!({})).await;
    fs::write(dir.path().join(nfd), b"nfd").unwrap();
    fs::create_dir(dir.path().join(nfd_dir)).unwrap();
    fs::write(dir.path().join(nfd_dir).join("x"), b"x").unwrap();
    assert_eq!(names(&plain, "").await, vec![nfd, nfd_dir]);
    assert_eq!(kind_of(plain.stat(nfc).await), ErrorKind::NotFound);

    let st = build(
        &config(json!({"unicode_normalization": true})),
        &env_for(&[dir.path()]),
    )
    .await
    .unwrap();
    assert_eq!(names(&st, "").await, vec![nfc, nfc_dir]);
    assert_eq!(get(&st, nfc).await, b"nfd");
    assert_eq!(get(&st, nfd).await, b"nfd");
    assert_eq!(get(&st, &format!("{nfc_dir}/x")).await, b"x");
    assert_eq!(st.stat(nfd).await.unwrap().path, nfc);
    // Overwriting by the NFC name replaces the NFD file, not a twin.
    put(&st, nfc, b"again").await;
    // New names are created in NFC, whatever form they come in.
    put(&st, "nai\u{308}ve", b"n").await;
    let on_disk = disk_names(dir.path());
    assert!(on_disk.contains(&"na\u{ef}ve".to_string()), "{on_disk:?}");
    assert_eq!(names(&st, "").await, vec![nfc, "na\u{ef}ve", nfc_dir]);
}

#[tokio::test]
async fn one_file_system_hides_other_filesystems() {
    use std::os::unix::fs::MetadataExt;
    let (root, proc) = (fs::metadata("/").unwrap(), fs::metadata("/proc"));
    let Ok(proc) = proc else {
        eprintln!("skipped: no /proc");
        return;
    };
    if root.dev() == proc.dev() {
        eprintln!("skipped: /proc is on the root filesystem");
        return;
    }
    let env = env_for(&[Path::new("/")]);
    let all = build(&config(json!({"root": "/", "skip_links": true})), &env)
        .await
        .unwrap();
    assert!(names(&all, "").await.contains(&"proc".to_string()));
    assert!(all.stat("proc").await.is_ok());

    let one = build(
        &config(json!({"root": "/", "skip_links": true, "one_file_system": true})),
        &env,
    )
    .await
    .unwrap();
    let listed = names(&one, "").await;
    assert!(!listed.contains(&"proc".to_string()), "{listed:?}");
    assert!(listed.contains(&"etc".to_string()) || listed.contains(&"usr".to_string()));
    assert_eq!(kind_of(one.stat("proc").await), ErrorKind::NotFound);
    assert_eq!(kind_of(one.stat("proc/self").await), ErrorKind::NotFound);
    assert_eq!(
        kind_of(one.list("proc", None, 0).await),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn reads_fail_when_the_file_changes_unless_no_check_updated() {
    for (options, should_fail) in [
        (json!({}), true),
        (json!({"no_check_updated": true}), false),
    ] {
        let (dir, st) = local_with(options).await;
        let data = pattern(1 << 20);
        st.write("grow.bin", chunked(&data, 1 << 16)).await.unwrap();
        let mut body = st.read("grow.bin", None).await.unwrap();
        let first = body.next().await.unwrap().unwrap();
        assert!(!first.is_empty());
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("grow.bin"))
            .unwrap();
        std::io::Write::write_all(&mut f, b"appended").unwrap();
        drop(f);
        let mut result = Ok(());
        while let Some(chunk) = body.next().await {
            if let Err(e) = chunk {
                result = Err(e);
                break;
            }
        }
        if should_fail {
            let err = result.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Transient);
            assert!(err.message.contains("changed"), "{}", err.message);
        } else {
            result.unwrap();
        }
    }
}

// ---------------------------------------------------------------- writes

#[tokio::test]
async fn failed_and_cancelled_writes_leave_no_file_and_no_temp_file() {
    let (dir, st) = local_with(json!({})).await;
    let failing = futures::stream::iter(vec![
        Ok(Bytes::from(pattern(300_000))),
        Err(StorageError::new(ErrorKind::Transient, "connection reset")),
    ])
    .boxed();
    let err = st.write("sub/broken.bin", failing).await.unwrap_err();
    assert_eq!(err.message, "connection reset");
    assert!(!dir.path().join("sub/broken.bin").exists());
    assert_no_temp_files(dir.path());

    // A write dropped midway (client went away) cleans up too.
    let stalled = futures::stream::iter(vec![Ok(Bytes::from(pattern(1000)))])
        .chain(futures::stream::pending())
        .boxed();
    let timed_out =
        tokio::time::timeout(Duration::from_millis(300), st.write("sub/stalled", stalled)).await;
    assert!(timed_out.is_err());
    assert!(!dir.path().join("sub/stalled").exists());
    assert_no_temp_files(dir.path());

    // A successful write leaves exactly the file.
    put(&st, "sub/ok", b"ok").await;
    assert_eq!(disk_names(&dir.path().join("sub")), vec!["ok"]);
}

#[tokio::test]
async fn temp_names_are_hidden_and_reserved() {
    let (dir, st) = local_with(json!({})).await;
    fs::write(dir.path().join(".berth-tmp-leftover"), b"x").unwrap();
    fs::write(dir.path().join(".hidden"), b"h").unwrap();
    assert_eq!(names(&st, "").await, vec![".hidden"]);
    assert_eq!(
        kind_of(st.stat(".berth-tmp-leftover").await),
        ErrorKind::Permission
    );
    assert_eq!(
        kind_of(st.write(".berth-tmp-x", once("x")).await),
        ErrorKind::Permission
    );
    assert_eq!(
        kind_of(st.mkdir("a/.berth-tmp-x").await),
        ErrorKind::Permission
    );
}

#[tokio::test]
async fn special_files_are_skipped() {
    let (dir, st) = local_with(json!({})).await;
    let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).unwrap();
    put(&st, "file", b"f").await;
    assert_eq!(names(&st, "").await, vec!["file"]);
    assert_eq!(kind_of(st.stat("sock").await), ErrorKind::NotFound);
}

#[tokio::test]
async fn non_utf8_names_are_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let (dir, st) = local_with(json!({})).await;
    let bad = std::ffi::OsStr::from_bytes(b"bad\xff");
    if fs::write(dir.path().join(bad), b"x").is_err() {
        eprintln!("skipped: filesystem refuses non-UTF-8 names");
        return;
    }
    put(&st, "good", b"g").await;
    assert_eq!(names(&st, "").await, vec!["good"]);
}

// ---------------------------------------------------------------- usage, probe

#[tokio::test]
async fn usage_reports_space() {
    let (_dir, st) = local_with(json!({})).await;
    let usage = st.usage().await.unwrap();
    let (total, free, used) = (
        usage.total.unwrap(),
        usage.free.unwrap(),
        usage.used.unwrap(),
    );
    assert!(total > 0 && free <= total && used <= total, "{usage:?}");
}

#[tokio::test]
async fn probe_names_a_vanished_root() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("root");
    fs::create_dir(&root).unwrap();
    let st = build(&config(json!({"root": root})), &env_for(&[parent.path()]))
        .await
        .unwrap();
    st.probe().await.unwrap();
    fs::remove_dir(&root).unwrap();
    let err = st.probe().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    let canonical = fs::canonicalize(parent.path()).unwrap().join("root");
    assert_eq!(
        err.message,
        format!("local root '{}' no longer exists", canonical.display())
    );
    fs::write(&root, b"now a file").unwrap();
    let err = st.probe().await.unwrap_err();
    assert!(
        err.message.contains("no longer a directory"),
        "{}",
        err.message
    );
}
