//! The `mounts` table: its model and repository functions.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::backends::found;
use crate::schema::mounts;
use crate::{Db, DbError};

/// One persistent mount, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = mounts)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct MountRow {
    /// `mount_` plus 32 lowercase hex characters.
    pub id: String,
    /// Owning organisation.
    pub org: String,
    /// The mounted backend.
    pub backend_id: String,
    /// Optional label.
    pub label: Option<String>,
    /// Absolute mount point (unique).
    pub mount_path: String,
    /// Sub-path of the backend that is mounted ("" = its root).
    pub remote_path: String,
    /// The VFS settings as JSON.
    pub vfs_config: String,
    /// Last known status.
    pub status: String,
    /// Last error message, if any.
    pub last_error: Option<String>,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// berth created the mount point (and removes it on DELETE).
    pub created_mount_point: bool,
}

impl Db {
    /// Inserts a mount; a taken id or mount path is [`DbError::Conflict`].
    pub fn insert_mount(&self, row: &MountRow) -> Result<(), DbError> {
        let mut conn = self.conn()?;
        diesel::insert_into(mounts::table)
            .values(row)
            .execute(&mut conn)
            .map_err(|e| match &e {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                    DbError::Conflict(format!("mount path {} is already used", row.mount_path))
                }
                _ => e.into(),
            })?;
        Ok(())
    }

    /// All mounts of all orgs, oldest first.
    pub fn list_mounts(&self) -> Result<Vec<MountRow>, DbError> {
        let mut conn = self.conn()?;
        Ok(mounts::table
            .order((mounts::created_at_ms.asc(), mounts::id.asc()))
            .select(MountRow::as_select())
            .load(&mut conn)?)
    }

    /// Sets the status and the last error (`None` clears it).
    pub fn update_mount_status(
        &self,
        id: &str,
        status: &str,
        last_error: Option<&str>,
    ) -> Result<(), DbError> {
        let mut conn = self.conn()?;
        let n = diesel::update(mounts::table.find(id))
            .set((mounts::status.eq(status), mounts::last_error.eq(last_error)))
            .execute(&mut conn)?;
        found(n, &format!("mount {id}"))
    }

    /// Replaces the VFS settings.
    pub fn update_mount_vfs_config(&self, id: &str, vfs_config: &str) -> Result<(), DbError> {
        let mut conn = self.conn()?;
        let n = diesel::update(mounts::table.find(id))
            .set(mounts::vfs_config.eq(vfs_config))
            .execute(&mut conn)?;
        found(n, &format!("mount {id}"))
    }

    /// Deletes the row. Returns whether a row was removed.
    pub fn delete_mount(&self, id: &str) -> Result<bool, DbError> {
        let mut conn = self.conn()?;
        Ok(diesel::delete(mounts::table.find(id)).execute(&mut conn)? > 0)
    }
}
