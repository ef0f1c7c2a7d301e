ALTER TABLE mounts DROP COLUMN created_mount_point;
