-- Persistent FUSE mounts (PostgreSQL). Same shape as migrations/sqlite. Every
-- row is a mount berth keeps mounted (restored on start) until it is deleted.
CREATE TABLE mounts (
    id            TEXT    NOT NULL PRIMARY KEY,
    org           TEXT    NOT NULL,
    backend_id    TEXT    NOT NULL REFERENCES backends (id),
    label         TEXT,
    mount_path    TEXT    NOT NULL UNIQUE,
    remote_path   TEXT    NOT NULL DEFAULT '',
    vfs_config    TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    last_error    TEXT,
    created_at_ms BIGINT  NOT NULL
);

CREATE INDEX mounts_backend_idx ON mounts (backend_id);
