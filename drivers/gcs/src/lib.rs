//! Native driver for the `google-cloud-storage` provider, built on Google's
//! official `google-cloud-storage` and `google-cloud-auth` crates.
//!
//! # Paths
//!
//! The first path component is the bucket, the rest is the object name with
//! `/` as the directory separator: `photos/2024/a.jpg` is object `2024/a.jpg`
//! in bucket `photos`. The root lists the buckets of `project_number`;
//! `mkdir`/`rmdir` of a top-level path create and delete buckets. Directories
//! below a bucket are object-name prefixes; with `directory_markers` they are
//! also zero-byte `dir/` marker objects, which makes them exist on their own
//! ([`Capability::directories`](berth_storage::Capability::directories)).
//!
//! # Transports
//!
//! Object bodies go through the SDK's `Storage` client (JSON API media
//! downloads with byte ranges; uploads single-shot up to
//! [`RESUMABLE_THRESHOLD`], resumable in [`UPLOAD_CHUNK`] pieces above it,
//! CRC32C-checked). Everything else (stat, list, delete, copy, buckets) uses
//! the JSON API directly over the same credentials: the SDK offers those
//! only through `StorageControl`, which speaks gRPC (`google.storage.v2`), and
//! fake-gcs-server (the emulator the tests use) serves neither that API nor
//! HTTP/2 on its plain-HTTP port. Real GCS serves both APIs.
//!
//! # Retries
//!
//! The SDK retries transient failures at most [`SDK_ATTEMPTS`] times within
//! [`SDK_RETRY_TIME`] (it must, to resume an upload or a download whose
//! stream cannot be replayed); the JSON calls do not retry at all. Failures
//! come back with [`ErrorKind::Transient`](berth_storage::ErrorKind) for the
//! service's retry layer to handle.
//!
//! # Fields
//!
//! | field | decision |
//! |---|---|
//! | `service_account_credentials` | honoured: inline service-account key JSON |
//! | `service_account_file` | honoured: path of a service-account key JSON file |
//! | `anonymous` | honoured: unauthenticated requests (public buckets, emulators) |
//! | `env_auth` | honoured: Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud ADC file, metadata server) |
//! | `access_token` | honoured: a fixed bearer token, used until the server rejects it |
//! | `token` | honoured: rclone's OAuth token JSON; refreshed with `client_id`/`client_secret` when it has a `refresh_token`, else its `access_token` is used until its `expiry` |
//! | `client_id`, `client_secret` | honoured: refresh `token`; refused (InvalidConfig) without a `token` holding a `refresh_token`, or one without the other |
//! | `token_url` | honoured: token endpoint for that refresh; refused otherwise |
//! | `auth_url` | refused when set (InvalidConfig): only used by interactive browser logins, which a service cannot do |
//! | `client_credentials` | refused when true (Unsupported): Google's OAuth server has no client-credentials grant |
//! | `endpoint` | honoured: base URL of the JSON API (`http://127.0.0.1:4443` for fake-gcs-server) |
//! | `project_number` | honoured: project whose buckets the root lists and where `mkdir` creates buckets; without it the root listing answers InvalidConfig on GCS |
//! | `location` | honoured: location of buckets created by `mkdir` (or by a write with the bucket check on) |
//! | `storage_class` | honoured: class of new objects (writes and copies) and new buckets |
//! | `bucket_policy_only` | honoured: new buckets get uniform bucket-level access and no ACLs are sent; refused together with `object_acl`/`bucket_acl` |
//! | `object_acl` | honoured: predefined ACL of new objects (writes and copies) |
//! | `bucket_acl` | honoured: predefined ACL of new buckets |
//! | `directory_markers` | honoured: see Paths |
//! | `no_check_bucket` | honoured: when false, the first write into a bucket checks that it exists and creates it if not (as rclone does); when true, writes into a missing bucket fail with NotFound |
//! | `user_project` | honoured: billed project for requester-pays buckets (`userProject` on JSON calls, `x-goog-user-project` on SDK calls) |
//! | `decompress` | honoured: downloads of `Content-Encoding: gzip` objects are decompressed |
//! | `encoding` | only the default (`50348034`) is accepted (Unsupported otherwise): names are stored as given, and names with CR or LF, which GCS cannot store, are refused |
//! | `description` | accepted: a note for humans, no effect on storage |
//!
//! Exactly one credential source must be chosen (`anonymous`,
//! `service_account_credentials`, `service_account_file`, `env_auth`,
//! `access_token`, `token`); none or several is InvalidConfig naming them.
//! A service-account key that cannot be read or parsed fails with
//! "Failed to load service account credentials from <file or field>: <reason>";
//! the reason never quotes the key.

mod api;
mod auth;
mod backend;
mod body;
mod errors;
mod listing;
mod settings;

pub use backend::{
    GcsStorage, RESUMABLE_THRESHOLD, SDK_ATTEMPTS, SDK_RETRY_TIME, UPLOAD_CHUNK,
};

use berth_storage::catalog::Config;
use berth_storage::{Result, Storage};
use std::sync::Arc;

/// Builds the driver from a validated `google-cloud-storage` config. Checks
/// the options and loads the credentials; does not touch the network
/// (the caller's `probe` does).
pub async fn build(config: &Config) -> Result<Arc<dyn Storage>> {
    Ok(Arc::new(GcsStorage::from_config(config).await?))
}
