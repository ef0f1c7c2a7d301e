-- Registered storage backends (SQLite). Keep the shape identical to
-- migrations/postgres: timestamps are Unix milliseconds (BIGINT), the sealed
-- config is an XChaCha20-Poly1305 blob produced by berth_db::MasterKey::seal.
CREATE TABLE backends (
    id            TEXT    NOT NULL PRIMARY KEY,
    org           TEXT    NOT NULL,
    name          TEXT,
    slug          TEXT    NOT NULL,
    backend_type  TEXT    NOT NULL,
    server        TEXT    NOT NULL,
    user_name     TEXT    NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    state         TEXT    NOT NULL,
    last_error    TEXT,
    sealed_config BLOB    NOT NULL,
    created_at_ms BIGINT  NOT NULL,
    last_used_ms  BIGINT,
    -- NULL names are distinct, so unnamed backends never conflict.
    CONSTRAINT backends_org_name_key UNIQUE (org, name)
);

CREATE INDEX backends_created_idx ON backends (created_at_ms, id);
