//! Maps SDK errors to [`StorageError`] kinds with messages that never hold a
//! secret: URLs lose their query (a SAS token is a secret) and `sig=` values
//! are masked wherever they appear.

use azure_core::error::ErrorKind as AzureKind;
use azure_core::http::StatusCode;
use berth_storage::{ErrorKind, StorageError};

/// The spec's wording for rejected credentials.
pub(crate) const BAD_CREDENTIALS: &str = "Invalid storage account credentials";

/// Removes queries from URLs and masks `sig=` values in `text`.
pub(crate) fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // Copy through the scheme separator, then the URL up to its query.
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | ','))
            .unwrap_or(tail.len());
        let url = &tail[..end];
        out.push_str(url.split('?').next().unwrap_or(url));
        rest = &tail[end..];
    }
    out.push_str(rest);
    mask_signatures(&out)
}

/// Replaces the value of every `sig=` parameter with `***`.
fn mask_signatures(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("sig=") {
        out.push_str(&rest[..at + 4]);
        out.push_str("***");
        let tail = &rest[at + 4..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | ')' | '"' | '\''))
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Phrases of the SDK's wrapping that add nothing to the cause.
const NOISE: [&str; 3] = [
    "retry policy expired",
    "failed to execute",
    "error sending request for url",
];

/// The error and its sources as one line, scrubbed, without the SDK's
/// wrapping phrases.
fn chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    let mut kept: Vec<&str> = Vec::new();
    for segment in parts.iter().flat_map(|p| p.split(": ")) {
        let segment = segment.trim();
        if segment.is_empty() || NOISE.iter().any(|n| segment.starts_with(n)) {
            continue;
        }
        if !kept.contains(&segment) {
            kept.push(segment);
        }
    }
    scrub(&kept.join(": "))
}

/// The body of a service error.
#[derive(serde::Deserialize)]
struct ServiceErrorXml {
    #[serde(rename = "Message", default)]
    message: Option<String>,
}

/// The service's error code and first message line of an HTTP error.
fn service_detail(err: &azure_core::Error) -> (Option<String>, String) {
    let AzureKind::HttpResponse {
        error_code,
        raw_response,
        ..
    } = err.kind()
    else {
        return (None, String::new());
    };
    let message = raw_response
        .as_ref()
        .filter(|r| !r.body().is_empty())
        .and_then(|r| azure_core::xml::from_xml::<_, ServiceErrorXml>(r.body()).ok())
        .and_then(|e| e.message)
        .map(|m| m.lines().next().unwrap_or_default().trim().to_string())
        .unwrap_or_default();
    (error_code.clone(), scrub(&message))
}

/// What an operation was about, for messages: a path or the endpoint.
pub(crate) struct Subject<'a> {
    /// The path (`container/blob`) or `""` for the account.
    pub path: &'a str,
    /// The service endpoint without query, for connection failures.
    pub endpoint: &'a str,
}

/// Maps an SDK error about `subject` to a storage error.
pub(crate) fn map(err: azure_core::Error, subject: &Subject<'_>) -> StorageError {
    let shown = if subject.path.is_empty() {
        "/"
    } else {
        subject.path
    };
    match err.kind() {
        AzureKind::HttpResponse { status, .. } => {
            let status = *status;
            let (code, message) = service_detail(&err);
            let code_text = code.clone().unwrap_or_else(|| status.to_string());
            let detail = if message.is_empty() {
                code_text.clone()
            } else {
                format!("{code_text}: {message}")
            };
            let kind = kind_of(status, code.as_deref());
            let text = match kind {
                ErrorKind::NotFound => match code.as_deref() {
                    Some("ContainerNotFound") => {
                        let container = shown.split('/').next().unwrap_or(shown);
                        format!("not found: container '{container}' does not exist")
                    }
                    _ => format!("not found: {shown}"),
                },
                ErrorKind::Permission => match code.as_deref() {
                    None
                    | Some(
                        "AuthenticationFailed"
                        | "InvalidAuthenticationInfo"
                        | "AuthorizationFailure",
                    ) => {
                        format!("{BAD_CREDENTIALS}: {detail}")
                    }
                    Some(_) => format!("permission denied on {shown}: {detail}"),
                },
                _ => format!("{shown}: {detail}"),
            };
            StorageError::new(kind, text)
        }
        AzureKind::Connection | AzureKind::Io => {
            let cause = chain(&err);
            let text = if cause.contains("dns error") || cause.contains("failed to lookup") {
                format!(
                    "unknown endpoint {}: its host name does not resolve ({cause})",
                    subject.endpoint
                )
            } else {
                format!("cannot reach the endpoint {}: {cause}", subject.endpoint)
            };
            StorageError::new(ErrorKind::Transient, text)
        }
        AzureKind::Credential => StorageError::new(
            ErrorKind::Permission,
            format!(
                "{BAD_CREDENTIALS}: could not get an Entra ID token: {}",
                chain(&err)
            ),
        ),
        _ => StorageError::new(ErrorKind::Other, format!("{shown}: {}", chain(&err))),
    }
}

/// The storage error kind of an HTTP status and service error code.
fn kind_of(status: StatusCode, code: Option<&str>) -> ErrorKind {
    match (u16::from(status), code) {
        (404, _) => ErrorKind::NotFound,
        (401 | 403, _) => ErrorKind::Permission,
        (409, Some("ContainerBeingDeleted")) => ErrorKind::Transient,
        (409 | 412, _) => ErrorKind::Conflict,
        (408 | 429 | 500..=506 | 508..=599, _) => ErrorKind::Transient,
        (507, _) => ErrorKind::Quota,
        _ => ErrorKind::Other,
    }
}

/// Whether `err` is an HTTP error with service error code `code`.
pub(crate) fn has_code(err: &azure_core::Error, code: &str) -> bool {
    matches!(err.kind(), AzureKind::HttpResponse { error_code: Some(c), .. } if c == code)
}

/// Whether `err` is an HTTP error with `status`.
pub(crate) fn has_status(err: &azure_core::Error, status: u16) -> bool {
    err.http_status().map(u16::from) == Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_queries_and_signatures() {
        let text = "error sending request for url (http://127.0.0.1:9/devstoreaccount1?comp=list&sv=1&sig=abc%2Bdef): refused";
        assert_eq!(
            scrub(text),
            "error sending request for url (http://127.0.0.1:9/devstoreaccount1): refused"
        );
        assert_eq!(scrub("bad sig=SECRET&x=1 here"), "bad sig=***&x=1 here");
        assert_eq!(scrub("no url here"), "no url here");
        assert_eq!(
            scrub("a https://h/p?q=1 b https://g/x"),
            "a https://h/p b https://g/x"
        );
    }

    #[test]
    fn statuses_map_to_kinds() {
        let k = |s: u16, c: Option<&str>| kind_of(StatusCode::from(s), c);
        assert_eq!(k(404, Some("BlobNotFound")), ErrorKind::NotFound);
        assert_eq!(k(403, Some("AuthenticationFailed")), ErrorKind::Permission);
        assert_eq!(k(409, Some("ContainerAlreadyExists")), ErrorKind::Conflict);
        assert_eq!(k(409, Some("ContainerBeingDeleted")), ErrorKind::Transient);
        assert_eq!(k(503, Some("ServerBusy")), ErrorKind::Transient);
        assert_eq!(k(500, None), ErrorKind::Transient);
        assert_eq!(k(429, None), ErrorKind::Transient);
        assert_eq!(k(400, Some("InvalidResourceName")), ErrorKind::Other);
    }
}
