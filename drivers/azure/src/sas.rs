//! Shared access signatures: an account SAS signed locally from the account
//! key and renewed before it expires, or a fixed SAS token taken from
//! `sas_url`, added to every request by [`SasPolicy`].
//!
//! The SDK has no shared-key signing, so the key never leaves this module: it
//! signs the documented account-SAS string-to-sign (service version
//! 2020-12-06 and later: account, permissions, services, resource types,
//! start, expiry, IP, protocol, version, encryption scope, each followed by a
//! newline) with HMAC-SHA256 and only the resulting token is sent.

use async_trait::async_trait;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::sync::{Arc, Mutex};

/// The service version the account SAS is signed for (`sv`).
pub(crate) const SAS_VERSION: &str = "2025-11-05";
/// Permissions of the account SAS (`sp`), in the documented order: read,
/// write, delete, list, add, create, update.
const PERMISSIONS: &str = "rwdlacu";
/// How long a signed token is valid.
pub(crate) const VALIDITY: Duration = Duration::hours(1);
/// After this age a token is replaced by a fresh one.
pub(crate) const RENEW_AFTER: Duration = Duration::minutes(45);
/// The start time is set this far back to tolerate clock skew.
const SKEW: Duration = Duration::minutes(5);

/// A source of the current time (injected in tests).
pub(crate) trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The fields of an account SAS that are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccountSas {
    pub account: String,
    pub permissions: String,
    pub services: String,
    pub resource_types: String,
    pub start: DateTime<Utc>,
    pub expiry: DateTime<Utc>,
    pub protocol: String,
    pub version: String,
}

/// `2026-11-22T10:00:00Z`: ISO 8601 without fractional seconds, as SAS wants.
fn sas_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved bytes).
pub(crate) fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl AccountSas {
    /// The documented string-to-sign (version 2020-12-06 and later; the
    /// IP range and encryption scope are left empty).
    pub fn string_to_sign(&self) -> String {
        [
            self.account.as_str(),
            &self.permissions,
            &self.services,
            &self.resource_types,
            &sas_time(self.start),
            &sas_time(self.expiry),
            "",
            &self.protocol,
            &self.version,
            "",
            "",
        ]
        .join("\n")
    }

    /// The base64 HMAC-SHA256 of the string-to-sign under the decoded key.
    pub fn signature(&self, key: &[u8]) -> String {
        sign(key, &self.string_to_sign())
    }

    /// The SAS token (a URL query without the leading `?`).
    pub fn token(&self, key: &[u8]) -> String {
        let pairs = [
            ("sv", self.version.clone()),
            ("ss", self.services.clone()),
            ("srt", self.resource_types.clone()),
            ("sp", self.permissions.clone()),
            ("st", sas_time(self.start)),
            ("se", sas_time(self.expiry)),
            ("spr", self.protocol.clone()),
            ("sig", self.signature(key)),
        ];
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_query_value(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// The fields of a container (service) SAS that are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerSas {
    pub account: String,
    pub container: String,
    pub permissions: String,
    pub start: DateTime<Utc>,
    pub expiry: DateTime<Utc>,
    pub protocol: String,
    pub version: String,
}

impl ContainerSas {
    /// The documented service-SAS string-to-sign (version 2020-12-06 and
    /// later) for `sr=c`, without identifier, IP, snapshot, encryption scope
    /// or response headers.
    pub fn string_to_sign(&self) -> String {
        let resource = format!("/blob/{}/{}", self.account, self.container);
        [
            self.permissions.as_str(),
            &sas_time(self.start),
            &sas_time(self.expiry),
            &resource,
            "",
            "",
            &self.protocol,
            &self.version,
            "c",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ]
        .join("\n")
    }

    /// The SAS token (a URL query without the leading `?`).
    pub fn token(&self, key: &[u8]) -> String {
        let pairs = [
            ("sv", self.version.clone()),
            ("sr", "c".to_string()),
            ("sp", self.permissions.clone()),
            ("st", sas_time(self.start)),
            ("se", sas_time(self.expiry)),
            ("spr", self.protocol.clone()),
            ("sig", sign(key, &self.string_to_sign())),
        ];
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_query_value(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// The base64 HMAC-SHA256 of `text` under `key`.
fn sign(key: &[u8], text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn decode_key(key: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|_| "the storage account key must be base64".to_string())
}

/// An account SAS token for the blob service (`ss=b`, `srt=sco`), valid
/// from five minutes ago for `validity`, over http and https, signed with
/// the base64 account `key`: the query part of an account-level `sas_url`.
/// `permissions` are SAS letters in the documented order (e.g. `rwdlacu`).
pub fn account_sas_token(
    account: &str,
    key: &str,
    permissions: &str,
    validity: std::time::Duration,
) -> Result<String, String> {
    let now = Utc::now();
    let validity = Duration::from_std(validity).map_err(|e| e.to_string())?;
    let sas = AccountSas {
        account: account.to_string(),
        permissions: permissions.to_string(),
        services: "b".into(),
        resource_types: "sco".into(),
        start: now - SKEW,
        expiry: now + validity,
        protocol: "https,http".into(),
        version: SAS_VERSION.into(),
    };
    Ok(sas.token(&decode_key(key)?))
}

/// A container SAS token (`sr=c`) for `container`, like
/// [`account_sas_token`]: the query part of a container-level `sas_url`.
pub fn container_sas_token(
    account: &str,
    key: &str,
    container: &str,
    permissions: &str,
    validity: std::time::Duration,
) -> Result<String, String> {
    let now = Utc::now();
    let validity = Duration::from_std(validity).map_err(|e| e.to_string())?;
    let sas = ContainerSas {
        account: account.to_string(),
        container: container.to_string(),
        permissions: permissions.to_string(),
        start: now - SKEW,
        expiry: now + validity,
        protocol: "https,http".into(),
        version: SAS_VERSION.into(),
    };
    Ok(sas.token(&decode_key(key)?))
}

/// Signs account SAS tokens from the account key and renews them.
pub(crate) struct SasSigner {
    account: String,
    key: Vec<u8>,
    protocol: &'static str,
    clock: Arc<dyn Clock>,
    current: Mutex<Option<(DateTime<Utc>, String)>>,
}

impl fmt::Debug for SasSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasSigner")
            .field("account", &self.account)
            .field("key", &"***")
            .finish()
    }
}

impl SasSigner {
    /// A signer for `account` with the decoded `key`; `https_only` limits the
    /// tokens to HTTPS (`spr=https`), otherwise they allow HTTP too (emulator).
    pub fn new(account: String, key: Vec<u8>, https_only: bool, clock: Arc<dyn Clock>) -> Self {
        SasSigner {
            account,
            key,
            protocol: if https_only { "https" } else { "https,http" },
            clock,
            current: Mutex::new(None),
        }
    }

    /// The fields of a token issued at `now`.
    fn fields(&self, now: DateTime<Utc>) -> AccountSas {
        AccountSas {
            account: self.account.clone(),
            permissions: PERMISSIONS.into(),
            services: "b".into(),
            resource_types: "sco".into(),
            start: now - SKEW,
            expiry: now + VALIDITY,
            protocol: self.protocol.into(),
            version: SAS_VERSION.into(),
        }
    }

    /// The current token: reused until it is [`RENEW_AFTER`] old, then
    /// replaced by a fresh one valid for [`VALIDITY`].
    pub fn token(&self) -> String {
        let now = self.clock.now();
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        match current.as_ref() {
            Some((issued, token)) if now >= *issued && now - *issued < RENEW_AFTER => token.clone(),
            _ => {
                let token = self.fields(now).token(&self.key);
                *current = Some((now, token.clone()));
                token
            }
        }
    }
}

/// Where the SAS token of a request comes from.
#[derive(Debug, Clone)]
pub(crate) enum SasSource {
    /// Signed from the account key, renewed.
    Signer(Arc<SasSigner>),
    /// The query of `sas_url`, used as given.
    Fixed(Arc<String>),
}

impl SasSource {
    /// The token to add to the next request.
    pub fn token(&self) -> String {
        match self {
            SasSource::Signer(signer) => signer.token(),
            SasSource::Fixed(token) => token.as_str().to_string(),
        }
    }
}

/// Adds the SAS token to the query of every request (each try).
#[derive(Debug)]
pub(crate) struct SasPolicy {
    source: SasSource,
}

impl SasPolicy {
    /// A policy adding tokens from `source`.
    pub fn new(source: SasSource) -> Self {
        SasPolicy { source }
    }
}

/// Appends an already-encoded query `token` to `url`.
pub(crate) fn append_token(url: &mut azure_core::http::Url, token: &str) {
    let query = match url.query() {
        Some(existing) if !existing.is_empty() => format!("{existing}&{token}"),
        _ => token.to_string(),
    };
    url.set_query(Some(&query));
}

#[async_trait]
impl Policy for SasPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        // The request is sent again on a retry: put the URL back so each
        // try carries exactly one (current) token.
        let original = request.url().clone();
        append_token(request.url_mut(), &self.source.token());
        let result = next[0].send(ctx, request, &next[1..]).await;
        *request.url_mut() = original;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Azurite's documented well-known key for devstoreaccount1.
    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    struct ManualClock(Mutex<DateTime<Utc>>);

    impl ManualClock {
        fn advance(&self, by: Duration) {
            let mut now = self.0.lock().unwrap();
            *now += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0).unwrap()
    }

    fn key() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(DEV_KEY)
            .unwrap()
    }

    fn sample() -> AccountSas {
        AccountSas {
            account: "devstoreaccount1".into(),
            permissions: "rwdlacu".into(),
            services: "b".into(),
            resource_types: "sco".into(),
            start: at(9, 55),
            expiry: at(11, 0),
            protocol: "https,http".into(),
            version: "2025-11-05".into(),
        }
    }

    #[test]
    fn string_to_sign_follows_the_documented_layout() {
        assert_eq!(
            sample().string_to_sign(),
            "devstoreaccount1\nrwdlacu\nb\nsco\n2026-11-22T09:55:00Z\n2026-11-22T11:00:00Z\n\nhttps,http\n2025-11-05\n\n"
        );
    }

    /// The expected signature was computed independently with
    /// `printf '<string-to-sign>' | openssl dgst -sha256 -mac HMAC
    /// -macopt hexkey:<hex of the decoded key> -binary | base64`.
    #[test]
    fn signature_matches_an_independent_computation() {
        assert_eq!(
            sample().signature(&key()),
            "pj3UmitlEMT5B6nP8MXP1tgrLi3ZE0LpWD+iPs3qRDY="
        );
    }

    #[test]
    fn container_sas_follows_the_documented_layout() {
        let sas = ContainerSas {
            account: "devstoreaccount1".into(),
            container: "photos".into(),
            permissions: "rl".into(),
            start: at(9, 55),
            expiry: at(11, 0),
            protocol: "https,http".into(),
            version: "2025-11-05".into(),
        };
        assert_eq!(
            sas.string_to_sign(),
            "rl\n2026-11-22T09:55:00Z\n2026-11-22T11:00:00Z\n/blob/devstoreaccount1/photos\n\n\nhttps,http\n2025-11-05\nc\n\n\n\n\n\n\n"
        );
        // Computed independently with openssl, as above.
        assert!(sas.token(&key()).ends_with(&format!(
            "sig={}",
            encode_query_value("PD8vkl9AnJHVlhh7/oYmIs4ZB8hRNU6e57kWKQ4KEHc=")
        )));
    }

    #[test]
    fn token_encodes_every_value() {
        let token = sample().token(&key());
        assert!(token.starts_with(
            "sv=2025-11-05&ss=b&srt=sco&sp=rwdlacu&st=2026-11-22T09%3A55%3A00Z&se=2026-11-22T11%3A00%3A00Z&spr=https%2Chttp&sig="
        ));
        let sig = token.rsplit("sig=").next().unwrap();
        assert!(!sig.contains(['+', '/', '=']), "{sig}");
    }

    #[test]
    fn tokens_are_renewed_after_45_minutes() {
        let clock = Arc::new(ManualClock(Mutex::new(at(10, 0))));
        let signer = SasSigner::new("devstoreaccount1".into(), key(), true, clock.clone());
        let first = signer.token();
        assert!(first.contains("st=2026-11-22T09%3A55%3A00Z"));
        assert!(first.contains("se=2026-11-22T11%3A00%3A00Z"));
        assert!(first.contains("spr=https&"));
        clock.advance(Duration::minutes(44));
        assert_eq!(signer.token(), first, "reused before 45 minutes");
        clock.advance(Duration::minutes(1));
        let second = signer.token();
        assert_ne!(second, first, "renewed at 45 minutes");
        assert!(second.contains("se=2026-11-22T11%3A45%3A00Z"));
        clock.advance(Duration::minutes(10));
        assert_eq!(signer.token(), second);
        // A clock that went backwards gets a fresh token too.
        clock.advance(Duration::hours(-2));
        assert_ne!(signer.token(), second);
    }

    #[test]
    fn debug_hides_the_key() {
        let signer = SasSigner::new("acct".into(), key(), true, Arc::new(SystemClock));
        let shown = format!("{signer:?}");
        assert!(shown.contains("***") && !shown.contains("Eby8"));
    }

    #[test]
    fn tokens_are_appended_to_existing_queries() {
        let mut url = azure_core::http::Url::parse("http://h/a/c?comp=list").unwrap();
        append_token(&mut url, "sv=1&sig=a%2Bb");
        assert_eq!(url.as_str(), "http://h/a/c?comp=list&sv=1&sig=a%2Bb");
        let mut url = azure_core::http::Url::parse("http://h/a/c").unwrap();
        append_token(&mut url, "sv=1");
        assert_eq!(url.as_str(), "http://h/a/c?sv=1");
    }
    /// Fails the first try like a connection the server closed, answers
    /// the second, and records the URLs it saw.
    #[derive(Debug, Default)]
    struct FlakyTransport(Mutex<Vec<String>>);

    #[async_trait]
    impl azure_core::http::HttpClient for FlakyTransport {
        async fn execute_request(
            &self,
            request: &Request,
        ) -> azure_core::Result<azure_core::http::AsyncRawResponse> {
            let mut seen = self.0.lock().unwrap();
            seen.push(request.url().to_string());
            if seen.len() == 1 {
                return Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Io,
                    "connection closed before message completed",
                ));
            }
            Ok(azure_core::http::AsyncRawResponse::from_bytes(
                azure_core::http::StatusCode::Ok,
                azure_core::http::headers::Headers::new(),
                bytes::Bytes::new(),
            ))
        }
    }

    #[tokio::test]
    async fn every_try_carries_exactly_one_token() {
        use azure_core::http::{ClientOptions, ExponentialRetryOptions, Pipeline, RetryOptions};
        let transport = Arc::new(FlakyTransport::default());
        let options = ClientOptions {
            transport: Some(azure_core::http::Transport::new(transport.clone())),
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: azure_core::time::Duration::milliseconds(1),
                max_retries: 2,
                max_total_elapsed: azure_core::time::Duration::seconds(5),
                max_delay: azure_core::time::Duration::seconds(1),
            }),
            per_try_policies: vec![Arc::new(SasPolicy::new(SasSource::Fixed(Arc::new(
                "sv=1&sig=abc".to_string(),
            ))))],
            ..ClientOptions::default()
        };
        let pipeline = Pipeline::new(None, None, options, Vec::new(), Vec::new(), None);
        let mut request = Request::new(
            azure_core::http::Url::parse("http://h/acct/box?comp=list").unwrap(),
            azure_core::http::Method::Get,
        );
        pipeline
            .send(&Context::new(), &mut request, None)
            .await
            .unwrap();
        let seen = transport.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        for url in &seen {
            assert_eq!(url, "http://h/acct/box?comp=list&sv=1&sig=abc");
        }
        assert_eq!(request.url().as_str(), "http://h/acct/box?comp=list");
    }
}
