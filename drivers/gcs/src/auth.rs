//! Credentials: exactly one source out of the config, loaded into a
//! `google-cloud-auth` [`Credentials`] shared by the SDK and the JSON calls.
//! Error messages name the field or file and never quote a secret.

use crate::settings::{flag, text};
use berth_storage::catalog::Config;
use berth_storage::{ErrorKind, Result, StorageError};
use chrono::{DateTime, Utc};
use google_cloud_auth::credentials::{
    anonymous, service_account, user_account, CacheableResource, Credentials, CredentialsProvider,
    EntityTag,
};
use google_cloud_auth::errors::CredentialsError;
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{json, Value};
use std::fmt;

/// Largest service-account key file read (real keys are about 2.3 KiB).
const MAX_KEY_FILE: u64 = 1024 * 1024;

/// Credential sources, in the order they are reported.
const SOURCES: [&str; 6] = [
    "anonymous",
    "service_account_credentials",
    "service_account_file",
    "env_auth",
    "access_token",
    "token",
];

/// Loaded credentials and a description of where they came from (for error
/// messages; never secret).
#[derive(Clone)]
pub(crate) struct Auth {
    /// What signs the requests.
    pub credentials: Credentials,
    /// E.g. "service account key from /etc/sa.json".
    pub source: String,
    /// Requests are unauthenticated.
    pub anonymous: bool,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Loads the credentials the config chooses.
pub(crate) async fn load(config: &Config) -> Result<Auth> {
    if flag(config, "client_credentials") {
        return Err(StorageError::unsupported(
            "client_credentials is not supported: Google's OAuth server has no \
             client-credentials grant; use a service account key instead",
        ));
    }
    if !text(config, "auth_url").is_empty() {
        return Err(StorageError::invalid_config(
            "auth_url is only used by interactive browser logins, which berth does not \
             perform: pass the resulting token (with client_id/client_secret to refresh it)",
        ));
    }
    let chosen: Vec<&str> = SOURCES
        .into_iter()
        .filter(|field| match config.get(*field) {
            Some(Value::Bool(b)) => *b,
            _ => !text(config, field).is_empty(),
        })
        .collect();
    let source = match chosen.as_slice() {
        [one] => *one,
        [] => {
            return Err(StorageError::invalid_config(format!(
                "no credentials: set one of {} (anonymous for public buckets and emulators)",
                SOURCES.join(", ")
            )))
        }
        several => {
            return Err(StorageError::invalid_config(format!(
                "choose one credential source; these are set together: {}",
                several.join(", ")
            )))
        }
    };
    if source != "token" {
        for field in ["client_id", "client_secret", "token_url"] {
            if !text(config, field).is_empty() {
                return Err(StorageError::invalid_config(format!(
                    "{field} is only used to refresh an OAuth `token`, which is not set"
                )));
            }
        }
    }
    match source {
        "anonymous" => Ok(Auth {
            credentials: anonymous::Builder::new().build(),
            source: "anonymous access".into(),
            anonymous: true,
        }),
        "service_account_credentials" => {
            let credentials = service_account_key(
                text(config, "service_account_credentials"),
                "service_account_credentials",
            )
            .await?;
            Ok(Auth {
                credentials,
                source: "service account key from service_account_credentials".into(),
                anonymous: false,
            })
        }
        "service_account_file" => {
            let path = text(config, "service_account_file");
            let key = read_key_file(path).await?;
            let credentials = service_account_key(&key, path).await?;
            Ok(Auth {
                credentials,
                source: format!("service account key from {path}"),
                anonymous: false,
            })
        }
        "env_auth" => {
            let credentials = google_cloud_auth::credentials::Builder::default()
                .build()
                .map_err(|e| {
                    StorageError::invalid_config(format!(
                        "env_auth: no usable application default credentials: {e}"
                    ))
                })?;
            Ok(Auth {
                credentials,
                source: "application default credentials (env_auth)".into(),
                anonymous: false,
            })
        }
        "access_token" => Ok(Auth {
            credentials: StaticToken::new(text(config, "access_token"), "access_token", None)?
                .into(),
            source: "access_token".into(),
            anonymous: false,
        }),
        _ => oauth_token(config),
    }
}

/// The fixed message prefix for service-account keys (the spec's wording).
fn key_error(source: &str, reason: &str) -> StorageError {
    StorageError::invalid_config(format!(
        "Failed to load service account credentials from {source}: {reason}"
    ))
}

async fn read_key_file(path: &str) -> Result<String> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| key_error(path, &e.to_string()))?;
    if !meta.is_file() {
        return Err(key_error(path, "it is not a regular file"));
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(key_error(
            path,
            "the file is larger than 1 MiB, too large for a key",
        ));
    }
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| key_error(path, &e.to_string()))?;
    String::from_utf8(bytes).map_err(|_| key_error(path, "the file is not UTF-8 text"))
}

/// Where a JSON document stops parsing, without quoting any of it.
fn json_position(err: &serde_json::Error) -> String {
    match err.classify() {
        serde_json::error::Category::Eof => "the JSON ends early".to_string(),
        _ => format!(
            "it is not valid JSON (line {}, column {})",
            err.line(),
            err.column()
        ),
    }
}

/// Parses and checks a service-account key, then signs one token locally
/// (no network) so a broken private key fails here, not on the first call.
async fn service_account_key(key: &str, source: &str) -> Result<Credentials> {
    let value: Value =
        serde_json::from_str(key).map_err(|e| key_error(source, &json_position(&e)))?;
    let Some(object) = value.as_object() else {
        return Err(key_error(source, "it is not a JSON object"));
    };
    match object.get("type").and_then(Value::as_str) {
        Some("service_account") => {}
        Some("authorized_user") => {
            return Err(key_error(
                source,
                "it holds user credentials (\"type\": \"authorized_user\"), not a service \
                 account key; use token with client_id/client_secret, or env_auth",
            ))
        }
        _ => {
            return Err(key_error(
                source,
                "it is not a service account key (\"type\" must be \"service_account\")",
            ))
        }
    }
    for field in [
        "client_email",
        "private_key_id",
        "private_key",
        "project_id",
    ] {
        if object
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
        {
            return Err(key_error(source, &format!("the key has no \"{field}\"")));
        }
    }
    let credentials = service_account::Builder::new(value)
        .build()
        .map_err(|_| key_error(source, "the key is missing required fields"))?;
    credentials
        .headers(Extensions::new())
        .await
        .map_err(|_| key_error(source, "its private_key is not a usable PKCS#8 PEM RSA key"))?;
    Ok(credentials)
}

/// rclone's OAuth token JSON (`{"access_token": ..., "token_type": "Bearer",
/// "refresh_token": ..., "expiry": "2024-01-01T00:00:00Z"}`).
#[derive(Deserialize)]
struct OAuthToken {
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    token_type: String,
    #[serde(default)]
    refresh_token: String,
    #[serde(default)]
    expiry: Option<String>,
}

/// Credentials from the `token` field (with `client_id`, `client_secret`,
/// `token_url`).
fn oauth_token(config: &Config) -> Result<Auth> {
    let token: OAuthToken = serde_json::from_str(text(config, "token")).map_err(|e| {
        StorageError::invalid_config(format!(
            "token must be rclone's OAuth token JSON ({{\"access_token\": ..., \
             \"refresh_token\": ..., \"expiry\": ...}}): {}",
            json_position(&e)
        ))
    })?;
    if !token.token_type.is_empty() && !token.token_type.eq_ignore_ascii_case("bearer") {
        return Err(StorageError::invalid_config(
            "token: only \"token_type\": \"Bearer\" tokens can be used",
        ));
    }
    let expiry = parse_expiry(token.expiry.as_deref())?;
    let client_id = text(config, "client_id");
    let client_secret = text(config, "client_secret");
    let token_url = text(config, "token_url");
    let refreshable = !token.refresh_token.is_empty();

    if refreshable && !client_id.is_empty() && !client_secret.is_empty() {
        let mut builder = user_account::Builder::new(json!({
            "type": "authorized_user",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": token.refresh_token,
        }));
        if !token_url.is_empty() {
            builder = builder.with_token_uri(token_url);
        }
        let credentials = builder
            .build()
            .map_err(|_| StorageError::invalid_config("token: its refresh token cannot be used"))?;
        return Ok(Auth {
            credentials,
            source: "OAuth token (refreshed with client_id)".into(),
            anonymous: false,
        });
    }
    match (client_id.is_empty(), client_secret.is_empty()) {
        (true, false) => {
            return Err(StorageError::invalid_config(
                "client_secret is set without client_id",
            ))
        }
        (false, true) => {
            return Err(StorageError::invalid_config(
                "client_id is set without client_secret",
            ))
        }
        (false, false) => {
            return Err(StorageError::invalid_config(
                "client_id/client_secret are only used to refresh token, which has no \
                 refresh_token",
            ))
        }
        (true, true) => {}
    }
    if !token_url.is_empty() {
        return Err(StorageError::invalid_config(
            "token_url is only used to refresh token, which needs a refresh_token and \
             client_id/client_secret",
        ));
    }
    if token.access_token.is_empty() {
        return Err(StorageError::invalid_config(
            "token has no access_token (and cannot be refreshed without client_id/client_secret)",
        ));
    }
    if let Some(expiry) = expiry {
        if expiry <= Utc::now() {
            return Err(StorageError::invalid_config(format!(
                "token expired at {} and cannot be refreshed: set client_id and client_secret \
                 (with a refresh_token in token) or supply a fresh token",
                expiry.to_rfc3339()
            )));
        }
    }
    Ok(Auth {
        credentials: StaticToken::new(&token.access_token, "token", expiry)?.into(),
        source: "OAuth token".into(),
        anonymous: false,
    })
}

/// Parses rclone's `expiry` (RFC 3339; Go's zero time means "none").
fn parse_expiry(expiry: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    let Some(text) = expiry.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let time = DateTime::parse_from_rfc3339(text)
        .map_err(|_| StorageError::invalid_config("token: \"expiry\" is not an RFC 3339 time"))?
        .with_timezone(&Utc);
    // Go's zero time (0001-01-01T00:00:00Z) marks a token without expiry.
    Ok((time.timestamp() > 0).then_some(time))
}

/// A fixed bearer token, valid until `expiry` when known.
struct StaticToken {
    header: HeaderValue,
    expiry: Option<DateTime<Utc>>,
    tag: EntityTag,
}

impl StaticToken {
    /// A provider for `token` (from `field`, named in errors).
    fn new(token: &str, field: &str, expiry: Option<DateTime<Utc>>) -> Result<Self> {
        let mut header = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            StorageError::new(
                ErrorKind::InvalidConfig,
                format!("{field} holds characters that cannot be sent in an HTTP header"),
            )
        })?;
        header.set_sensitive(true);
        Ok(StaticToken {
            header,
            expiry,
            tag: EntityTag::new(),
        })
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticToken")
            .field("token", &"***")
            .field("expiry", &self.expiry)
            .finish()
    }
}

impl CredentialsProvider for StaticToken {
    async fn headers(
        &self,
        extensions: Extensions,
    ) -> std::result::Result<CacheableResource<HeaderMap>, CredentialsError> {
        if let Some(expiry) = self.expiry {
            if expiry <= Utc::now() {
                return Err(CredentialsError::from_msg(
                    false,
                    format!("the OAuth access token expired at {}", expiry.to_rfc3339()),
                ));
            }
        }
        if extensions.get::<EntityTag>() == Some(&self.tag) {
            return Ok(CacheableResource::NotModified);
        }
        let mut data = HeaderMap::new();
        data.insert(AUTHORIZATION, self.header.clone());
        Ok(CacheableResource::New {
            entity_tag: self.tag.clone(),
            data,
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(value: Value) -> Config {
        value.as_object().unwrap().clone()
    }

    async fn err(value: Value) -> StorageError {
        load(&config(value)).await.unwrap_err()
    }

    async fn bearer(auth: &Auth) -> String {
        match auth.credentials.headers(Extensions::new()).await.unwrap() {
            CacheableResource::New { data, .. } => {
                data[AUTHORIZATION].to_str().unwrap().to_string()
            }
            CacheableResource::NotModified => panic!("no headers"),
        }
    }

    #[tokio::test]
    async fn exactly_one_source() {
        let e = err(json!({})).await;
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        assert!(e.message.contains("no credentials"), "{e}");
        let e = err(json!({"anonymous": true, "access_token": "abc"})).await;
        assert!(e.message.contains("anonymous, access_token"), "{e}");
        assert!(load(&config(json!({"anonymous": true}))).await.is_ok());
    }

    #[tokio::test]
    async fn refused_fields_are_named() {
        let e = err(json!({"anonymous": true, "client_credentials": true})).await;
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(e.message.contains("client_credentials"));
        let e = err(json!({"anonymous": true, "auth_url": "https://x"})).await;
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        assert!(e.message.contains("auth_url"));
        let e = err(json!({"anonymous": true, "client_id": "id"})).await;
        assert!(e.message.contains("client_id"), "{e}");
        let e = err(json!({"anonymous": true, "token_url": "https://x"})).await;
        assert!(e.message.contains("token_url"), "{e}");
    }

    #[tokio::test]
    async fn bad_service_account_json_never_echoed() {
        let secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n";
        let cases = [
            (
                json!({"service_account_credentials": "{not json TOPSECRETMATERIAL"}),
                "not valid JSON",
            ),
            (
                json!({"service_account_credentials": "[1]"}),
                "not a JSON object",
            ),
            (
                json!({"service_account_credentials": json!({"type": "user", "private_key": secret}).to_string()}),
                "\"type\" must be \"service_account\"",
            ),
            (
                json!({"service_account_credentials": json!({"type": "service_account", "private_key": secret}).to_string()}),
                "no \"client_email\"",
            ),
            (
                json!({"service_account_credentials": json!({
                    "type": "service_account", "client_email": "a@b", "private_key": secret,
                    "private_key_id": "k", "project_id": "p",
                }).to_string()}),
                "not a usable PKCS#8 PEM RSA key",
            ),
        ];
        for (value, want) in cases {
            let e = err(value).await;
            assert_eq!(e.kind, ErrorKind::InvalidConfig, "{e}");
            assert!(
                e.message.starts_with(
                    "Failed to load service account credentials from service_account_credentials: "
                ),
                "{e}"
            );
            assert!(e.message.contains(want), "{e}");
            assert!(!e.message.contains("TOPSECRET"), "{e}");
        }
    }

    #[tokio::test]
    async fn service_account_file_errors() {
        let e = err(json!({"service_account_file": "/nonexistent/gcs-sa.json"})).await;
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        assert!(
            e.message.starts_with(
                "Failed to load service account credentials from /nonexistent/gcs-sa.json: "
            ),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = err(json!({"service_account_file": dir.path()})).await;
        assert!(e.message.contains("not a regular file"), "{e}");
        let file = dir.path().join("sa.json");
        std::fs::write(&file, "{\"private_key\": \"SECRET\"").unwrap();
        let e = err(json!({"service_account_file": file})).await;
        assert!(e.message.contains("JSON ends early"), "{e}");
        assert!(!e.message.contains("SECRET"), "{e}");
    }

    /// A real key (generated with openssl when it is installed) signs a token.
    #[tokio::test]
    async fn service_account_key_loads() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("key.pem");
        let status = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&pem)
            .stderr(std::process::Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("SKIPPED: openssl is not available to generate a test key");
            return;
        }
        let key = json!({
            "type": "service_account",
            "client_email": "berth@example.iam.gserviceaccount.com",
            "private_key_id": "0123",
            "private_key": std::fs::read_to_string(&pem).unwrap(),
            "project_id": "berth-test",
        });
        let file = dir.path().join("sa.json");
        std::fs::write(&file, key.to_string()).unwrap();
        let auth = load(&config(json!({"service_account_file": file})))
            .await
            .unwrap();
        assert!(auth.source.contains("sa.json"));
        assert!(bearer(&auth).await.starts_with("Bearer "));
    }

    #[tokio::test]
    async fn access_token_and_token() {
        let auth = load(&config(json!({"access_token": "ya29.abc"})))
            .await
            .unwrap();
        assert_eq!(bearer(&auth).await, "Bearer ya29.abc");
        let e = err(json!({"access_token": "bad\ntoken"})).await;
        assert!(e.message.contains("access_token"), "{e}");

        let token = json!({"access_token": "ya29.t", "token_type": "Bearer",
            "expiry": "2999-01-01T00:00:00Z"});
        let auth = load(&config(json!({"token": token.to_string()})))
            .await
            .unwrap();
        assert_eq!(bearer(&auth).await, "Bearer ya29.t");

        let zero = json!({"access_token": "ya29.z", "expiry": "0001-01-01T00:00:00Z"});
        assert!(load(&config(json!({"token": zero.to_string()})))
            .await
            .is_ok());

        let expired = json!({"access_token": "ya29.old", "refresh_token": "r",
            "expiry": "2000-01-01T00:00:00Z"});
        let e = err(json!({"token": expired.to_string()})).await;
        assert!(e.message.contains("expired"), "{e}");
        assert!(!e.message.contains("ya29"), "{e}");

        let refreshable = load(&config(json!({"token": expired.to_string(),
            "client_id": "id", "client_secret": "s", "token_url": "http://127.0.0.1:1/token"})))
        .await
        .unwrap();
        assert!(refreshable.source.contains("refreshed"));

        let e = err(json!({"token": "{\"access_token\": 5"})).await;
        assert!(e.message.contains("token must be"), "{e}");
        let e = err(json!({"token": token.to_string(), "client_id": "id"})).await;
        assert!(e.message.contains("client_secret"), "{e}");
        let e = err(json!({"token": token.to_string(), "token_url": "http://x"})).await;
        assert!(e.message.contains("token_url"), "{e}");
    }
}
