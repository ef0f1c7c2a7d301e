//! The repository suite, written once and run against SQLite (always) and
//! PostgreSQL (when `BERTH_TEST_POSTGRES_URL` is set; each test then works in
//! a schema of its own, dropped afterwards), plus SQLite-only checks.

use std::path::PathBuf;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::pool::AnyConnection;
use crate::{new_backend_id, BackendRow, Db, DbError, DbKind, MasterKey, MountRow};

/// Env var holding the PostgreSQL URL for the PostgreSQL half of the suite.
const PG_URL_VAR: &str = "BERTH_TEST_POSTGRES_URL";

/// A database for one test, removed when dropped (shared with the other
/// tables' test modules).
pub(crate) struct Harness {
    pub(crate) db: Db,
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
}

impl Harness {
    /// A fresh SQLite database in a temp dir.
    pub(crate) fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("berth.db").display().to_string();
        Harness {
            db: Db::connect(&url).unwrap(),
            url,
            _dir: Some(dir),
            pg_schema: None,
        }
    }

    /// `None` (after saying so) when no PostgreSQL URL is configured.
    pub(crate) fn postgres(test: &str) -> Option<Harness> {
        let Ok(base) = std::env::var(PG_URL_VAR) else {
            println!("postgres::{test} skipped: set {PG_URL_VAR} (see scripts/start-postgres.sh)");
            return None;
        };
        let schema = format!("berth_test_{}", new_backend_id());
        let mut admin = diesel::PgConnection::establish(&base).unwrap();
        diesel::connection::SimpleConnection::batch_execute(
            &mut admin,
            &format!("CREATE SCHEMA {schema}"),
        )
        .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
        Some(Harness {
            db: Db::connect(&url).unwrap(),
            url,
            _dir: None,
            pg_schema: Some((base, schema)),
        })
    }

    /// A second handle on the same database.
    pub(crate) fn reopen(&self) -> Db {
        Db::connect(&self.url).unwrap()
    }

    fn sqlite_path(&self) -> PathBuf {
        PathBuf::from(&self.url)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some((base, schema)) = &self.pg_schema {
            if let Ok(mut admin) = diesel::PgConnection::establish(base) {
                let _ = diesel::connection::SimpleConnection::batch_execute(
                    &mut admin,
                    &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
                );
            }
        }
    }
}

fn row(org: &str, name: Option<&str>, created_at_ms: i64) -> BackendRow {
    BackendRow {
        id: new_backend_id(),
        org: org.into(),
        name: name.map(Into::into),
        slug: "google-cloud-storage".into(),
        backend_type: "google cloud storage".into(),
        server: "storage.googleapis.com".into(),
        user_name: "svc@example.iam".into(),
        description: "test backend".into(),
        state: "connecting".into(),
        last_error: None,
        sealed_config: vec![1, 2, 3, 0, 255],
        created_at_ms,
        last_used_ms: None,
    }
}

fn conflict(r: Result<(), DbError>) -> String {
    match r {
        Err(DbError::Conflict(msg)) => msg,
        other => panic!("expected Conflict, got {other:?}"),
    }
}

/// One function per behaviour; each runs against both database kinds.
mod cases {
    use super::*;

    pub fn kind_matches_url(h: &Harness) {
        let expected = if h.pg_schema.is_some() {
            DbKind::Postgres
        } else {
            DbKind::Sqlite
        };
        assert_eq!(h.db.kind(), expected);
    }

    pub fn insert_and_get(h: &Harness) {
        let mut r = row("org-a", Some("photos"), 1_700_000_000_123);
        r.last_error = Some("ünïcødé error ✓".into());
        r.last_used_ms = Some(1_700_000_000_999);
        r.description = "multi\nline 'quoted' \"text\"".into();
        r.sealed_config = (0..=255u8).chain(0..=255).collect();
        h.db.insert_backend(&r).unwrap();
        assert_eq!(h.db.get_backend(&r.id).unwrap(), Some(r.clone()));
        assert_eq!(h.db.get_backend("0000000000000000").unwrap(), None);

        let unnamed = row("org-a", None, 5);
        h.db.insert_backend(&unnamed).unwrap();
        assert_eq!(h.db.get_backend(&unnamed.id).unwrap(), Some(unnamed));
    }

    pub fn list_is_ordered_and_spans_orgs(h: &Harness) {
        assert!(h.db.list_backends().unwrap().is_empty());
        let mut rows = vec![
            row("org-b", Some("b1"), 30),
            row("org-a", Some("a1"), 10),
            row("org-a", None, 20),
            row("org-c", Some("c1"), 20),
            row("org-b", None, 20),
        ];
        for r in &rows {
            h.db.insert_backend(r).unwrap();
        }
        rows.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        assert_eq!(h.db.list_backends().unwrap(), rows);
    }

    pub fn update_state(h: &Harness) {
        let r = row("org-a", Some("x"), 1);
        h.db.insert_backend(&r).unwrap();
        h.db.update_backend_state(&r.id, "failed", Some("bucket not found"))
            .unwrap();
        let got = h.db.get_backend(&r.id).unwrap().unwrap();
        assert_eq!(got.state, "failed");
        assert_eq!(got.last_error.as_deref(), Some("bucket not found"));
        assert_eq!(got.sealed_config, r.sealed_config);

        h.db.update_backend_state(&r.id, "connected", None).unwrap();
        let got = h.db.get_backend(&r.id).unwrap().unwrap();
        assert_eq!(got.state, "connected");
        assert_eq!(got.last_error, None);

        assert!(matches!(
            h.db.update_backend_state("ffffffffffffffff", "failed", None),
            Err(DbError::NotFound(_))
        ));
    }

    pub fn update_config(h: &Harness) {
        let r = row("org-a", Some("x"), 1);
        let other = row("org-a", Some("y"), 2);
        h.db.insert_backend(&r).unwrap();
        h.db.insert_backend(&other).unwrap();
        let sealed = MasterKey::generate().seal(b"{\"k\":\"v\"}", r.id.as_bytes());
        h.db.update_backend_config(&r.id, &sealed).unwrap();
        let got = h.db.get_backend(&r.id).unwrap().unwrap();
        assert_eq!(got.sealed_config, sealed);
        assert_eq!(got.state, r.state);
        // Only that row changed.
        assert_eq!(h.db.get_backend(&other.id).unwrap(), Some(other));
        assert!(matches!(
            h.db.update_backend_config("ffffffffffffffff", &sealed),
            Err(DbError::NotFound(_))
        ));
    }

    pub fn touch(h: &Harness) {
        let r = row("org-a", Some("x"), 1);
        h.db.insert_backend(&r).unwrap();
        h.db.touch_backend(&r.id, 1_800_000_000_000).unwrap();
        assert_eq!(
            h.db.get_backend(&r.id).unwrap().unwrap().last_used_ms,
            Some(1_800_000_000_000)
        );
        h.db.touch_backend(&r.id, 1_800_000_000_001).unwrap();
        let got = h.db.get_backend(&r.id).unwrap().unwrap();
        assert_eq!(got.last_used_ms, Some(1_800_000_000_001));
        assert_eq!(
            BackendRow {
                last_used_ms: None,
                ..got
            },
            r
        );
        assert!(matches!(
            h.db.touch_backend("ffffffffffffffff", 1),
            Err(DbError::NotFound(_))
        ));
    }

    pub fn delete_removes_the_row(h: &Harness) {
        let r = row("org-a", Some("gone"), 1);
        let keep = row("org-a", Some("kept"), 2);
        h.db.insert_backend(&r).unwrap();
        h.db.insert_backend(&keep).unwrap();
        assert!(h.db.delete_backend(&r.id).unwrap());
        assert!(!h.db.delete_backend(&r.id).unwrap());
        assert_eq!(h.db.get_backend(&r.id).unwrap(), None);
        assert_eq!(h.db.list_backends().unwrap(), vec![keep.clone()]);

        // Really gone: the raw table no longer has it ...
        let mut conn = h.db.conn().unwrap();
        let raw: i64 = crate::schema::backends::table
            .filter(crate::schema::backends::id.eq(&r.id))
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(raw, 0);
        drop(conn);
        // ... and both its id and its name can be used again.
        h.db.insert_backend(&r).unwrap();
        assert_eq!(h.db.get_backend(&r.id).unwrap(), Some(r));
    }

    pub fn names_unique_per_org(h: &Harness) {
        let first = row("org-a", Some("photos"), 1);
        h.db.insert_backend(&first).unwrap();

        let dup = row("org-a", Some("photos"), 2);
        let msg = conflict(h.db.insert_backend(&dup));
        assert!(msg.contains("photos") && msg.contains("org-a"), "{msg}");
        assert_eq!(h.db.get_backend(&dup.id).unwrap(), None);

        // Same name in another org, and any number of unnamed backends.
        h.db.insert_backend(&row("org-b", Some("photos"), 3))
            .unwrap();
        h.db.insert_backend(&row("org-a", None, 4)).unwrap();
        h.db.insert_backend(&row("org-a", None, 5)).unwrap();
        // Names are case-sensitive.
        h.db.insert_backend(&row("org-a", Some("Photos"), 6))
            .unwrap();
        assert_eq!(h.db.list_backends().unwrap().len(), 5);
    }

    pub fn duplicate_id_conflicts(h: &Harness) {
        let r = row("org-a", Some("one"), 1);
        h.db.insert_backend(&r).unwrap();
        let same_id = BackendRow {
            name: Some("two".into()),
            ..row("org-b", None, 2)
        };
        let same_id = BackendRow {
            id: r.id.clone(),
            ..same_id
        };
        let msg = conflict(h.db.insert_backend(&same_id));
        assert!(msg.contains(&r.id), "{msg}");
        assert_eq!(h.db.get_backend(&r.id).unwrap(), Some(r));
    }

    pub fn migrations_idempotent_on_reopen(h: &Harness) {
        let r = row("org-a", Some("persist"), 1);
        h.db.insert_backend(&r).unwrap();
        for _ in 0..3 {
            let db = h.reopen();
            assert_eq!(db.get_backend(&r.id).unwrap(), Some(r.clone()));
        }
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let mut conn = h.db.conn().unwrap();
        let sql = "SELECT COUNT(*) AS n FROM __diesel_schema_migrations";
        let count = match &mut *conn {
            AnyConnection::Sqlite(c) => diesel::sql_query(sql).get_result::<Count>(c),
            AnyConnection::Postgresql(c) => diesel::sql_query(sql).get_result::<Count>(c),
        }
        .unwrap();
        let dir = match h.db.kind() {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        };
        let expected = std::fs::read_dir(format!(
            "{}/../migrations/{dir}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("up.sql").exists())
        .count();
        assert_eq!(count.n, expected as i64);
    }

    pub fn concurrent_writers(h: &Harness) {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let db = h.db.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let r = row(&format!("org-{t}"), Some(&format!("b{i}")), i);
                        db.insert_backend(&r).unwrap();
                        db.update_backend_state(&r.id, "connected", None).unwrap();
                        db.touch_backend(&r.id, i + 1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let all = h.db.list_backends().unwrap();
        assert_eq!(all.len(), 200);
        assert!(all.iter().all(|r| r.state == "connected"));
    }

    pub fn sealed_config_round_trips_through_db(h: &Harness) {
        let key = MasterKey::generate();
        let mut r = row("org-a", Some("s3"), 1);
        let config = serde_json::json!({"access_key_id": "AKIA", "secret_access_key": "TOPSECRET"});
        r.sealed_config = key.seal_json(&config, r.id.as_bytes()).unwrap();
        h.db.insert_backend(&r).unwrap();
        let got = h.db.get_backend(&r.id).unwrap().unwrap();
        let back: serde_json::Value = key
            .open_json(&got.sealed_config, got.id.as_bytes())
            .unwrap();
        assert_eq!(back, config);
        // Bound to its row: another id does not open it.
        assert!(key.open(&got.sealed_config, b"ffffffffffffffff").is_err());
    }

    pub fn mounts_lifecycle(h: &Harness) {
        let backend = row("org-a", None, 1);
        h.db.insert_backend(&backend).unwrap();
        let mount = MountRow {
            id: format!("mount_{}", "a".repeat(32)),
            org: "org-a".into(),
            backend_id: backend.id.clone(),
            label: Some("Photos".into()),
            mount_path: "/srv/mounts/photos".into(),
            remote_path: "bucket/dir".into(),
            vfs_config: r#"{"cache_mode":"writes"}"#.into(),
            status: "mounting".into(),
            last_error: None,
            created_at_ms: 5,
            created_mount_point: true,
        };
        h.db.insert_mount(&mount).unwrap();
        let same_path = MountRow {
            id: format!("mount_{}", "b".repeat(32)),
            ..mount.clone()
        };
        assert!(conflict(h.db.insert_mount(&same_path)).contains("/srv/mounts/photos"));
        h.db.update_mount_status(&mount.id, "error", Some("boom"))
            .unwrap();
        h.db.update_mount_vfs_config(&mount.id, r#"{"cache_mode":"full"}"#)
            .unwrap();
        let got = h.db.list_mounts().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].status, "error");
        assert_eq!(got[0].last_error.as_deref(), Some("boom"));
        assert_eq!(got[0].vfs_config, r#"{"cache_mode":"full"}"#);
        // A mounted backend cannot be deleted under its mount.
        assert!(h.db.delete_backend(&backend.id).is_err());
        assert!(h.db.delete_mount(&mount.id).unwrap());
        assert!(!h.db.delete_mount(&mount.id).unwrap());
        assert!(matches!(
            h.db.update_mount_status(&mount.id, "active", None),
            Err(DbError::NotFound(_))
        ));
        assert!(h.db.delete_backend(&backend.id).unwrap());
    }
}

/// Generates `sqlite::NAME` and `postgres::NAME` tests for each case of the
/// invoking module's `cases`.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::cases::$name(&super::Harness::sqlite());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(h) = super::Harness::postgres(stringify!($name)) {
                        super::cases::$name(&h);
                    }
                }
            )*
        }
    };
}
pub(crate) use suite;

suite!(
    kind_matches_url,
    insert_and_get,
    list_is_ordered_and_spans_orgs,
    update_state,
    update_config,
    touch,
    delete_removes_the_row,
    names_unique_per_org,
    duplicate_id_conflicts,
    migrations_idempotent_on_reopen,
    concurrent_writers,
    sealed_config_round_trips_through_db,
    mounts_lifecycle,
);

// ---- SQLite-only ----

#[derive(QueryableByName)]
struct Pragma {
    #[diesel(sql_type = Text)]
    v: String,
}

fn sqlite_pragma(db: &Db, name: &str) -> String {
    let mut conn = db.conn().unwrap();
    let AnyConnection::Sqlite(c) = &mut *conn else {
        panic!("not sqlite")
    };
    diesel::sql_query(format!(
        "SELECT CAST((SELECT * FROM pragma_{name}) AS TEXT) AS v"
    ))
    .get_result::<Pragma>(c)
    .unwrap()
    .v
}

#[test]
fn sqlite_wal_and_pragmas_on_every_connection() {
    let h = Harness::sqlite();
    // Hold several connections at once so the pool has to open new ones.
    let held: Vec<_> = (0..4).map(|_| h.db.conn().unwrap()).collect();
    assert!(h.db.pool.state().connections >= 4);
    drop(held);
    for _ in 0..6 {
        assert_eq!(sqlite_pragma(&h.db, "journal_mode"), "wal");
        assert_eq!(sqlite_pragma(&h.db, "foreign_keys"), "1");
        assert_eq!(
            sqlite_pragma(&h.db, "busy_timeout"),
            crate::pool::SQLITE_BUSY_TIMEOUT_MS.to_string()
        );
        assert_eq!(sqlite_pragma(&h.db, "synchronous"), "1"); // NORMAL
    }
    h.db.insert_backend(&row("o", None, 1)).unwrap();
    assert!(h.sqlite_path().with_extension("db-wal").exists());
}

#[test]
fn sqlite_encrypted_at_rest() {
    const SECRET: &str = "berth-test-secret-Zq8v3LmN0pXw";
    const VISIBLE: &str = "berth-visible-marker-Kd82Hs";
    let h = Harness::sqlite();
    let key = MasterKey::generate();
    let mut r = row("org-a", Some("enc"), 1);
    r.description = VISIBLE.into();
    let config = serde_json::json!({"bucket": "b", "secret_access_key": SECRET});
    r.sealed_config = key.seal_json(&config, r.id.as_bytes()).unwrap();
    h.db.insert_backend(&r).unwrap();
    let sealed2 = key.seal(format!("rotated {SECRET}").as_bytes(), r.id.as_bytes());
    h.db.update_backend_config(&r.id, &sealed2).unwrap();

    let scan = |label: &str| {
        let mut bytes = Vec::new();
        for suffix in ["db", "db-wal", "db-shm"] {
            if let Ok(b) = std::fs::read(h.sqlite_path().with_extension(suffix)) {
                bytes.extend(b);
            }
        }
        let has = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
        // The scan sees real data (the unsealed description) ...
        assert!(has(VISIBLE), "{label}: marker not found; scan is broken");
        // ... but never the secret.
        assert!(!has(SECRET), "{label}: secret found in the database files");
    };
    scan("before checkpoint");
    // Also after the WAL has been folded into the main file.
    {
        let mut conn = h.db.conn().unwrap();
        let AnyConnection::Sqlite(c) = &mut *conn else {
            unreachable!()
        };
        diesel::connection::SimpleConnection::batch_execute(c, "PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    scan("after checkpoint");
    // And it still opens.
    let got = h.db.get_backend(&r.id).unwrap().unwrap();
    assert_eq!(
        key.open(&got.sealed_config, r.id.as_bytes()).unwrap(),
        format!("rotated {SECRET}").as_bytes()
    );
}

#[test]
fn sqlite_url_forms_and_parent_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/c/berth.db");
    let url = format!("sqlite://{}", nested.display());
    let db = Db::connect(&url).unwrap();
    assert_eq!(db.kind(), DbKind::Sqlite);
    db.insert_backend(&row("o", Some("n"), 1)).unwrap();
    assert!(nested.exists());
    // Same file without the prefix.
    assert_eq!(
        Db::connect(&nested.display().to_string())
            .unwrap()
            .list_backends()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn sqlite_in_memory() {
    let db = Db::connect(":memory:").unwrap();
    let r = row("o", Some("n"), 1);
    db.insert_backend(&r).unwrap();
    let clone = db.clone();
    let got = std::thread::spawn(move || clone.get_backend(&r.id).unwrap())
        .join()
        .unwrap();
    assert!(got.is_some());
}

#[test]
fn bad_postgres_url_fails_fast_without_leaking_password() {
    let started = std::time::Instant::now();
    let err = Db::connect("postgres://berth:hunter2-pw@127.0.0.1:1/berth").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DbError::Other(_)), "{msg}");
    assert!(!msg.contains("hunter2-pw"), "{msg}");
    assert!(msg.contains("***"), "{msg}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // And it did not fall back to creating a SQLite file of that name.
    assert!(!std::path::Path::new("postgres:").exists());
}

#[test]
fn db_is_send_sync_clone_and_debug_is_safe() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<Db>();
    let h = Harness::sqlite();
    let dbg = format!("{:?}", h.db);
    assert!(dbg.contains("Sqlite"), "{dbg}");
    let r = row("o", None, 1);
    let dbg = format!("{r:?}");
    assert!(dbg.contains("<5 sealed bytes>"), "{dbg}");
}

#[test]
fn backend_ids_are_16_lowercase_hex() {
    let ids: std::collections::HashSet<_> = (0..1000).map(|_| new_backend_id()).collect();
    assert_eq!(ids.len(), 1000);
    for id in ids {
        assert_eq!(id.len(), 16);
        assert!(
            id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{id}"
        );
    }
}

#[test]
fn postgres_default_schema() {
    // The URL as given (no per-test schema), as the service uses it: only
    // migrations and a read, so parallel tests are unaffected.
    let Ok(url) = std::env::var(PG_URL_VAR) else {
        println!("postgres_default_schema skipped: set {PG_URL_VAR}");
        return;
    };
    let db = Db::connect(&url).unwrap();
    assert_eq!(db.kind(), DbKind::Postgres);
    db.list_backends().unwrap();
    assert!(db.get_backend("0000000000000000").unwrap().is_none());
}
