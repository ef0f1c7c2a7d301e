//! Persistence for berth: one schema served by SQLite or PostgreSQL through
//! diesel, embedded migrations (one folder per database kind under
//! `migrations/`), repository functions on [`Db`], and sealing of backend
//! configs with a per-install [`MasterKey`].
//!
//! All calls block; async callers run them on a blocking thread
//! (`tokio::task::spawn_blocking` or `actix_web::web::block`).
//!
//! Each table has its own module holding its model and its `impl Db` block
//! (`backends`, `hashes`, `mounts`), so later tables add a module, a `table!` in
//! [`schema`] and a migration per database kind.

#![warn(missing_docs)]

mod backends;
pub mod crypto;
mod error;
mod hashes;
mod mounts;
mod pool;
pub mod schema;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use diesel::r2d2::{ManageConnection, Pool, PooledConnection};

pub use backends::{new_backend_id, BackendRow};
pub use crypto::MasterKey;
pub use error::DbError;
pub use hashes::HashRow;
pub use mounts::MountRow;

use pool::{Manager, SqlitePragmas, Target};

/// Connections kept by the pool for a file or server database.
const POOL_MAX_SIZE: u32 = 8;
/// How long a caller waits for a free pooled connection.
const POOL_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(30);

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbKind {
    /// A SQLite file (or `:memory:`).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Handle to the database: a connection pool. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Manager>,
    kind: DbKind,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.pool.state();
        f.debug_struct("Db")
            .field("kind", &self.kind)
            .field("connections", &state.connections)
            .field("idle", &state.idle_connections)
            .finish()
    }
}

impl Db {
    /// Opens the database named by `url` and applies pending migrations.
    ///
    /// `postgres://…` or `postgresql://…` is PostgreSQL; anything else is a
    /// SQLite file path, optionally prefixed with `sqlite://`, whose parent
    /// directories are created. `:memory:` gives a private in-memory SQLite
    /// database (a single connection; for tests). Every SQLite connection
    /// runs with `journal_mode=WAL`, `busy_timeout`, `synchronous=NORMAL` and
    /// `foreign_keys=ON`. Errors never include the URL's password.
    pub fn connect(url: &str) -> Result<Db, DbError> {
        let target = Target::parse(url)?;
        let kind = target.kind();
        let place = target.redacted();
        if let Target::Sqlite(path) = &target {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                if !target.is_memory() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        DbError::Other(format!("creating directory {}: {e}", parent.display()))
                    })?;
                }
            }
        }

        let manager = Manager::new(target.clone());
        let builder = Pool::builder()
            .connection_timeout(POOL_CHECKOUT_TIMEOUT)
            .test_on_check_out(true);
        let builder = match kind {
            DbKind::Sqlite => builder.connection_customizer(Box::new(SqlitePragmas)),
            DbKind::Postgres => builder,
        };

        let pool = if target.is_memory() {
            // One connection, kept forever: the data lives in it.
            let pool = builder
                .max_size(1)
                .min_idle(Some(1))
                .idle_timeout(None)
                .max_lifetime(None)
                .build(manager)
                .map_err(|e| DbError::Other(format!("opening {place}: {e}")))?;
            pool::run_migrations(&mut *pool.get()?)?;
            pool
        } else {
            // Connect once outside the pool: a bad URL fails at once with the
            // real error instead of after the pool's retry timeout.
            let mut conn = manager
                .connect()
                .map_err(|e| DbError::Other(format!("connecting to {place}: {e}")))?;
            SqlitePragmas::apply(&mut conn)?;
            pool::run_migrations(&mut conn)?;
            drop(conn);
            builder
                .max_size(POOL_MAX_SIZE)
                .min_idle(Some(1))
                .build(manager)
                .map_err(|e| DbError::Other(format!("opening pool for {place}: {e}")))?
        };
        tracing::debug!(db = %place, "database ready");
        Ok(Db { pool, kind })
    }

    /// Which database this is.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// A pooled connection.
    fn conn(&self) -> Result<PooledConnection<Manager>, DbError> {
        Ok(self.pool.get()?)
    }
}
