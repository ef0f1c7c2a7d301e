//! The `hashes` table: content hashes that `hasher` backends keep per file,
//! with the size and modification time they were computed for. The hasher
//! decides freshness; this module only stores rows.

use diesel::prelude::*;

use crate::pool::AnyConnection;
use crate::schema::hashes;
use crate::{Db, DbError};

/// The hashes of one file of one hasher backend, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = hashes, treat_none_as_null = true)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct HashRow {
    /// The hasher backend's id.
    pub backend_id: String,
    /// Path of the file inside the hasher backend (normalized, no leading `/`).
    pub path: String,
    /// File size when the hashes were computed.
    pub size: i64,
    /// File modification time then, Unix milliseconds; `None` when the store
    /// keeps no times.
    pub mtime_ms: Option<i64>,
    /// The hashes as a JSON object, e.g. `{"md5": "…", "sha1": "…"}`.
    pub hashes_json: String,
    /// When the row was written, Unix milliseconds.
    pub updated_at_ms: i64,
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Paths of the rows of `backend_id` at `path` or below `path/`. SQLite's
/// `LIKE` ignores ASCII case, so its candidates are filtered exactly here.
fn subtree(conn: &mut AnyConnection, backend_id: &str, path: &str) -> QueryResult<Vec<String>> {
    let below = format!("{path}/");
    let candidates: Vec<String> = hashes::table
        .filter(hashes::backend_id.eq(backend_id))
        .filter(
            hashes::path
                .eq(path)
                .or(hashes::path.like(like_prefix(&below)).escape('\\')),
        )
        .select(hashes::path)
        .load(conn)?;
    Ok(candidates
        .into_iter()
        .filter(|p| p == path || p.starts_with(&below))
        .collect())
}

impl Db {
    /// The stored hashes of `path` in hasher backend `backend_id`, if any.
    pub fn get_hashes(&self, backend_id: &str, path: &str) -> Result<Option<HashRow>, DbError> {
        let mut conn = self.conn()?;
        Ok(hashes::table
            .find((backend_id, path))
            .select(HashRow::as_select())
            .first(&mut conn)
            .optional()?)
    }

    /// Stores `row`, replacing the row of the same backend and path.
    pub fn put_hashes(&self, row: &HashRow) -> Result<(), DbError> {
        let mut conn = self.conn()?;
        let upsert = diesel::insert_into(hashes::table)
            .values(row)
            .on_conflict((hashes::backend_id, hashes::path))
            .do_update()
            .set(row);
        // MultiConnection has no ON CONFLICT: run it on the concrete connection.
        match &mut *conn {
            AnyConnection::Sqlite(c) => upsert.execute(c)?,
            AnyConnection::Postgresql(c) => upsert.execute(c)?,
        };
        Ok(())
    }

    /// Deletes the row of `path` (a file). Returns whether a row was removed.
    pub fn delete_hashes(&self, backend_id: &str, path: &str) -> Result<bool, DbError> {
        let mut conn = self.conn()?;
        let n = diesel::delete(hashes::table.find((backend_id, path))).execute(&mut conn)?;
        Ok(n > 0)
    }

    /// Moves the rows of `from` and of everything below `from/` to `to`
    /// (a file or directory rename), replacing the rows at `to` and below
    /// `to/`, in one transaction. Returns how many rows moved.
    pub fn rename_hashes(&self, backend_id: &str, from: &str, to: &str) -> Result<usize, DbError> {
        let mut conn = self.conn()?;
        if from == to {
            return Ok(0);
        }
        let moved = conn.transaction::<usize, DbError, _>(|conn| {
            for old in subtree(conn, backend_id, to)? {
                diesel::delete(hashes::table.find((backend_id, old.as_str()))).execute(conn)?;
            }
            let sources = subtree(conn, backend_id, from)?;
            for old in &sources {
                let new = format!("{to}{}", &old[from.len()..]);
                diesel::update(hashes::table.find((backend_id, old.as_str())))
                    .set(hashes::path.eq(new))
                    .execute(conn)?;
            }
            Ok(sources.len())
        })?;
        Ok(moved)
    }

    /// Deletes every row of hasher backend `backend_id` (when the backend is
    /// deleted). Returns how many rows were removed.
    pub fn delete_backend_hashes(&self, backend_id: &str) -> Result<usize, DbError> {
        let mut conn = self.conn()?;
        Ok(
            diesel::delete(hashes::table.filter(hashes::backend_id.eq(backend_id)))
                .execute(&mut conn)?,
        )
    }
}

#[cfg(test)]
mod tests {
    //! Run against SQLite always and PostgreSQL when `BERTH_TEST_POSTGRES_URL`
    //! is set, with the crate's test harness.

    use super::*;
    use crate::tests::{suite, Harness};

    fn row(backend: &str, path: &str, size: i64) -> HashRow {
        HashRow {
            backend_id: backend.into(),
            path: path.into(),
            size,
            mtime_ms: Some(1_700_000_000_000 + size),
            hashes_json: format!(r#"{{"md5":"{size:032x}"}}"#),
            updated_at_ms: 1_800_000_000_000,
        }
    }

    fn paths(db: &Db, backend: &str, candidates: &[&str]) -> Vec<String> {
        candidates
            .iter()
            .filter_map(|p| db.get_hashes(backend, p).unwrap().map(|r| r.path))
            .collect()
    }

    mod cases {
        use super::*;

        pub fn put_get_replace_delete(h: &Harness) {
            let db = &h.db;
            assert_eq!(db.get_hashes("b1", "a.txt").unwrap(), None);
            let mut r = row("b1", "a.txt", 5);
            db.put_hashes(&r).unwrap();
            assert_eq!(db.get_hashes("b1", "a.txt").unwrap(), Some(r.clone()));
            // Replacing keeps one row; NULL mtimes round-trip.
            r.size = 7;
            r.mtime_ms = None;
            r.hashes_json = r#"{"sha1":"x"}"#.into();
            db.put_hashes(&r).unwrap();
            assert_eq!(db.get_hashes("b1", "a.txt").unwrap(), Some(r.clone()));
            // Another backend's row of the same path is separate.
            db.put_hashes(&row("b2", "a.txt", 1)).unwrap();
            assert!(db.delete_hashes("b1", "a.txt").unwrap());
            assert!(!db.delete_hashes("b1", "a.txt").unwrap());
            assert_eq!(db.get_hashes("b1", "a.txt").unwrap(), None);
            assert_eq!(db.get_hashes("b2", "a.txt").unwrap().unwrap().size, 1);
            // Reopening finds the data (and migrations are idempotent).
            let again = h.reopen();
            assert_eq!(again.get_hashes("b2", "a.txt").unwrap().unwrap().size, 1);
        }

        pub fn rename_file_and_dir(h: &Harness) {
            let db = &h.db;
            for (p, s) in [
                ("d/x", 1),
                ("d/sub/y", 2),
                ("d-sibling", 3),
                ("dx/z", 4),
                ("D/upper", 5),
                ("f", 6),
                ("new/old-target", 7),
            ] {
                db.put_hashes(&row("b", p, s)).unwrap();
            }
            db.put_hashes(&row("other", "d/x", 9)).unwrap();
            // A file.
            assert_eq!(db.rename_hashes("b", "f", "g").unwrap(), 1);
            assert_eq!(db.get_hashes("b", "f").unwrap(), None);
            let g = db.get_hashes("b", "g").unwrap().unwrap();
            assert_eq!((g.size, g.hashes_json), (6, row("b", "f", 6).hashes_json));
            // A directory onto a path with rows below it: those are replaced.
            assert_eq!(db.rename_hashes("b", "d", "new").unwrap(), 2);
            let all = [
                "d/x",
                "d/sub/y",
                "d-sibling",
                "dx/z",
                "D/upper",
                "new/x",
                "new/sub/y",
                "new/old-target",
            ];
            assert_eq!(
                paths(db, "b", &all),
                vec!["d-sibling", "dx/z", "D/upper", "new/x", "new/sub/y"]
            );
            assert_eq!(db.get_hashes("b", "new/sub/y").unwrap().unwrap().size, 2);
            // Other backends are untouched; renaming nothing moves nothing.
            assert_eq!(db.get_hashes("other", "d/x").unwrap().unwrap().size, 9);
            assert_eq!(db.rename_hashes("b", "nope", "x").unwrap(), 0);
            assert_eq!(db.rename_hashes("b", "g", "g").unwrap(), 0);
            assert!(db.get_hashes("b", "g").unwrap().is_some());
        }

        pub fn like_wildcards_are_literal(h: &Harness) {
            let db = &h.db;
            for p in ["a_%/x", "ab%/y", "a\\b/z", "aX%/w"] {
                db.put_hashes(&row("b", p, 1)).unwrap();
            }
            assert_eq!(db.rename_hashes("b", "a_%", "m").unwrap(), 1);
            assert_eq!(db.rename_hashes("b", "a\\b", "n").unwrap(), 1);
            assert_eq!(
                paths(db, "b", &["m/x", "ab%/y", "n/z", "aX%/w", "a_%/x"]),
                vec!["m/x", "ab%/y", "n/z", "aX%/w"]
            );
        }

        pub fn delete_backend(h: &Harness) {
            let db = &h.db;
            for p in ["a", "b/c", "d"] {
                db.put_hashes(&row("gone", p, 1)).unwrap();
            }
            db.put_hashes(&row("kept", "a", 1)).unwrap();
            assert_eq!(db.delete_backend_hashes("gone").unwrap(), 3);
            assert_eq!(db.delete_backend_hashes("gone").unwrap(), 0);
            assert!(db.get_hashes("kept", "a").unwrap().is_some());
        }

        pub fn concurrent_puts(h: &Harness) {
            let threads: Vec<_> = (0..8)
                .map(|t| {
                    let db = h.db.clone();
                    std::thread::spawn(move || {
                        for i in 0..20 {
                            // Every thread writes the same paths too.
                            db.put_hashes(&row("b", &format!("same/{i}"), t)).unwrap();
                            db.put_hashes(&row("b", &format!("t{t}/{i}"), i)).unwrap();
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            for i in 0..20 {
                assert!(h
                    .db
                    .get_hashes("b", &format!("same/{i}"))
                    .unwrap()
                    .is_some());
                assert_eq!(
                    h.db.get_hashes("b", &format!("t7/{i}"))
                        .unwrap()
                        .unwrap()
                        .size,
                    i
                );
            }
        }
    }

    suite!(
        put_get_replace_delete,
        rename_file_and_dir,
        like_wildcards_are_literal,
        delete_backend,
        concurrent_puts,
    );
}
