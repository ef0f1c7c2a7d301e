//! Native driver for `azureblob` (Azure Blob Storage) over Microsoft's
//! `azure_storage_blob` SDK.
//!
//! # Paths
//!
//! The first path component is the container; the rest is the blob name with
//! `/` as the directory delimiter. The root lists the containers (only the
//! SAS's container with a container-level `sas_url`); `mkdir` of a top-level
//! path creates the container (with `public_access`), `rmdir` of an empty one
//! deletes it. Below a container, directories are blob-name prefixes, or with
//! `directory_markers` empty `dir/` marker blobs that make empty directories
//! real ([`Capability::directories`](berth_storage::Capability) is then true:
//! `mkdir` writes markers, `rmdir` removes them, a directory emptied by
//! deletes keeps a marker, and files over directories or below files are
//! refused). Names Azure would silently change (a segment ending in `.`, a
//! backslash) are refused. A name that is both a blob and a prefix lists as
//! a directory.
//!
//! Listings are sorted by name with the last name as the cursor (see the
//! `list` module); reads are ranged; writes stream (see the `upload` module); rename is a
//! server-side copy and a delete (not atomic); usage is unsupported. The
//! service's retry layer retries `Transient` errors; the SDK's own retries
//! are bounded to 2 quick ones (100 ms, 200 ms; 5 s in all) for connection
//! hiccups and 408/429/5xx answers.
//!
//! # Errors
//!
//! 404 (`ContainerNotFound`, `BlobNotFound`) is `NotFound`; 401/403
//! `AuthenticationFailed` is `Permission` "Invalid storage account
//! credentials: <reason>" (other 403s: "permission denied"); 409/412 are
//! `Conflict` (`ContainerBeingDeleted` is `Transient`); 408, 429 and 5xx are
//! `Transient`, as are connection failures, which name the endpoint. No
//! message holds a secret: URLs lose their query and `sig=` values are
//! masked.
//!
//! # The 37 fields of the spec's table
//!
//! | field | decision |
//! |---|---|
//! | `access_tier` | works: the tier of uploaded, committed and copied blobs; blank keeps the account default |
//! | `account` | works: signs the account SAS; names the endpoint `https://ACCOUNT.blob.core.windows.net` unless `endpoint` is set |
//! | `archive_tier_delete` | works: an archived blob being overwritten is deleted first; without it the overwrite is a `Conflict` saying so |
//! | `chunk_size` | works: block size above the cutoff (1 byte to 4000 MiB); at most 50,000 blocks per blob |
//! | `client_certificate_password` | refused (`Unsupported`) when set: certificate credentials are not supported |
//! | `client_certificate_path` | refused (`Unsupported`) when set |
//! | `client_id` | works with `client_secret` and `tenant` (service principal); elsewhere `InvalidConfig` |
//! | `client_secret` | works: Entra ID client-secret credential (`azure_identity`); needs an https endpoint |
//! | `client_send_certificate_chain` | refused (`Unsupported`) when true |
//! | `delete_snapshots` | works: sent with deletes (`include`, `only`; blank fails on blobs with snapshots). With `only`, `delete` removes the snapshots and keeps the blob, as in rclone; a rename keeps snapshots and fails while they exist |
//! | `description` | stored, not used by the driver |
//! | `directory_markers` | works (see Paths) |
//! | `disable_checksum` | works: without it the MD5 of the whole body is stored as the blob's Content-MD5 |
//! | `disable_instance_discovery` | accepted: the driver's Entra ID credentials never do instance discovery, which is what the option asks for |
//! | `encoding` | only the default (`21078018`) is accepted: names are stored as given, and names Azure would change are refused instead of encoded; other values are `Unsupported` |
//! | `endpoint` | works: the blob service URL (an emulator's includes the account, `http://127.0.0.1:10000/devstoreaccount1`); no query |
//! | `env_auth` | works: `AZURE_TENANT_ID`/`AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET`, else workload identity (`AZURE_FEDERATED_TOKEN_FILE`), else managed identity |
//! | `key` | works: an account SAS (`ss=b`, `srt=sco`, `sp=rwdlacu`, 1 h) is signed locally and renewed after 45 min (see the `sas` module) |
//! | `list_chunk` | works: page size of listings (1 to 5000) |
//! | `memory_pool_flush_time` | deprecated: only the default (60) is accepted |
//! | `memory_pool_use_mmap` | deprecated: only `false` is accepted |
//! | `msi_client_id` | works with `use_msi` (user-assigned identity); at most one of the three `msi_*` |
//! | `msi_mi_res_id` | works with `use_msi` |
//! | `msi_object_id` | works with `use_msi` |
//! | `no_check_container` | works: writes never create a missing container (an explicit `mkdir` of a container still does) |
//! | `no_head_object` | works: reads skip the HEAD (a range past the end still reads empty) |
//! | `password` | refused (`Unsupported`): the SDK has no username/password credential |
//! | `public_access` | works: access level of containers the driver creates |
//! | `sas_url` | works: an account SAS (`srt=`) reaches the account, a container SAS (`sr=c`) only its container; blob SAS refused |
//! | `service_principal_file` | works: `az ad sp create-for-rbac` JSON (`appId`, `password`, `tenant`); certificate files `Unsupported` |
//! | `tenant` | works with `client_id`/`client_secret`, or with `use_az` |
//! | `upload_concurrency` | works: blocks in flight per write (1 to 256) |
//! | `upload_cutoff` | works: bodies up to this size go in one Put Blob; blank means `chunk_size` |
//! | `use_az` | works: tokens from `az account get-access-token` |
//! | `use_emulator` | works: Azurite's devstoreaccount1 and its public key at `http://127.0.0.1:10000/devstoreaccount1` (or `endpoint`) |
//! | `use_msi` | works: Azure managed identity (IMDS / App Service) |
//! | `username` | refused (`Unsupported`) |
//!
//! Exactly one authentication method must be chosen (`key`, `sas_url`,
//! `use_emulator`, `client_secret`, `service_principal_file`, `use_msi`,
//! `use_az`, `env_auth`); none or several is `InvalidConfig`. Entra ID
//! methods need an https endpoint. The connect probe lists the containers
//! (or the SAS's container) and maps failures as above.

mod config;
mod errors;
mod list;
mod paths;
mod sas;
mod storage;
mod upload;

pub use sas::{account_sas_token, container_sas_token};
pub use storage::AzureStorage;

use berth_storage::catalog::Config;
use berth_storage::{Result, Storage};
use std::sync::Arc;

/// Builds the driver from a validated config. Sends no request: the probe
/// checks the credentials.
pub async fn build(config: &Config) -> Result<Arc<dyn Storage>> {
    let settings = config::settings(config, Arc::new(sas::SystemClock))?;
    Ok(Arc::new(AzureStorage::new(settings)?))
}
