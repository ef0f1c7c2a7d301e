//! diesel schema, kept in step by hand with `migrations/sqlite` and
//! `migrations/postgres` (both databases share one shape).

diesel::table! {
    /// Registered storage backends, one row per backend.
    backends (id) {
        /// 16 lowercase hex characters.
        id -> Text,
        /// Owning organisation.
        org -> Text,
        /// Optional name, unique within `org`.
        name -> Nullable<Text>,
        /// Provider slug, e.g. `google-cloud-storage`.
        slug -> Text,
        /// Human-readable backend type, e.g. `google cloud storage`.
        backend_type -> Text,
        /// Server / endpoint shown to users.
        server -> Text,
        /// User (account) name shown to users.
        user_name -> Text,
        /// Free-form description.
        description -> Text,
        /// Lifecycle state of the backend actor.
        state -> Text,
        /// Last error message, if any.
        last_error -> Nullable<Text>,
        /// `MasterKey::seal` output of the provider config (never plaintext).
        sealed_config -> Binary,
        /// Creation time, Unix milliseconds.
        created_at_ms -> BigInt,
        /// Last use, Unix milliseconds.
        last_used_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Content hashes kept by `hasher` backends, one row per file.
    hashes (backend_id, path) {
        /// The hasher backend's id.
        backend_id -> Text,
        /// Path of the file inside the hasher backend.
        path -> Text,
        /// File size when the hashes were computed.
        size -> BigInt,
        /// File modification time then, Unix milliseconds (NULL: unknown).
        mtime_ms -> Nullable<BigInt>,
        /// The hashes as a JSON object, e.g. `{"md5": "..."}`.
        hashes_json -> Text,
        /// When the row was written, Unix milliseconds.
        updated_at_ms -> BigInt,
    }
}

diesel::table! {
    /// Persistent FUSE mounts, one row per mount kept mounted.
    mounts (id) {
        /// `mount_` plus 32 lowercase hex characters.
        id -> Text,
        /// Owning organisation.
        org -> Text,
        /// The mounted backend.
        backend_id -> Text,
        /// Optional label (for filtering).
        label -> Nullable<Text>,
        /// Absolute mount point.
        mount_path -> Text,
        /// Sub-path of the backend that is mounted ("" = its root).
        remote_path -> Text,
        /// The VFS settings as JSON.
        vfs_config -> Text,
        /// Last known status: mounting, active, unmounting, error.
        status -> Text,
        /// Last error message, if any.
        last_error -> Nullable<Text>,
        /// Creation time, Unix milliseconds.
        created_at_ms -> BigInt,
        /// berth created the mount point (and removes it on DELETE).
        created_mount_point -> Bool,
    }
}

diesel::joinable!(mounts -> backends (backend_id));
diesel::allow_tables_to_appear_in_same_query!(backends, mounts);
