-- Whether berth created the mount point (it removes it again on DELETE,
-- also after restarts). Same shape as migrations/sqlite.
ALTER TABLE mounts ADD COLUMN created_mount_point BOOLEAN NOT NULL DEFAULT FALSE;
