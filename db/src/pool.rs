//! Connections: the two-database connection enum, the r2d2 manager that opens
//! the right kind for a URL, SQLite session pragmas, and embedded migrations.

use std::path::PathBuf;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{CustomizeConnection, ManageConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::{DbError, DbKind};

/// Migrations for SQLite databases, compiled into the binary.
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
/// Migrations for PostgreSQL databases, compiled into the binary.
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// Key of the PostgreSQL advisory lock held while migrating, so that several
/// berth processes (or tests) starting at once do not race on the schema.
const MIGRATION_LOCK_KEY: i64 = 0x6265_7274_685f_6462; // "berth_db"

/// How long SQLite waits for a lock held by another connection.
pub(crate) const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

/// One connection to either database; queries are written once against it.
#[derive(diesel::MultiConnection)]
pub(crate) enum AnyConnection {
    /// A PostgreSQL connection.
    Postgresql(PgConnection),
    /// A SQLite connection.
    Sqlite(SqliteConnection),
}

/// Where to connect, decided from the URL once (MultiConnection's own
/// `establish` tries every kind in turn, which could turn a mistyped or
/// unreachable PostgreSQL URL into a SQLite file of that name).
#[derive(Clone)]
pub(crate) enum Target {
    /// A SQLite database file (or `:memory:`).
    Sqlite(PathBuf),
    /// A PostgreSQL URL (may contain a password: never print it).
    Postgres(String),
}

impl Target {
    /// `postgres://` and `postgresql://` URLs are PostgreSQL; anything else
    /// is a SQLite path, with an optional `sqlite://` (or `sqlite:`) prefix.
    pub(crate) fn parse(url: &str) -> Result<Target, DbError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres(url.to_string()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() {
            return Err(DbError::Other(format!(
                "empty SQLite path in database URL {url:?}"
            )));
        }
        Ok(Target::Sqlite(PathBuf::from(path)))
    }

    pub(crate) fn kind(&self) -> DbKind {
        match self {
            Target::Sqlite(_) => DbKind::Sqlite,
            Target::Postgres(_) => DbKind::Postgres,
        }
    }

    /// True for a private in-memory SQLite database, which lives only as
    /// long as its single connection.
    pub(crate) fn is_memory(&self) -> bool {
        matches!(self, Target::Sqlite(p) if p.as_os_str() == ":memory:")
    }

    /// A description safe for logs and errors (no password).
    pub(crate) fn redacted(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("sqlite {}", path.display()),
            Target::Postgres(url) => format!("postgres {}", redact_url(url)),
        }
    }
}

/// Replaces the password of a `scheme://user:password@host` URL with `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{masked}{}{tail}", &authority[at..])
        }
        None => url.to_string(),
    }
}

/// r2d2 manager that opens exactly the database kind the URL names.
pub(crate) struct Manager {
    target: Target,
}

impl Manager {
    pub(crate) fn new(target: Target) -> Manager {
        Manager { target }
    }
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, Self::Error> {
        let conn = match &self.target {
            Target::Sqlite(path) => {
                let path = path.to_str().ok_or_else(|| {
                    diesel::ConnectionError::InvalidConnectionUrl(
                        "SQLite path is not valid UTF-8".into(),
                    )
                })?;
                SqliteConnection::establish(path).map(AnyConnection::Sqlite)
            }
            Target::Postgres(url) => PgConnection::establish(url).map(AnyConnection::Postgresql),
        };
        conn.map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Session settings applied to every SQLite connection the pool opens.
#[derive(Debug)]
pub(crate) struct SqlitePragmas;

impl SqlitePragmas {
    /// Applies the pragmas. `busy_timeout` comes first so that switching to
    /// WAL waits for other connections instead of failing with SQLITE_BUSY.
    pub(crate) fn apply(conn: &mut AnyConnection) -> diesel::QueryResult<()> {
        if let AnyConnection::Sqlite(conn) = conn {
            conn.batch_execute(&format!(
                "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
                 PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA foreign_keys = ON;"
            ))?;
        }
        Ok(())
    }
}

impl CustomizeConnection<AnyConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), diesel::r2d2::Error> {
        Self::apply(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Runs the pending embedded migrations for the connection's kind.
pub(crate) fn run_migrations(conn: &mut AnyConnection) -> Result<(), DbError> {
    match conn {
        AnyConnection::Sqlite(conn) => apply_migrations(conn, SQLITE_MIGRATIONS),
        AnyConnection::Postgresql(conn) => {
            // A session-level lock, released below whatever the outcome.
            conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
            let result = apply_migrations(conn, POSTGRES_MIGRATIONS);
            let unlocked =
                conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"));
            result?;
            unlocked?;
            Ok(())
        }
    }
}

fn apply_migrations<C, DB>(conn: &mut C, migrations: EmbeddedMigrations) -> Result<(), DbError>
where
    C: MigrationHarness<DB>,
    DB: diesel::backend::Backend,
{
    let applied = conn
        .run_pending_migrations(migrations)
        .map_err(|e| DbError::Other(format!("running migrations: {e}")))?;
    for version in applied {
        tracing::info!(%version, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_urls() {
        assert_eq!(
            Target::parse("postgres://u:p@h/db").unwrap().kind(),
            DbKind::Postgres
        );
        assert_eq!(
            Target::parse("postgresql://h/db").unwrap().kind(),
            DbKind::Postgres
        );
        for (url, path) in [
            ("/var/lib/berth/berth.db", "/var/lib/berth/berth.db"),
            ("sqlite:///var/lib/berth.db", "/var/lib/berth.db"),
            ("sqlite://data/berth.db", "data/berth.db"),
            ("sqlite:berth.db", "berth.db"),
            ("berth.db", "berth.db"),
            (":memory:", ":memory:"),
        ] {
            match Target::parse(url).unwrap() {
                Target::Sqlite(p) => assert_eq!(p, PathBuf::from(path), "{url}"),
                Target::Postgres(_) => panic!("{url} parsed as postgres"),
            }
        }
        assert!(Target::parse(":memory:").unwrap().is_memory());
        assert!(!Target::parse("x.db").unwrap().is_memory());
        assert!(Target::parse("").is_err());
        assert!(Target::parse("sqlite://").is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://berth:s3cret@127.0.0.1:5432/berth?sslmode=disable"),
            "postgres://berth:***@127.0.0.1:5432/berth?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://berth@host/db"),
            "postgres://berth@host/db"
        );
        assert_eq!(redact_url("postgres://host/db"), "postgres://host/db");
        assert_eq!(
            redact_url("postgres://u:p%40ss@host"),
            "postgres://u:***@host"
        );
        assert!(!Target::parse("postgresql://a:hunter2@h/d")
            .unwrap()
            .redacted()
            .contains("hunter2"));
    }
}
