//! The non-credential options of a `google-cloud-storage` config, checked.

use berth_storage::catalog::Config;
use berth_storage::{Result, StorageError};
use reqwest::Url;

/// The JSON API's default host.
pub(crate) const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
/// The only `encoding` value the driver honours (rclone's GCS default).
pub(crate) const DEFAULT_ENCODING: &str = "50348034";

/// Reads a string field (absent or non-string reads as empty).
pub(crate) fn text<'a>(config: &'a Config, key: &str) -> &'a str {
    config
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .trim()
}

/// Reads a boolean field (absent reads as false).
pub(crate) fn flag(config: &Config, key: &str) -> bool {
    config.get(key).and_then(|v| v.as_bool()).unwrap_or(false)
}

/// Options that shape requests, everything but the credentials.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Base URL of the service (`https://storage.googleapis.com` by default).
    pub endpoint: Url,
    /// Whether `endpoint` was configured (else the SDK uses its default).
    pub custom_endpoint: bool,
    /// Project listed at the root and owning new buckets.
    pub project: String,
    /// Location of new buckets.
    pub location: String,
    /// Storage class of new objects and buckets.
    pub storage_class: String,
    /// Uniform bucket-level access for new buckets, no ACLs sent.
    pub bucket_policy_only: bool,
    /// Predefined ACL of new objects.
    pub object_acl: String,
    /// Predefined ACL of new buckets.
    pub bucket_acl: String,
    /// Directories are persisted as `dir/` marker objects.
    pub directory_markers: bool,
    /// Skip checking (and creating) a bucket before writing into it.
    pub no_check_bucket: bool,
    /// Project billed for requester-pays buckets.
    pub user_project: String,
    /// Decompress gzip-encoded objects on download.
    pub decompress: bool,
}

impl Settings {
    /// Reads and checks the options of `config`.
    pub fn from_config(config: &Config) -> Result<Self> {
        let endpoint_text = text(config, "endpoint");
        let custom_endpoint = !endpoint_text.is_empty();
        let endpoint = parse_endpoint(if custom_endpoint {
            endpoint_text
        } else {
            DEFAULT_ENDPOINT
        })?;

        let encoding = text(config, "encoding");
        if !encoding.is_empty() && encoding != DEFAULT_ENCODING {
            return Err(StorageError::unsupported(format!(
                "encoding '{encoding}' is not supported: the native GCS driver stores names as \
                 given and only accepts the default encoding ({DEFAULT_ENCODING})"
            )));
        }

        let settings = Settings {
            endpoint,
            custom_endpoint,
            project: text(config, "project_number").to_string(),
            location: text(config, "location").to_string(),
            storage_class: text(config, "storage_class").to_string(),
            bucket_policy_only: flag(config, "bucket_policy_only"),
            object_acl: text(config, "object_acl").to_string(),
            bucket_acl: text(config, "bucket_acl").to_string(),
            directory_markers: flag(config, "directory_markers"),
            no_check_bucket: flag(config, "no_check_bucket"),
            user_project: text(config, "user_project").to_string(),
            decompress: flag(config, "decompress"),
        };
        if settings.bucket_policy_only {
            for (field, value) in [
                ("object_acl", &settings.object_acl),
                ("bucket_acl", &settings.bucket_acl),
            ] {
                if !value.is_empty() {
                    return Err(StorageError::invalid_config(format!(
                        "{field} cannot be combined with bucket_policy_only: uniform \
                         bucket-level access ignores ACLs"
                    )));
                }
            }
        }
        Ok(settings)
    }
}

/// Parses `endpoint` as an `http`/`https` URL without query or fragment.
fn parse_endpoint(value: &str) -> Result<Url> {
    let bad = |why: &str| {
        StorageError::invalid_config(format!(
            "endpoint '{value}' is not usable: {why} (expected e.g. https://storage.googleapis.com \
             or http://127.0.0.1:4443)"
        ))
    };
    let url = Url::parse(value).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad("it may not carry a query, a fragment or user info"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_storage::ErrorKind;
    use serde_json::json;

    fn config(value: serde_json::Value) -> Config {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn defaults_and_endpoint() {
        let s = Settings::from_config(&config(json!({}))).unwrap();
        assert_eq!(s.endpoint.as_str(), "https://storage.googleapis.com/");
        assert!(!s.custom_endpoint);
        let s =
            Settings::from_config(&config(json!({"endpoint": "http://127.0.0.1:4443"}))).unwrap();
        assert!(s.custom_endpoint);
        assert_eq!(s.endpoint.port(), Some(4443));
        for bad in ["127.0.0.1:4443", "ftp://x", "http://h/?q=1", "not a url"] {
            let err = Settings::from_config(&config(json!({ "endpoint": bad }))).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidConfig, "{bad}");
            assert!(err.message.contains("endpoint"), "{err}");
        }
    }

    #[test]
    fn encoding_only_default() {
        assert!(Settings::from_config(&config(json!({"encoding": "50348034"}))).is_ok());
        let err = Settings::from_config(&config(json!({"encoding": "Slash"}))).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unsupported);
        assert!(err.message.contains("encoding"));
    }

    #[test]
    fn acl_with_bucket_policy_only_refused() {
        let err = Settings::from_config(&config(
            json!({"bucket_policy_only": true, "object_acl": "publicRead"}),
        ))
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidConfig);
        assert!(err.message.contains("object_acl"));
        assert!(Settings::from_config(&config(json!({"bucket_policy_only": true}))).is_ok());
    }
}
