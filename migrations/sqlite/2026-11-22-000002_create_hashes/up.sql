-- Content hashes kept by hasher backends (SQLite). Keep the shape identical to
-- migrations/postgres. One row per file of a hasher backend: the file's size and
-- modification time (Unix milliseconds, NULL when the store keeps none) when
-- the hashes were computed, the hashes as a JSON object ({"md5": "..."}) and
-- when the row was written. No foreign key to backends: a hasher may record
-- hashes while its backend is still being registered; berth deletes a
-- backend's rows when the backend goes.
CREATE TABLE hashes (
    backend_id    TEXT    NOT NULL,
    path          TEXT    NOT NULL,
    size          BIGINT  NOT NULL,
    mtime_ms      BIGINT,
    hashes_json   TEXT    NOT NULL,
    updated_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (backend_id, path)
);
