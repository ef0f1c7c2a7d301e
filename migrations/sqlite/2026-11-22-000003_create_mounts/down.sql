DROP TABLE mounts;
