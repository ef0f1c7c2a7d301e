//! Maps GCS failures (HTTP statuses, transport errors, SDK errors) to
//! [`StorageError`] kinds with messages that name what failed.

use berth_storage::{ErrorKind, StorageError};
use serde::Deserialize;
use std::error::Error as _;

/// The JSON API's error document (`{"error": {"message", "errors": [{"reason"}]}}`).
#[derive(Deserialize, Default)]
struct ErrorDoc {
    #[serde(default)]
    error: ErrorBody,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize, Default)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
}

/// The service's own explanation: `(message, reason)` from an error body.
fn explain(body: &[u8]) -> (String, String) {
    let doc: ErrorDoc = serde_json::from_slice(body).unwrap_or_default();
    let reason = doc
        .error
        .errors
        .into_iter()
        .map(|e| e.reason)
        .find(|r| !r.is_empty())
        .unwrap_or_default();
    let mut message = doc.error.message;
    if message.is_empty() {
        // Not JSON (a proxy, an emulator): a short plain-text body.
        let text = String::from_utf8_lossy(body);
        message = text.trim().chars().take(200).collect();
    }
    (message, reason)
}

/// Maps an HTTP error status about `what` (a path or a bucket) to a kind.
/// `source` describes the credentials, for 401/403.
pub(crate) fn from_status(status: u16, body: &[u8], what: &str, source: &str) -> StorageError {
    let (message, reason) = explain(body);
    let detail = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {message}")
    };
    let (kind, text) = match status {
        401 => (
            ErrorKind::Permission,
            format!("the credentials ({source}) were rejected"),
        ),
        403 if reason.contains("quota") || reason.contains("Quota") => {
            (ErrorKind::Quota, "quota exceeded".to_string())
        }
        403 => (
            ErrorKind::Permission,
            format!("permission denied for {source}"),
        ),
        404 => (ErrorKind::NotFound, "not found".to_string()),
        409 | 412 => (ErrorKind::Conflict, "conflict".to_string()),
        408 | 429 | 500..=599 => (
            ErrorKind::Transient,
            "the service is unavailable or throttling".to_string(),
        ),
        _ => (ErrorKind::Other, "request refused".to_string()),
    };
    StorageError::new(kind, format!("{what}: {text} ({detail})"))
}

/// The error and its sources, joined (`error sending request: connection refused`).
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

/// Maps a transport failure of the JSON client talking to `endpoint`.
pub(crate) fn from_reqwest(err: reqwest::Error, what: &str, endpoint: &str) -> StorageError {
    let err = err.without_url();
    if err.is_connect() {
        StorageError::new(
            ErrorKind::Transient,
            format!(
                "{what}: cannot reach the GCS endpoint {endpoint}: {}",
                chain(&err)
            ),
        )
    } else if err.is_timeout() {
        StorageError::new(
            ErrorKind::Transient,
            format!("{what}: the GCS endpoint {endpoint} timed out"),
        )
    } else if err.is_decode() {
        StorageError::new(
            ErrorKind::Other,
            format!(
                "{what}: unexpected answer from {endpoint} (is it a GCS JSON API endpoint?): {}",
                chain(&err)
            ),
        )
    } else {
        StorageError::new(
            ErrorKind::Transient,
            format!("{what}: request to {endpoint} failed: {}", chain(&err)),
        )
    }
}

/// Maps an SDK error about `what`.
pub(crate) fn from_sdk(
    err: google_cloud_storage::Error,
    what: &str,
    endpoint: &str,
    source: &str,
) -> StorageError {
    if let Some(status) = err.http_status_code() {
        let body = err.http_payload().map(|b| b.to_vec()).unwrap_or_default();
        return from_status(status, &body, what, source);
    }
    if err.is_authentication() {
        let transient = err
            .source()
            .and_then(|s| s.downcast_ref::<google_cloud_auth::errors::CredentialsError>())
            .is_some_and(|c| c.is_transient());
        let kind = if transient {
            ErrorKind::Transient
        } else {
            ErrorKind::Permission
        };
        return StorageError::new(
            kind,
            format!(
                "{what}: could not get an access token from {source}: {}",
                chain(&err)
            ),
        );
    }
    if err.is_connect() {
        return StorageError::new(
            ErrorKind::Transient,
            format!(
                "{what}: cannot reach the GCS endpoint {endpoint}: {}",
                chain(&err)
            ),
        );
    }
    if err.is_timeout() || err.is_io() || err.is_transport() || err.is_exhausted() {
        return StorageError::new(
            ErrorKind::Transient,
            format!("{what}: transfer with {endpoint} failed: {}", chain(&err)),
        );
    }
    StorageError::new(ErrorKind::Other, format!("{what}: {}", chain(&err)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        let body =
            br#"{"error":{"code":403,"message":"no access","errors":[{"reason":"forbidden"}]}}"#;
        let e = from_status(403, body, "b/k", "anonymous access");
        assert_eq!(e.kind, ErrorKind::Permission);
        assert!(e.message.contains("anonymous access") && e.message.contains("no access"));
        assert_eq!(from_status(401, b"", "b", "x").kind, ErrorKind::Permission);
        assert_eq!(
            from_status(404, b"Not Found", "b", "x").kind,
            ErrorKind::NotFound
        );
        assert_eq!(from_status(409, b"", "b", "x").kind, ErrorKind::Conflict);
        assert_eq!(from_status(412, b"", "b", "x").kind, ErrorKind::Conflict);
        for s in [408, 429, 500, 503] {
            let e = from_status(s, b"", "b", "x");
            assert!(e.is_retryable(), "{s}");
        }
        assert_eq!(from_status(400, b"", "b", "x").kind, ErrorKind::Other);
        let quota = br#"{"error":{"message":"m","errors":[{"reason":"quotaExceeded"}]}}"#;
        assert_eq!(from_status(403, quota, "b", "x").kind, ErrorKind::Quota);
    }
}
