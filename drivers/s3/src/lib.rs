//! Native driver for the `s3` provider (Amazon S3 and S3-compatible stores),
//! on aws-sdk-s3.
//!
//! # Layout
//!
//! As OpenDAL's services: `config.rs` turns the validated catalog config into
//! options (every field honoured or refused there), `client.rs` builds the
//! SDK client and holds the one error table, `backend.rs` is the [`Storage`]
//! implementation with the metadata calls, `lister.rs`, `reader.rs` and
//! `writer.rs` do listings, reads and writes/copies, `keys.rs` maps paths.
//!
//! # Paths and semantics
//!
//! The storage root holds the buckets (as rclone's `s3:`): listing `""`
//! lists buckets, `bucket/key...` addresses objects. `mkdir` of a top-level
//! path creates the bucket (unless `no_check_bucket`), `rmdir` of an empty
//! bucket deletes it. Below a bucket, directories are key prefixes: they
//! exist while something is under them. With `directory_markers` they are
//! also persisted as empty `dir/` objects, so empty directories exist on
//! their own ([`Capability::directories`] is then true, and the driver keeps
//! the file/directory rules of the behaviour suite: writing onto a directory
//! or under a file is a `Conflict`, a directory emptied by deletes keeps a
//! marker). Without markers `mkdir` below a bucket is a no-op and `rmdir` of
//! an empty (implied) directory succeeds.
//!
//! `stat` of a key asks the object (HEAD) and the prefix (a one-key
//! listing) at once, so directories and missing names cost one round trip;
//! an object wins over a prefix of the same name, and a listing that shows
//! a directory answers even when the HEAD failed (servers such as s3s-fs
//! answer 500 for a key that is a prefix).
//!
//! Writes into a bucket that does not exist create it first (once per
//! process), unless `no_check_bucket`. Listings use delimiter `/`, pages of
//! `list_chunk` keys and the last name as cursor, and come sorted by name
//! (see `lister.rs` for how that differs from S3's key order). Reads are
//! Range GETs. `copy` is server-side (CopyObject, multipart above
//! `copy_cutoff`). `rename` is copy + delete, per object for directories:
//! not atomic ([`Capability::atomic_rename`] is false), and a failure midway
//! leaves both copies. `usage` is `Unsupported`; modification times are the
//! server's (no `set_modified`).
//!
//! Errors: `NoSuchKey`/`NoSuchBucket`/404 are `NotFound`; bad keys
//! (`InvalidAccessKeyId`, `SignatureDoesNotMatch`) are `Permission` with
//! "S3 rejected the credentials (<code>)", `AccessDenied`/403 `Permission`;
//! connection refused, DNS and timeouts are `Transient` with "cannot reach
//! S3 endpoint <endpoint>: ..."; 5xx and throttling `Transient`; a 2xx
//! answer the SDK cannot read is reported with the SDK's reason. One such
//! answer is read anyway: gofakes3 (`rclone serve s3`) names the root of its
//! CreateMultipartUpload answer `InitiateMultipartUpload`, so the upload id
//! is taken from the body (`writer.rs`). SDK retries
//! are off except a bounded 3 attempts for in-memory write bodies (the retry
//! layer above does not retry writes). `probe` lists the buckets once.
//!
//! # Provider presets
//!
//! From rclone's provider quirks. "virtual host": requests put the bucket in
//! the host name and `force_path_style` is ignored (rclone does the same);
//! otherwise `force_path_style` (default true) decides. "v1"/"v2": the
//! ListObjects version when `list_version` is 0. "url": listings use
//! `EncodingType=url` when `list_url_encode` is unset. "etag": multipart
//! ETags are checked when `use_multipart_etag` is unset. "exists":
//! `BucketAlreadyExists` is an error when `use_already_exists` is unset.
//!
//! | provider | style | list | url | etag | exists | other |
//! |---|---|---|---|---|---|---|
//! | AWS, Wasabi | virtual host | v2 | yes | yes | yes | AWS: `location_constraint` defaults to the region |
//! | Alibaba, LyveCloud, TencentCOS, Netease, RackCorp | virtual host | v2 | yes | no | yes | |
//! | HuaweiOBS | virtual host | v1 | no | yes | yes | |
//! | DigitalOcean, Dreamhost, Selectel | virtual host | v2 | no | yes | yes | |
//! | Scaleway | virtual host | v2 | no | yes | yes | at most 1000 parts |
//! | Storj | virtual host | v2 | yes | yes | no | chunk_size ≥ 64 MiB, no multipart copy |
//! | GCS | virtual host | v2 | yes | yes | yes | no multipart copy |
//! | Linode, Leviia, Petabox | virtual host | v2 | yes | yes | no | |
//! | Synology | virtual host | v2 | yes | no | no | |
//! | Minio, Outscale | path | v2 | yes | yes | yes | |
//! | Cloudflare | path | v2 | yes | no | yes | region defaults to `auto` |
//! | IDrive, IONOS | path | v2 | no | no | no | |
//! | Ceph, ChinaMobile, ArvanCloud, IBMCOS, SeaweedFS, StackPath, Qiniu, Magalu, Liara, Hoody-VFS, Other, unset | path | v1 | no | no | no | |
//!
//! An empty `region` is the preset's, else the region an AWS endpoint names
//! (`s3.<region>.amazonaws.com`), else `us-east-1`.
//!
//! # Field decisions
//!
//! Every field of the spec's table, honoured or refused at build with
//! `InvalidConfig` naming it (the API answers 400) when not at its default:
//!
//! | field | decision |
//! |---|---|
//! | `endpoint` | honoured: `http://`/`https://` URL or bare `host[:port]` (https) |
//! | `provider` | honoured: the preset table above |
//! | `region` | honoured; `other-v2-signature` refused (v2 signing) |
//! | `force_path_style` | honoured for path-style providers, ignored by virtual-host presets |
//! | `access_key_id`, `secret_access_key`, `session_token` | honoured: SigV4 with static keys; both keys or neither; none (and no `env_auth`) means anonymous |
//! | `env_auth` | honoured: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, then the shared credentials file; nothing found is `InvalidConfig` (no instance metadata, SSO or web identity) |
//! | `profile`, `shared_credentials_file` | honoured with `env_auth`; refused without it |
//! | `server_side_encryption`, `sse_kms_key_id` | honoured on new objects and copies; a KMS key id needs `aws:kms` |
//! | `sse_customer_algorithm`, `sse_customer_key`, `sse_customer_key_base64`, `sse_customer_key_md5` | honoured on every object request (and the copy source); one 32-byte key, MD5 computed or checked; not together with `server_side_encryption` |
//! | `storage_class` | honoured on new objects and copies |
//! | `acl` | honoured on new objects and copies; `""`/`default` send no ACL |
//! | `bucket_acl` | honoured on bucket creation |
//! | `location_constraint` | honoured on bucket creation |
//! | `chunk_size` | honoured: part size, 5 MiB to 5 GiB |
//! | `upload_cutoff` | honoured: larger bodies go multipart, at most 5 GiB |
//! | `upload_concurrency` | honoured: parts in flight per write (1 to 256) |
//! | `max_upload_parts` | honoured: a body needing more parts fails with `Quota` |
//! | `copy_cutoff` | honoured: larger copies are multipart with parts of this size (5 MiB to 5 GiB) |
//! | `use_multipart_uploads` | honoured: `false` sends every body as one PutObject (buffered, at most 5 GiB) |
//! | `use_multipart_etag` | honoured: checks the multipart ETag (not with SSE-KMS/SSE-C or `disable_checksum`); a mismatch removes the object and fails |
//! | `disable_checksum` | honoured: no Content-MD5 on PutObject/UploadPart and no ETag check |
//! | `leave_parts_on_error` | honoured: failed multipart uploads are not aborted |
//! | `use_unsigned_payload` | honoured: `true` sends PutObject/UploadPart with UNSIGNED-PAYLOAD |
//! | `list_chunk` | honoured: MaxKeys per request, and the page size when `limit` is 0 |
//! | `list_version` | honoured: 1 ListObjects, 2 ListObjectsV2, 0 the preset's |
//! | `list_url_encode` | honoured: `EncodingType=url` listings, keys decoded |
//! | `no_check_bucket` | honoured: buckets are never checked or created |
//! | `directory_markers` | honoured: see above |
//! | `no_head` | honoured: no HEAD after an upload (the entry is built from the bytes sent) |
//! | `no_head_object` | honoured: reads never HEAD before GET anyway |
//! | `no_system_metadata` | honoured: the driver sets and reads no system metadata beyond size and time |
//! | `requester_pays` | honoured: `x-amz-request-payer: requester` on every request |
//! | `use_already_exists` | honoured on bucket creation |
//! | `disable_http2` | honoured for `http://` endpoints (HTTP/1.1 only); refused for `https://` (the SDK client offers HTTP/2) |
//! | `description`, `name` | labels; no effect on storage |
//! | `encoding` | only the default (`Slash,InvalidUtf8,Dot`, 50331650) |
//! | `sdk_log_mode` | only `Off`/`0`: the SDK logs through `tracing` |
//! | `v2_auth`, `use_presigned_request`, `use_accelerate_endpoint`, `use_dual_stack`, `directory_bucket`, `decompress`, `download_url`, `sts_endpoint` | refused when set (accelerate and dual-stack: give that endpoint instead) |
//! | `might_gzip`, `use_accept_encoding_gzip` | `true` refused (objects are served as stored) |
//! | `memory_pool_flush_time`, `memory_pool_use_mmap` | refused unless default (deprecated; no pool) |
//! | `versions`, `version_deleted`, `version_at` | refused when set: version listings are not implemented |

mod backend;
mod client;
mod config;
mod keys;
mod lister;
mod reader;
mod writer;

pub use backend::S3Storage;

use berth_storage::catalog::Config;
use berth_storage::{Result, Storage};
use std::sync::Arc;

/// Builds the driver from a validated config. Checks every option (an
/// option the driver cannot honour is `InvalidConfig` naming it) but makes
/// no request: [`Storage::probe`] checks the endpoint and the credentials.
pub async fn build(config: &Config) -> Result<Arc<dyn Storage>> {
    let options = config::S3Options::from_config(config, &|name| std::env::var(name).ok())?;
    Ok(Arc::new(S3Storage::new(options)))
}
