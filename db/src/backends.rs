//! The `backends` table: its model and repository functions.

use std::fmt;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::schema::backends;
use crate::{Db, DbError};

/// One registered storage backend, as stored.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = backends)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct BackendRow {
    /// 16 lowercase hex characters (see [`new_backend_id`]).
    pub id: String,
    /// Owning organisation.
    pub org: String,
    /// Optional name, unique within `org` when present.
    pub name: Option<String>,
    /// Provider slug, e.g. `google-cloud-storage`.
    pub slug: String,
    /// Human-readable backend type, e.g. `google cloud storage`.
    pub backend_type: String,
    /// Server / endpoint shown to users.
    pub server: String,
    /// User (account) name shown to users.
    pub user_name: String,
    /// Free-form description.
    pub description: String,
    /// Lifecycle state: `connecting`, `connected`, `failed`, ...
    pub state: String,
    /// Last error message, if any.
    pub last_error: Option<String>,
    /// [`crate::MasterKey::seal`] output of the provider config, sealed with
    /// the backend id as associated data. Never plaintext.
    pub sealed_config: Vec<u8>,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Last use, Unix milliseconds.
    pub last_used_ms: Option<i64>,
}

/// Shows the sealed config's length only, to keep log lines short.
impl fmt::Debug for BackendRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendRow")
            .field("id", &self.id)
            .field("org", &self.org)
            .field("name", &self.name)
            .field("slug", &self.slug)
            .field("backend_type", &self.backend_type)
            .field("server", &self.server)
            .field("user_name", &self.user_name)
            .field("description", &self.description)
            .field("state", &self.state)
            .field("last_error", &self.last_error)
            .field(
                "sealed_config",
                &format_args!("<{} sealed bytes>", self.sealed_config.len()),
            )
            .field("created_at_ms", &self.created_at_ms)
            .field("last_used_ms", &self.last_used_ms)
            .finish()
    }
}

/// A fresh random backend id: 16 lowercase hex characters (64 random bits).
pub fn new_backend_id() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

impl Db {
    /// Inserts a new backend. A duplicate id, or a name already used in the
    /// same org, is [`DbError::Conflict`].
    pub fn insert_backend(&self, row: &BackendRow) -> Result<(), DbError> {
        let mut conn = self.conn()?;
        diesel::insert_into(backends::table)
            .values(row)
            .execute(&mut conn)
            .map_err(|e| insert_error(e, row))?;
        Ok(())
    }

    /// All backends of all orgs, oldest first (ties broken by id).
    pub fn list_backends(&self) -> Result<Vec<BackendRow>, DbError> {
        let mut conn = self.conn()?;
        Ok(backends::table
            .order((backends::created_at_ms.asc(), backends::id.asc()))
            .select(BackendRow::as_select())
            .load(&mut conn)?)
    }

    /// The backend with this id, if any.
    pub fn get_backend(&self, id: &str) -> Result<Option<BackendRow>, DbError> {
        let mut conn = self.conn()?;
        Ok(backends::table
            .find(id)
            .select(BackendRow::as_select())
            .first(&mut conn)
            .optional()?)
    }

    /// Sets the state and the last error (`None` clears it).
    /// [`DbError::NotFound`] if there is no such backend.
    pub fn update_backend_state(
        &self,
        id: &str,
        state: &str,
        last_error: Option<&str>,
    ) -> Result<(), DbError> {
        let mut conn = self.conn()?;
        let n = diesel::update(backends::table.find(id))
            .set((
                backends::state.eq(state),
                backends::last_error.eq(last_error),
            ))
            .execute(&mut conn)?;
        found(n, &format!("backend {id}"))
    }

    /// Replaces the sealed config. [`DbError::NotFound`] if there is no such backend.
    pub fn update_backend_config(&self, id: &str, sealed_config: &[u8]) -> Result<(), DbError> {
        let mut conn = self.conn()?;
        let n = diesel::update(backends::table.find(id))
            .set(backends::sealed_config.eq(sealed_config))
            .execute(&mut conn)?;
        found(n, &format!("backend {id}"))
    }

    /// Records a use at `last_used_ms`. [`DbError::NotFound`] if there is no such backend.
    pub fn touch_backend(&self, id: &str, last_used_ms: i64) -> Result<(), DbError> {
        let mut conn = self.conn()?;
        let n = diesel::update(backends::table.find(id))
            .set(backends::last_used_ms.eq(Some(last_used_ms)))
            .execute(&mut conn)?;
        found(n, &format!("backend {id}"))
    }

    /// Deletes the row (for real: no tombstone). Returns whether a row was removed.
    pub fn delete_backend(&self, id: &str) -> Result<bool, DbError> {
        let mut conn = self.conn()?;
        let n = diesel::delete(backends::table.find(id)).execute(&mut conn)?;
        Ok(n > 0)
    }
}

/// `NotFound` naming `what` when an update touched no row.
pub(crate) fn found(rows: usize, what: &str) -> Result<(), DbError> {
    if rows == 0 {
        Err(DbError::NotFound(what.to_string()))
    } else {
        Ok(())
    }
}

/// Names the rule an insert broke without echoing any config.
fn insert_error(e: DieselError, row: &BackendRow) -> DbError {
    match &e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            // PostgreSQL reports the constraint name; SQLite only the columns.
            let on_id = info.constraint_name() == Some("backends_pkey")
                || info.message().contains("backends.id");
            if on_id {
                DbError::Conflict(format!("backend id {} already exists", row.id))
            } else {
                DbError::Conflict(format!(
                    "a backend named {:?} already exists in org {:?}",
                    row.name.as_deref().unwrap_or_default(),
                    row.org
                ))
            }
        }
        _ => e.into(),
    }
}
