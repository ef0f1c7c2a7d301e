//! The s3 config (a validated catalog [`Config`]) turned into [`S3Options`]:
//! every field honoured or refused here, provider presets applied. The
//! decision table is in the crate docs.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use berth_storage::catalog::Config;
use berth_storage::units::parse_size;
use berth_storage::{Result, StorageError};
use md5::{Digest, Md5};
use serde_json::Value;
use std::fmt;

/// S3's smallest part (all but the last part of a multipart upload).
pub(crate) const MIN_PART: u64 = 5 * 1024 * 1024;
/// S3's largest part and largest single PUT.
pub(crate) const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
/// S3's largest number of parts in one multipart upload.
pub(crate) const MAX_PARTS: i64 = 10_000;

/// Looks up an environment variable (injected so tests need not touch the
/// process environment).
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `scheme://host[:port][/path]`, without a trailing `/`.
    pub url: String,
    /// Whether the scheme is `https`.
    pub https: bool,
}

/// How requests are signed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Auth {
    /// SigV4 with static keys.
    Keys {
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    },
    /// Unsigned requests (public buckets).
    Anonymous,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Keys {
                access_key_id,
                session_token,
                ..
            } => f
                .debug_struct("Keys")
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"***")
                .field("session_token", &session_token.as_ref().map(|_| "***"))
                .finish(),
            Auth::Anonymous => f.write_str("Anonymous"),
        }
    }
}

/// Server-side encryption with keys S3 manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sse {
    /// None requested (the bucket default applies).
    None,
    /// `AES256` (SSE-S3).
    Aes256,
    /// `aws:kms` (SSE-KMS), with an optional key id.
    Kms { key_id: Option<String> },
}

/// SSE-C: the customer's AES-256 key, sent with every object request.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SseCustomer {
    /// The key, base64 (the header value).
    pub key_b64: String,
    /// base64 of the key's MD5 (the header value).
    pub key_md5_b64: String,
}

impl SseCustomer {
    /// The algorithm header value (the only one S3 knows).
    pub const ALGORITHM: &'static str = "AES256";
}

impl fmt::Debug for SseCustomer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SseCustomer(***)")
    }
}

/// What a provider preset changes (from rclone's provider quirks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Preset {
    /// Virtual-hosted-style requests are the norm: `force_path_style` is
    /// ignored and buckets go into the host name.
    pub virtual_host: bool,
    /// ListObjects version used when `list_version` is 0.
    pub list_version: u8,
    /// `EncodingType=url` for listings when `list_url_encode` is unset.
    pub list_url_encode: bool,
    /// Check multipart ETags when `use_multipart_etag` is unset.
    pub multipart_etag: bool,
    /// `BucketAlreadyExists` means someone else owns the name (when
    /// `use_already_exists` is unset); otherwise it is taken as success.
    pub already_exists: bool,
    /// Caps `max_upload_parts`.
    pub max_parts: Option<i64>,
    /// Raises `chunk_size` to at least this.
    pub min_chunk: Option<u64>,
    /// No multipart (UploadPartCopy) server-side copy: `copy_cutoff` is
    /// ignored and every copy is one CopyObject.
    pub single_copy: bool,
    /// Region when `region` is empty.
    pub region: Option<&'static str>,
}

const GENERIC: Preset = Preset {
    virtual_host: false,
    list_version: 1,
    list_url_encode: false,
    multipart_etag: false,
    already_exists: false,
    max_parts: None,
    min_chunk: None,
    single_copy: false,
    region: None,
};

const AWS_LIKE: Preset = Preset {
    virtual_host: true,
    list_version: 2,
    list_url_encode: true,
    multipart_etag: true,
    already_exists: true,
    ..GENERIC
};

/// The preset of a `provider` value (see the table in the crate docs).
pub(crate) fn preset(provider: &str) -> Preset {
    match provider {
        "AWS" | "Wasabi" => AWS_LIKE,
        "Alibaba" | "LyveCloud" | "TencentCOS" | "Netease" | "RackCorp" => Preset {
            multipart_etag: false,
            ..AWS_LIKE
        },
        "HuaweiOBS" => Preset {
            list_version: 1,
            list_url_encode: false,
            ..AWS_LIKE
        },
        "DigitalOcean" | "Dreamhost" | "Selectel" => Preset {
            list_url_encode: false,
            ..AWS_LIKE
        },
        "Scaleway" => Preset {
            list_url_encode: false,
            max_parts: Some(1000),
            ..AWS_LIKE
        },
        "Storj" => Preset {
            already_exists: false,
            min_chunk: Some(64 * 1024 * 1024),
            single_copy: true,
            ..AWS_LIKE
        },
        "GCS" => Preset {
            single_copy: true,
            ..AWS_LIKE
        },
        "Linode" | "Leviia" | "Petabox" => Preset {
            already_exists: false,
            ..AWS_LIKE
        },
        "Synology" => Preset {
            already_exists: false,
            multipart_etag: false,
            ..AWS_LIKE
        },
        "Minio" | "Outscale" => Preset {
            list_version: 2,
            list_url_encode: true,
            multipart_etag: true,
            already_exists: true,
            ..GENERIC
        },
        "Cloudflare" => Preset {
            list_version: 2,
            list_url_encode: true,
            already_exists: true,
            region: Some("auto"),
            ..GENERIC
        },
        "IDrive" | "IONOS" => Preset {
            list_version: 2,
            ..GENERIC
        },
        // Ceph, ChinaMobile, ArvanCloud, IBMCOS, SeaweedFS, StackPath, Qiniu,
        // Magalu, Liara, Hoody-VFS, Other and unset: the careful defaults.
        _ => GENERIC,
    }
}

/// Everything the driver needs, parsed and checked.
#[derive(Debug, Clone)]
pub(crate) struct S3Options {
    pub endpoint: Endpoint,
    pub region: String,
    pub path_style: bool,
    pub auth: Auth,
    pub sse: Sse,
    pub sse_customer: Option<SseCustomer>,
    pub storage_class: Option<String>,
    pub acl: Option<String>,
    pub bucket_acl: Option<String>,
    pub location_constraint: Option<String>,
    pub chunk_size: u64,
    pub upload_cutoff: u64,
    pub copy_cutoff: u64,
    pub upload_concurrency: usize,
    pub max_upload_parts: i64,
    pub multipart_uploads: bool,
    pub multipart_etag: bool,
    pub list_chunk: i32,
    pub list_version: u8,
    pub list_url_encode: bool,
    pub no_check_bucket: bool,
    pub directory_markers: bool,
    pub no_head: bool,
    pub disable_checksum: bool,
    pub leave_parts_on_error: bool,
    pub requester_pays: bool,
    pub already_exists_is_error: bool,
    pub unsigned_payload: bool,
}

fn invalid(message: impl Into<String>) -> StorageError {
    StorageError::invalid_config(message)
}

fn text<'a>(config: &'a Config, key: &str) -> &'a str {
    config.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn trimmed(config: &Config, key: &str) -> Option<String> {
    let value = text(config, key).trim();
    (!value.is_empty()).then(|| value.to_string())
}

fn flag(config: &Config, key: &str) -> bool {
    config.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// A `"true"`/`"false"`/unset switch.
fn switch(config: &Config, key: &str) -> Option<bool> {
    match config.get(key) {
        Some(Value::String(s)) => s.parse().ok(),
        Some(Value::Bool(b)) => Some(*b),
        _ => None,
    }
}

fn int(config: &Config, key: &str, default: i64) -> i64 {
    config.get(key).and_then(Value::as_i64).unwrap_or(default)
}

fn size(config: &Config, key: &str, default: u64) -> Result<u64> {
    match config.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            parse_size(s).map_err(|e| invalid(format!("{key}: {e}")))
        }
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| invalid(format!("{key}: expected a size in bytes"))),
        _ => Ok(default),
    }
}

/// Refuses a field the driver cannot honour unless it has its default.
fn refuse_unless(key: &str, is_default: bool, why: &str) -> Result<()> {
    if is_default {
        return Ok(());
    }
    Err(invalid(format!(
        "{key} is not supported by the native s3 driver: {why}"
    )))
}

/// Parses `endpoint`: `http://`/`https://` URLs, or a bare `host[:port]`
/// meaning https.
pub(crate) fn parse_endpoint(raw: &str) -> Result<Endpoint> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(invalid("Missing required field 'endpoint'"));
    }
    let lower = raw.to_ascii_lowercase();
    let (https, rest) = if lower.starts_with("https://") {
        (true, &raw["https://".len()..])
    } else if lower.starts_with("http://") {
        (false, &raw["http://".len()..])
    } else if raw.contains("://") {
        return Err(invalid(format!(
            "endpoint '{raw}': only http:// and https:// are supported"
        )));
    } else {
        (true, raw)
    };
    let rest = rest.trim_end_matches('/');
    let host = rest.split('/').next().unwrap_or_default();
    let host_ok = !host.is_empty()
        && !host.starts_with(':')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'));
    if !host_ok || rest.chars().any(char::is_whitespace) || rest.contains(['?', '#', '@']) {
        return Err(invalid(format!(
            "endpoint '{raw}' is not an http(s) URL or a host name"
        )));
    }
    let scheme = if https { "https" } else { "http" };
    Ok(Endpoint {
        url: format!("{scheme}://{rest}"),
        https,
    })
}

/// The region an AWS endpoint names (`s3.eu-west-1.amazonaws.com`,
/// `s3-eu-west-1.amazonaws.com`, `s3.dualstack.eu-west-1.amazonaws.com`).
fn region_of_aws_endpoint(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split(['/', ':']).next()?;
    let stem = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let region = stem
        .strip_prefix("s3.dualstack.")
        .or_else(|| stem.strip_prefix("s3."))
        .or_else(|| stem.strip_prefix("s3-"))?;
    let plausible = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    plausible.then(|| region.to_string())
}

fn resolve_auth(config: &Config, env: EnvLookup<'_>) -> Result<Auth> {
    let access_key_id = text(config, "access_key_id").trim().to_string();
    let secret_access_key = text(config, "secret_access_key").to_string();
    let session_token = Some(text(config, "session_token").to_string()).filter(|t| !t.is_empty());
    let env_auth = flag(config, "env_auth");
    let profile = trimmed(config, "profile");
    let credentials_file = trimmed(config, "shared_credentials_file");
    if !env_auth {
        if profile.is_some() {
            return Err(invalid("profile is only used with env_auth=true"));
        }
        if credentials_file.is_some() {
            return Err(invalid(
                "shared_credentials_file is only used with env_auth=true",
            ));
        }
    }
    match (access_key_id.is_empty(), secret_access_key.is_empty()) {
        (false, false) => {
            return Ok(Auth::Keys {
                access_key_id,
                secret_access_key,
                session_token,
            })
        }
        (true, false) => {
            return Err(invalid(
                "secret_access_key is set but access_key_id is empty",
            ))
        }
        (false, true) => {
            return Err(invalid(
                "access_key_id is set but secret_access_key is empty",
            ))
        }
        (true, true) => {}
    }
    if session_token.is_some() {
        return Err(invalid(
            "session_token needs access_key_id and secret_access_key",
        ));
    }
    if !env_auth {
        return Ok(Auth::Anonymous);
    }
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty());
    if let (Some(id), Some(secret)) = (
        non_empty("AWS_ACCESS_KEY_ID"),
        non_empty("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Auth::Keys {
            access_key_id: id,
            secret_access_key: secret,
            session_token: non_empty("AWS_SESSION_TOKEN"),
        });
    }
    let path = credentials_file
        .or_else(|| non_empty("AWS_SHARED_CREDENTIALS_FILE"))
        .or_else(|| non_empty("HOME").map(|home| format!("{home}/.aws/credentials")));
    let profile = profile
        .or_else(|| non_empty("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_string());
    if let Some(path) = &path {
        if let Ok(contents) = std::fs::read_to_string(path) {
            if let Some(auth) = profile_keys(&contents, &profile) {
                return Ok(auth);
            }
        }
    }
    Err(invalid(format!(
        "env_auth is set but no credentials were found: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set and {} has no keys for profile '{profile}' (instance metadata, SSO and web identity are not supported by the native s3 driver)",
        path.as_deref().unwrap_or("the shared credentials file")
    )))
}

/// The keys of `[profile]` in a shared credentials file (INI).
pub(crate) fn profile_keys(contents: &str, profile: &str) -> Option<Auth> {
    let mut in_section = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in contents.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            in_section = section == profile || section == format!("profile {profile}");
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim().to_string();
            match key.trim().to_ascii_lowercase().as_str() {
                "aws_access_key_id" => id = Some(value),
                "aws_secret_access_key" => secret = Some(value),
                "aws_session_token" => token = Some(value),
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Some(Auth::Keys {
            access_key_id: id,
            secret_access_key: secret,
            session_token: token.filter(|t| !t.is_empty()),
        }),
        _ => None,
    }
}

fn resolve_sse(config: &Config) -> Result<(Sse, Option<SseCustomer>)> {
    let kms_key = trimmed(config, "sse_kms_key_id");
    let sse = match text(config, "server_side_encryption") {
        "" => Sse::None,
        "AES256" => Sse::Aes256,
        "aws:kms" => Sse::Kms {
            key_id: kms_key.clone(),
        },
        other => {
            return Err(invalid(format!(
                "server_side_encryption '{other}' must be AES256 or aws:kms"
            )))
        }
    };
    if kms_key.is_some() && !matches!(sse, Sse::Kms { .. }) {
        return Err(invalid(
            "sse_kms_key_id needs server_side_encryption=aws:kms",
        ));
    }
    let key = text(config, "sse_customer_key");
    let key_b64 = text(config, "sse_customer_key_base64");
    let key_md5 = text(config, "sse_customer_key_md5").trim();
    let algorithm = text(config, "sse_customer_algorithm");
    if algorithm.is_empty() {
        if !key.is_empty() || !key_b64.is_empty() || !key_md5.is_empty() {
            return Err(invalid(
                "sse_customer_key/sse_customer_key_base64/sse_customer_key_md5 need sse_customer_algorithm=AES256",
            ));
        }
        return Ok((sse, None));
    }
    if algorithm != SseCustomer::ALGORITHM {
        return Err(invalid(format!(
            "sse_customer_algorithm '{algorithm}' must be AES256"
        )));
    }
    if sse != Sse::None {
        return Err(invalid(
            "server_side_encryption and sse_customer_algorithm cannot be used together",
        ));
    }
    let raw: Vec<u8> =
        match (key.is_empty(), key_b64.is_empty()) {
            (false, true) => key.as_bytes().to_vec(),
            (true, false) => BASE64
                .decode(key_b64.trim())
                .map_err(|_| invalid("sse_customer_key_base64 is not valid base64"))?,
            (false, false) => {
                return Err(invalid(
                    "give either sse_customer_key or sse_customer_key_base64, not both",
                ))
            }
            (true, true) => return Err(invalid(
                "sse_customer_algorithm=AES256 needs sse_customer_key or sse_customer_key_base64",
            )),
        };
    if raw.len() != 32 {
        return Err(invalid(format!(
            "the SSE-C key must be 32 bytes (AES-256), it is {} bytes",
            raw.len()
        )));
    }
    let md5 = BASE64.encode(Md5::digest(&raw));
    if !key_md5.is_empty() && key_md5 != md5 {
        return Err(invalid("sse_customer_key_md5 does not match the SSE-C key"));
    }
    Ok((
        sse,
        Some(SseCustomer {
            key_b64: BASE64.encode(&raw),
            key_md5_b64: md5,
        }),
    ))
}

/// Fields the driver cannot honour: each must keep its default.
fn refuse_unsupported(config: &Config, endpoint: &Endpoint) -> Result<()> {
    let off = |key: &str| !flag(config, key);
    let unset = |key: &str| text(config, key).trim().is_empty();
    refuse_unless(
        "v2_auth",
        off("v2_auth"),
        "only SigV4 signing is implemented",
    )?;
    refuse_unless(
        "region",
        text(config, "region") != "other-v2-signature",
        "'other-v2-signature' needs v2 signing; only SigV4 is implemented",
    )?;
    refuse_unless(
        "use_accelerate_endpoint",
        off("use_accelerate_endpoint"),
        "set endpoint to s3-accelerate.amazonaws.com and force_path_style=false instead",
    )?;
    refuse_unless(
        "use_dual_stack",
        off("use_dual_stack"),
        "set endpoint to s3.dualstack.<region>.amazonaws.com instead",
    )?;
    refuse_unless(
        "directory_bucket",
        off("directory_bucket"),
        "S3 Express directory buckets need session auth",
    )?;
    refuse_unless(
        "decompress",
        off("decompress"),
        "objects are served as stored; gzip decoding is not implemented",
    )?;
    refuse_unless(
        "might_gzip",
        switch(config, "might_gzip") != Some(true),
        "objects are served as stored; gzip decoding is not implemented",
    )?;
    refuse_unless(
        "use_accept_encoding_gzip",
        switch(config, "use_accept_encoding_gzip") != Some(true),
        "the driver never asks for gzip-encoded responses",
    )?;
    refuse_unless(
        "disable_http2",
        off("disable_http2") || !endpoint.https,
        "the SDK's HTTPS client always offers HTTP/2 (plain http:// endpoints use HTTP/1.1 only)",
    )?;
    refuse_unless(
        "download_url",
        unset("download_url"),
        "downloads always go to the S3 endpoint",
    )?;
    refuse_unless(
        "use_presigned_request",
        off("use_presigned_request"),
        "requests are always signed in the headers",
    )?;
    refuse_unless(
        "sts_endpoint",
        unset("sts_endpoint"),
        "assuming roles through STS is not implemented (deprecated in rclone too)",
    )?;
    refuse_unless(
        "memory_pool_flush_time",
        int(config, "memory_pool_flush_time", 60) == 60,
        "deprecated memory-pool tuning; the driver has no buffer pool",
    )?;
    refuse_unless(
        "memory_pool_use_mmap",
        off("memory_pool_use_mmap"),
        "deprecated memory-pool tuning; the driver has no buffer pool",
    )?;
    refuse_unless(
        "sdk_log_mode",
        matches!(text(config, "sdk_log_mode").trim(), "" | "0" | "Off" | "off"),
        "the SDK logs through tracing: enable the aws_smithy_runtime/aws_sdk_s3 targets in the log filter instead",
    )?;
    refuse_unless(
        "encoding",
        matches!(text(config, "encoding").trim(), "" | "50331650" | "Slash,InvalidUtf8,Dot"),
        "only the default (Slash,InvalidUtf8,Dot = 50331650) is implemented: names are UTF-8 and '/' separates components",
    )?;
    refuse_unless(
        "versions",
        off("versions"),
        "listing old object versions is not implemented",
    )?;
    refuse_unless(
        "version_deleted",
        off("version_deleted"),
        "listing old object versions is not implemented",
    )?;
    refuse_unless(
        "version_at",
        matches!(
            text(config, "version_at").trim(),
            "" | "0001-01-01T00:00:00Z" | "off"
        ),
        "reading objects as of a past time is not implemented",
    )?;
    Ok(())
}

impl S3Options {
    /// Parses and checks a validated s3 config; `env` reads the process
    /// environment (for `env_auth`).
    pub(crate) fn from_config(config: &Config, env: EnvLookup<'_>) -> Result<Self> {
        let endpoint = parse_endpoint(text(config, "endpoint"))?;
        refuse_unsupported(config, &endpoint)?;
        let provider = text(config, "provider");
        let preset = preset(provider);

        let region = match trimmed(config, "region") {
            Some(region) => region,
            None => preset
                .region
                .map(str::to_string)
                .or_else(|| region_of_aws_endpoint(&endpoint.url))
                .unwrap_or_else(|| "us-east-1".to_string()),
        };
        let path_style = !preset.virtual_host && flag(config, "force_path_style");
        let auth = resolve_auth(config, env)?;
        let (sse, sse_customer) = resolve_sse(config)?;
        let disable_checksum = flag(config, "disable_checksum");
        // SSE-KMS and SSE-C ETags are not MD5s, so there is nothing to check.
        let etag_is_md5 = sse_customer.is_none() && !matches!(sse, Sse::Kms { .. });
        let multipart_etag = switch(config, "use_multipart_etag").unwrap_or(preset.multipart_etag)
            && etag_is_md5
            && !disable_checksum;

        let acl = match text(config, "acl").trim() {
            "" | "default" => None,
            other => Some(other.to_string()),
        };

        let mut chunk_size = size(config, "chunk_size", MIN_PART)?;
        if chunk_size < MIN_PART {
            return Err(invalid(format!(
                "chunk_size must be at least 5 MiB (S3's smallest part), it is {chunk_size} bytes"
            )));
        }
        if chunk_size > MAX_PART {
            return Err(invalid(format!(
                "chunk_size must be at most 5 GiB (S3's largest part), it is {chunk_size} bytes"
            )));
        }
        if let Some(min) = preset.min_chunk {
            chunk_size = chunk_size.max(min);
        }
        let upload_cutoff = size(config, "upload_cutoff", 200 * 1024 * 1024)?;
        if upload_cutoff > MAX_PART {
            return Err(invalid(format!(
                "upload_cutoff must be at most 5 GiB (S3's largest single PUT), it is {upload_cutoff} bytes"
            )));
        }
        let copy_cutoff = if preset.single_copy {
            u64::MAX
        } else {
            let cutoff = size(config, "copy_cutoff", 4_999_610_368)?;
            if !(MIN_PART..=MAX_PART).contains(&cutoff) {
                return Err(invalid(format!(
                    "copy_cutoff must be between 5 MiB and 5 GiB (it is also the part size of multipart copies), it is {cutoff} bytes"
                )));
            }
            cutoff
        };
        let upload_concurrency = int(config, "upload_concurrency", 4);
        if !(1..=256).contains(&upload_concurrency) {
            return Err(invalid(format!(
                "upload_concurrency must be between 1 and 256, it is {upload_concurrency}"
            )));
        }
        let mut max_upload_parts = int(config, "max_upload_parts", MAX_PARTS);
        if !(1..=MAX_PARTS).contains(&max_upload_parts) {
            return Err(invalid(format!(
                "max_upload_parts must be between 1 and 10000, it is {max_upload_parts}"
            )));
        }
        if let Some(cap) = preset.max_parts {
            max_upload_parts = max_upload_parts.min(cap);
        }
        let list_chunk = int(config, "list_chunk", 1000);
        if !(1..=i64::from(i32::MAX)).contains(&list_chunk) {
            return Err(invalid(format!(
                "list_chunk must be at least 1, it is {list_chunk}"
            )));
        }
        let list_version = match int(config, "list_version", 0) {
            0 => preset.list_version,
            1 => 1,
            2 => 2,
            other => {
                return Err(invalid(format!(
                    "list_version must be 0, 1 or 2, it is {other}"
                )))
            }
        };

        Ok(S3Options {
            endpoint,
            region: region.clone(),
            path_style,
            auth,
            multipart_etag,
            sse,
            sse_customer,
            storage_class: trimmed(config, "storage_class"),
            acl,
            bucket_acl: trimmed(config, "bucket_acl"),
            // AWS wants the region as location constraint outside us-east-1.
            location_constraint: trimmed(config, "location_constraint")
                .or_else(|| (provider == "AWS" && region != "us-east-1").then(|| region.clone())),
            chunk_size,
            upload_cutoff,
            copy_cutoff,
            upload_concurrency: upload_concurrency as usize,
            max_upload_parts,
            multipart_uploads: switch(config, "use_multipart_uploads") != Some(false),
            list_chunk: list_chunk as i32,
            list_version,
            list_url_encode: switch(config, "list_url_encode").unwrap_or(preset.list_url_encode),
            no_check_bucket: flag(config, "no_check_bucket"),
            directory_markers: flag(config, "directory_markers"),
            no_head: flag(config, "no_head"),
            disable_checksum,
            leave_parts_on_error: flag(config, "leave_parts_on_error"),
            requester_pays: flag(config, "requester_pays"),
            already_exists_is_error: switch(config, "use_already_exists")
                .unwrap_or(preset.already_exists),
            unsigned_payload: switch(config, "use_unsigned_payload") == Some(true),
        })
    }

    /// The largest body a single PUT may carry: `upload_cutoff`, or S3's
    /// 5 GiB limit when multipart uploads are off.
    pub(crate) fn single_put_limit(&self) -> u64 {
        if self.multipart_uploads {
            self.upload_cutoff
        } else {
            MAX_PART
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_storage::catalog::catalog;
    use berth_storage::ErrorKind;
    use serde_json::json;

    fn config(body: Value) -> Config {
        let mut body = body;
        let object = body.as_object_mut().unwrap();
        object
            .entry("endpoint")
            .or_insert_with(|| json!("http://127.0.0.1:9000"));
        catalog()
            .get("s3")
            .unwrap()
            .validate_create(&body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn options(body: Value) -> Result<S3Options> {
        S3Options::from_config(&config(body), &no_env)
    }

    fn refused(body: Value) -> String {
        let err = options(body).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidConfig, "{}", err.message);
        err.message
    }

    #[test]
    fn endpoints() {
        let e = parse_endpoint("http://127.0.0.1:9000/").unwrap();
        assert_eq!((e.url.as_str(), e.https), ("http://127.0.0.1:9000", false));
        let e = parse_endpoint("s3.us-east-1.amazonaws.com").unwrap();
        assert_eq!(e.url, "https://s3.us-east-1.amazonaws.com");
        assert!(e.https);
        assert_eq!(
            parse_endpoint("HTTPS://minio.local:9000").unwrap().url,
            "https://minio.local:9000"
        );
        for bad in [
            "",
            "ftp://x",
            "http://",
            "a b",
            "http://user@host",
            "http://:9000",
        ] {
            assert_eq!(
                parse_endpoint(bad).unwrap_err().kind,
                ErrorKind::InvalidConfig,
                "{bad}"
            );
        }
    }

    #[test]
    fn defaults_are_generic_path_style() {
        let o = options(json!({})).unwrap();
        assert_eq!(o.region, "us-east-1");
        assert!(o.path_style);
        assert_eq!(o.auth, Auth::Anonymous);
        assert_eq!((o.list_version, o.list_url_encode), (1, false));
        assert_eq!(o.chunk_size, 5 * 1024 * 1024);
        assert_eq!(o.upload_cutoff, 200 * 1024 * 1024);
        assert_eq!((o.upload_concurrency, o.max_upload_parts), (4, 10_000));
        assert_eq!(o.list_chunk, 1000);
        assert!(o.multipart_uploads && !o.multipart_etag && !o.already_exists_is_error);
        assert_eq!((o.acl.clone(), o.location_constraint.clone()), (None, None));
    }

    #[test]
    fn provider_presets() {
        let aws = options(json!({
            "provider": "AWS",
            "endpoint": "s3.eu-west-1.amazonaws.com",
            "force_path_style": true
        }))
        .unwrap();
        assert!(!aws.path_style, "AWS is virtual-host style");
        assert_eq!(aws.region, "eu-west-1");
        assert_eq!(aws.location_constraint.as_deref(), Some("eu-west-1"));
        assert_eq!((aws.list_version, aws.list_url_encode), (2, true));
        assert!(aws.multipart_etag && aws.already_exists_is_error);

        let minio = options(json!({"provider": "Minio"})).unwrap();
        assert!(minio.path_style);
        assert_eq!(minio.list_version, 2);
        let minio_vhost = options(json!({"provider": "Minio", "force_path_style": false})).unwrap();
        assert!(!minio_vhost.path_style);

        let r2 = options(json!({"provider": "Cloudflare"})).unwrap();
        assert_eq!(r2.region, "auto");
        let scw = options(json!({"provider": "Scaleway"})).unwrap();
        assert_eq!(scw.max_upload_parts, 1000);
        let storj = options(json!({"provider": "Storj"})).unwrap();
        assert_eq!(
            (storj.chunk_size, storj.copy_cutoff),
            (64 * 1024 * 1024, u64::MAX)
        );
        let ceph = options(json!({"provider": "Ceph", "list_version": 2})).unwrap();
        assert_eq!(ceph.list_version, 2, "explicit list_version wins");
        let explicit = options(json!({"provider": "AWS", "region": "us-west-2",
            "location_constraint": "EU", "list_url_encode": "false"}))
        .unwrap();
        assert_eq!(explicit.region, "us-west-2");
        assert_eq!(explicit.location_constraint.as_deref(), Some("EU"));
        assert!(!explicit.list_url_encode);
    }

    #[test]
    fn credentials() {
        let keys = options(
            json!({"access_key_id": "AKID", "secret_access_key": "s3cr3t",
            "session_token": "tok"}),
        )
        .unwrap();
        assert_eq!(
            keys.auth,
            Auth::Keys {
                access_key_id: "AKID".into(),
                secret_access_key: "s3cr3t".into(),
                session_token: Some("tok".into()),
            }
        );
        let shown = format!("{keys:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("tok\""),
            "{shown}"
        );
        assert!(refused(json!({"access_key_id": "AKID"})).contains("secret_access_key"));
        assert!(refused(json!({"secret_access_key": "x"})).contains("access_key_id"));
        assert!(refused(json!({"session_token": "x"})).contains("session_token"));
        assert!(refused(json!({"profile": "p"})).contains("profile"));
        assert!(
            refused(json!({"shared_credentials_file": "/x"})).contains("shared_credentials_file")
        );
    }

    #[test]
    fn env_auth_reads_environment_then_file() {
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("ENVID".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("envsecret".to_string()),
            _ => None,
        };
        let o = S3Options::from_config(&config(json!({"env_auth": true})), &env).unwrap();
        assert!(matches!(o.auth, Auth::Keys { ref access_key_id, .. } if access_key_id == "ENVID"));

        let dir = std::env::temp_dir().join(format!("berth-s3-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = DEF\naws_secret_access_key = defsecret\n\n[profile work]\naws_access_key_id=WORK\naws_secret_access_key=worksecret\naws_session_token=wtok\n",
        )
        .unwrap();
        let body = json!({"env_auth": true, "shared_credentials_file": file.display().to_string(),
            "profile": "work"});
        let o = S3Options::from_config(&config(body), &no_env).unwrap();
        assert_eq!(
            o.auth,
            Auth::Keys {
                access_key_id: "WORK".into(),
                secret_access_key: "worksecret".into(),
                session_token: Some("wtok".into()),
            }
        );
        let home = dir.parent().unwrap().display().to_string();
        let err = S3Options::from_config(&config(json!({"env_auth": true})), &|name| {
            (name == "HOME").then(|| home.clone())
        })
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidConfig);
        assert!(err.message.contains("env_auth"), "{}", err.message);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn encryption() {
        let o =
            options(json!({"server_side_encryption": "aws:kms", "sse_kms_key_id": "k1"})).unwrap();
        assert_eq!(
            o.sse,
            Sse::Kms {
                key_id: Some("k1".into())
            }
        );
        assert!(!o.multipart_etag);
        assert!(refused(json!({"sse_kms_key_id": "k1"})).contains("sse_kms_key_id"));

        let key = "0123456789abcdef0123456789abcdef";
        let o =
            options(json!({"sse_customer_algorithm": "AES256", "sse_customer_key": key})).unwrap();
        let c = o.sse_customer.clone().unwrap();
        assert_eq!(c.key_b64, BASE64.encode(key));
        assert_eq!(c.key_md5_b64, BASE64.encode(Md5::digest(key.as_bytes())));
        assert_eq!(format!("{c:?}"), "SseCustomer(***)");
        let same = options(json!({"sse_customer_algorithm": "AES256",
            "sse_customer_key_base64": BASE64.encode(key),
            "sse_customer_key_md5": c.key_md5_b64}))
        .unwrap();
        assert_eq!(same.sse_customer, Some(c));

        assert!(refused(json!({"sse_customer_key": key})).contains("sse_customer_algorithm"));
        assert!(refused(json!({"sse_customer_algorithm": "AES256"})).contains("sse_customer_key"));
        let short =
            refused(json!({"sse_customer_algorithm": "AES256", "sse_customer_key": "short"}));
        assert!(
            short.contains("32 bytes") && !short.contains("short"),
            "{short}"
        );
        assert!(refused(
            json!({"sse_customer_algorithm": "AES256", "sse_customer_key": key,
            "sse_customer_key_md5": "AAAA"})
        )
        .contains("sse_customer_key_md5"));
        assert!(refused(
            json!({"sse_customer_algorithm": "AES256", "sse_customer_key": key,
            "server_side_encryption": "AES256"})
        )
        .contains("server_side_encryption"));
    }

    #[test]
    fn sizes_and_counts() {
        let o = options(
            json!({"chunk_size": "16M", "upload_cutoff": "0", "copy_cutoff": "1G",
            "upload_concurrency": 8, "max_upload_parts": 500, "list_chunk": 250, "acl": "private",
            "use_multipart_uploads": "false"}),
        )
        .unwrap();
        assert_eq!(
            (o.chunk_size, o.upload_cutoff, o.copy_cutoff),
            (16 << 20, 0, 1 << 30)
        );
        assert_eq!(
            (o.upload_concurrency, o.max_upload_parts, o.list_chunk),
            (8, 500, 250)
        );
        assert_eq!(o.acl.as_deref(), Some("private"));
        assert_eq!(o.single_put_limit(), MAX_PART);
        assert!(refused(json!({"chunk_size": "1M"})).contains("chunk_size"));
        assert!(refused(json!({"chunk_size": "6G"})).contains("chunk_size"));
        assert!(refused(json!({"upload_cutoff": "6G"})).contains("upload_cutoff"));
        assert!(refused(json!({"copy_cutoff": "1M"})).contains("copy_cutoff"));
        assert!(refused(json!({"upload_concurrency": 0})).contains("upload_concurrency"));
        assert!(refused(json!({"max_upload_parts": 10001})).contains("max_upload_parts"));
        assert!(refused(json!({"list_chunk": 0})).contains("list_chunk"));
    }

    #[test]
    fn unsupported_fields_are_refused_by_name() {
        let cases = [
            ("v2_auth", json!(true)),
            ("region", json!("other-v2-signature")),
            ("use_accelerate_endpoint", json!(true)),
            ("use_dual_stack", json!(true)),
            ("directory_bucket", json!(true)),
            ("decompress", json!(true)),
            ("might_gzip", json!("true")),
            ("use_accept_encoding_gzip", json!("true")),
            ("download_url", json!("https://cdn.example.com")),
            ("use_presigned_request", json!(true)),
            ("sts_endpoint", json!("https://sts.example.com")),
            ("memory_pool_flush_time", json!(30)),
            ("memory_pool_use_mmap", json!(true)),
            ("sdk_log_mode", json!("All")),
            ("encoding", json!("Slash")),
            ("versions", json!(true)),
            ("version_deleted", json!(true)),
            ("version_at", json!("2024-01-01T00:00:00Z")),
        ];
        for (field, value) in cases {
            let message = refused(json!({ field: value }));
            assert!(message.starts_with(field), "{field}: {message}");
        }
        // HTTP/2 can only be turned off where it is never used.
        assert!(options(json!({"disable_http2": true})).is_ok());
        let message = refused(json!({"disable_http2": true, "endpoint": "https://s3.example.com"}));
        assert!(message.starts_with("disable_http2"), "{message}");
        // The accepted spellings of defaults.
        assert!(options(
            json!({"might_gzip": "false", "use_accept_encoding_gzip": "false",
            "sdk_log_mode": "Off", "version_at": "off", "encoding": "Slash,InvalidUtf8,Dot",
            "description": "anything", "no_head_object": true, "no_system_metadata": true})
        )
        .is_ok());
    }

    #[test]
    fn shared_credentials_profiles() {
        let file = "# comment\n[default]\naws_access_key_id=A\naws_secret_access_key=B\n[other]\naws_access_key_id=C\n";
        assert_eq!(
            profile_keys(file, "default"),
            Some(Auth::Keys {
                access_key_id: "A".into(),
                secret_access_key: "B".into(),
                session_token: None
            })
        );
        assert_eq!(profile_keys(file, "other"), None, "incomplete profile");
        assert_eq!(profile_keys(file, "missing"), None);
    }
}
