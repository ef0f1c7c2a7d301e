//! Native driver for the `google-cloud-storage` provider, built on Google's
//! official `google-cloud-storage` and `google-cloud-auth` crates.
//!
//! # Paths
//!
//! The first path component is the bucket, the rest is the object name with
//! `/` as the directory separator: `photos/2024/a.jpg` is object `2024/a.jpg`
//! in bucket `photos`. The root lists the buckets of `project_number`;
//! `mkdir`/`rmdir` of a top-level path create and delete (empty) buckets;
//! buckets cannot be renamed (Unsupported). A bucket's existence is checked
//! by listing one of its objects (as rclone does), so roles with only object
//! permissions work.
//!
//! # Directories
//!
//! Without `directory_markers` (the default), directories are object-name
//! prefixes: they exist while something is below them, `mkdir` only makes
//! sure the bucket exists, `rmdir` of an empty or missing directory does
//! nothing, listing a missing directory gives an empty page, and
//! [`Capability::directories`](berth_storage::Capability::directories) is
//! false. With `directory_markers`, `mkdir` writes a zero-byte `dir/` marker
//! object for the directory and each ancestor, directories exist on their
//! own and behave like a filesystem's (the flag is true): writing over a
//! directory or below a file is a Conflict, `rmdir` removes only empty ones,
//! listing a missing one is NotFound, and a directory emptied by deletes or
//! renames keeps existing (its parent gets a marker). Markers never show up
//! as entries. Either way, renaming a file is a server-side copy and a
//! delete, and renaming a directory copies then deletes every object below
//! it (not atomic); renaming a directory onto a file or a non-empty
//! directory is a Conflict.
//!
//! Listings come in name order with the last name as the cursor, merging
//! objects and prefixes (the `listing` module explains why that takes more
//! than passing GCS's pages through).
//!
//! # Probe
//!
//! `probe` lists one bucket of `project_number`, which checks the endpoint,
//! the credentials and the project. Without `project_number`, GCS answers
//! the listing with HTTP 400 (no project), which passes the probe: the
//! endpoint answered, and GCS refuses bad credentials with 401 before it
//! looks at parameters (not something the emulator can show). An anonymous
//! client that may not list buckets passes too. A `name:bucket` reference is then checked by listing the
//! bucket, which fails with NotFound "bucket 'x' does not exist" when it is
//! missing.
//!
//! # Transports
//!
//! Downloads go through the SDK's `Storage` client (JSON API media downloads
//! with byte ranges, resumed after a broken connection, CRC32C-checked), and
//! so do uploads up to [`RESUMABLE_THRESHOLD`] (one request). Larger bodies
//! use a resumable upload in [`UPLOAD_CHUNK`] pieces written here over the
//! JSON API, because the SDK's resumable sessions lose a custom endpoint's
//! port (see the `upload` module). Everything else (stat, list, delete,
//! copy, buckets) uses the JSON API directly over the same credentials: the
//! SDK offers those only through `StorageControl`, which speaks gRPC
//! (`google.storage.v2`), and fake-gcs-server (the emulator the tests use)
//! implements only the old `google.storage.v1` gRPC service and no HTTP/2 on
//! its plain-HTTP port. Real GCS serves both APIs.
//!
//! # Retries and timeouts
//!
//! The SDK retries a transient failure at most [`ATTEMPTS`] times (it must,
//! to resume a download whose stream cannot be replayed), and so do
//! resumable uploads for one piece; the JSON calls do not retry at all.
//! Failures come back as [`ErrorKind::Transient`](berth_storage::ErrorKind)
//! for the service's retry layer. A download must start answering within
//! [`OPEN_TIMEOUT`] and may stall at most [`STALL_TIMEOUT`]; one upload
//! request may take [`UPLOAD_TIMEOUT`]; JSON calls connect within 5 s and
//! finish within 90 s.
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
//! | `project_number` | honoured: project whose buckets the root lists and where new buckets are created; without it GCS refuses both, which berth reports as InvalidConfig naming the field |
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
//! `Failed to load service account credentials from <file or field>: <reason>`;
//! the reason never quotes the key.

mod api;
mod auth;
mod backend;
mod body;
mod errors;
mod listing;
mod settings;
mod upload;

pub use backend::{
    GcsStorage, ATTEMPTS, OPEN_TIMEOUT, RESUMABLE_THRESHOLD, STALL_TIMEOUT, UPLOAD_CHUNK,
    UPLOAD_TIMEOUT,
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
