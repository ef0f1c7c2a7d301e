//! API tokens: HS256 JWTs whose `org` claim is the tenant and whose `scope`
//! claim (space-separated) grants `read` and/or `write`.
//!
//! Verification is written out here (HMAC-SHA256 over `header.payload`) rather
//! than taken from a general JWT crate: berth accepts exactly one algorithm,
//! so the whole check is a few lines, `alg: none` and every other algorithm are
//! refused by construction, and no RSA/EC code is compiled in.

use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::future::{ready, Ready};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<Sha256>;

/// The key that signs and verifies tokens. `Debug` never shows it.
#[derive(Clone)]
pub struct JwtKey(Vec<u8>);

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKey(***)")
    }
}

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// GET requests.
    Read,
    /// Anything that changes state.
    Write,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant every resource belongs to.
    pub org: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

impl Principal {
    /// 403 unless the token grants `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| s == scope.name()) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "token lacks the '{}' scope",
                scope.name()
            )))
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    org: String,
    #[serde(default)]
    scope: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl JwtKey {
    /// A key from the configured secret.
    pub fn new(secret: &[u8]) -> JwtKey {
        JwtKey(secret.to_vec())
    }

    /// The configured secret, or the one generated once into `file`
    /// (mode 0600) and reused after.
    pub fn load(secret: Option<&str>, file: &Path) -> Result<JwtKey, String> {
        if let Some(secret) = secret {
            return Ok(JwtKey::new(secret.as_bytes()));
        }
        match std::fs::read_to_string(file) {
            Ok(text) if !text.trim().is_empty() => return Ok(JwtKey::new(text.trim().as_bytes())),
            Ok(_) => return Err(format!("{} is empty", file.display())),
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("{}: {err}", file.display()))
            }
            Err(_) => {}
        }
        let secret = hex::encode(rand::random::<[u8; 32]>());
        write_private(file, &secret).map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(JwtKey::new(secret.as_bytes()))
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }

    /// Mints a token for `org` with `scopes`, valid for `ttl`.
    pub fn mint(&self, org: &str, scopes: &str, ttl: Duration) -> String {
        let now = now_secs();
        let header = Header {
            alg: "HS256".into(),
            typ: Some("JWT".into()),
        };
        let claims = Claims {
            org: org.into(),
            scope: scopes.into(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
        };
        let signing_input = format!("{}.{}", encode_part(&header), encode_part(&claims));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// Checks a token: HS256 only, valid signature, `exp` in the future,
    /// non-empty `org`.
    pub fn verify(&self, token: &str) -> Result<Principal, String> {
        let malformed = || "malformed token".to_string();
        let (signing_input, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or_else(malformed)?;
        if payload.contains('.') {
            return Err(malformed());
        }
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| malformed());
        let header: Header =
            serde_json::from_slice(&decode(header)?).map_err(|_| "malformed token header")?;
        if header.alg != "HS256" {
            return Err(format!(
                "token algorithm '{}' is not accepted (HS256 only)",
                header.alg
            ));
        }
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&decode(signature)?)
            .map_err(|_| "invalid token signature")?;
        let claims: Claims = serde_json::from_slice(&decode(payload)?)
            .map_err(|e| format!("invalid token claims: {e}"))?;
        if claims.exp <= now_secs() {
            return Err("token expired".into());
        }
        if claims.org.trim().is_empty() {
            return Err("token has an empty 'org' claim".into());
        }
        Ok(Principal {
            org: claims.org,
            scopes: claims
                .scope
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        })
    }
}

fn encode_part<T: Serialize>(part: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(part).expect("token parts always serialize"))
}

/// Writes a file readable by its owner only, refusing to replace one.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Principal, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let Some(key) = req.app_data::<web::Data<JwtKey>>() else {
            return ready(Err(ApiError::Internal("JWT key missing".into())));
        };
        let header = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let result = match header.and_then(|h| h.strip_prefix("Bearer ")) {
            None => Err(ApiError::Unauthorized("missing bearer token".into())),
            Some(token) => key.verify(token.trim()).map_err(ApiError::Unauthorized),
        };
        ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    fn key() -> JwtKey {
        JwtKey::new(b"test-secret")
    }

    fn forge(header: &str, claims: &str, secret: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut mac = HmacSha256::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn minted_tokens_verify() {
        let token = key().mint("acme", "read write", Duration::from_secs(60));
        let principal = key().verify(&token).unwrap();
        assert_eq!(principal.org, "acme");
        assert!(principal.require(Scope::Write).is_ok());
    }

    #[test]
    fn refuses_bad_tokens() {
        let exp = now_secs() + 60;
        let claims = format!(r#"{{"org":"acme","scope":"read","exp":{exp}}}"#);
        assert!(key().verify("a.b").is_err());
        assert!(key()
            .verify(&forge(r#"{"alg":"HS256"}"#, &claims, b"other"))
            .unwrap_err()
            .contains("signature"));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(&claims)
        );
        assert!(key().verify(&none).unwrap_err().contains("none"));
        let expired = format!(r#"{{"org":"acme","exp":{}}}"#, now_secs() - 1);
        assert_eq!(
            key()
                .verify(&forge(r#"{"alg":"HS256"}"#, &expired, b"test-secret"))
                .unwrap_err(),
            "token expired"
        );
        let no_exp = r#"{"org":"acme","scope":"read"}"#;
        assert!(key()
            .verify(&forge(r#"{"alg":"HS256"}"#, no_exp, b"test-secret"))
            .unwrap_err()
            .contains("exp"));
        let ok = key()
            .verify(&forge(r#"{"alg":"HS256"}"#, &claims, b"test-secret"))
            .unwrap();
        assert_eq!(
            ok.require(Scope::Write).unwrap_err().status_code(),
            actix_web::http::StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn generated_secret_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwt.secret");
        let first = JwtKey::load(None, &file).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let token = first.mint("acme", "read", Duration::from_secs(60));
        assert!(JwtKey::load(None, &file).unwrap().verify(&token).is_ok());
    }
}
