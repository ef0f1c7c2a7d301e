//! Sealing of backend configs at rest.
//!
//! A [`MasterKey`] is a per-install 32-byte key kept in a file next to the
//! database (never in it). [`MasterKey::seal`] encrypts with
//! XChaCha20-Poly1305 under a fresh random 24-byte nonce and returns
//! `nonce || ciphertext || tag`; the associated data (the backend id) binds a
//! sealed blob to its row, so a blob copied onto another row does not open.

use std::fmt;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::{Zeroize, Zeroizing};

use crate::DbError;

/// Length of a master key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the random nonce that prefixes every sealed blob.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 authentication tag at the end of a sealed blob.
pub const TAG_LEN: usize = 16;

/// The per-install key that seals backend configs. `Debug` never shows it;
/// the bytes are wiped from memory when the key is dropped.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_LEN]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl MasterKey {
    /// Loads the key from `path`, or creates it there (mode 0600, parent
    /// directories created with mode 0700) when the file does not exist.
    ///
    /// The file holds the key hex-encoded (64 characters, as written here) or
    /// base64-encoded (standard or URL-safe, padded or not); surrounding
    /// whitespace is ignored. Anything else is an error that names the file
    /// but never its contents.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, DbError> {
        match fs::read(path) {
            Ok(bytes) => return Self::parse_file(path, &Zeroizing::new(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                return Err(DbError::Crypto(format!(
                    "cannot read master key file {}: {e}",
                    path.display()
                )))
            }
        }

        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent).map_err(|e| {
                DbError::Crypto(format!(
                    "cannot create directory {} for the master key: {e}",
                    parent.display()
                ))
            })?;
        }

        let key = MasterKey::generate();
        match create_private_file(path) {
            Ok(mut file) => {
                let mut encoded = Zeroizing::new(hex::encode(key.0));
                encoded.push('\n');
                file.write_all(encoded.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| {
                        // Do not leave a truncated key behind.
                        let _ = fs::remove_file(path);
                        DbError::Crypto(format!(
                            "cannot write master key file {}: {e}",
                            path.display()
                        ))
                    })?;
                tracing::info!(path = %path.display(), "created a new master key");
                Ok(key)
            }
            // Someone else created it between our read and our create: use theirs.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let bytes = Zeroizing::new(fs::read(path).map_err(|e| {
                    DbError::Crypto(format!(
                        "cannot read master key file {}: {e}",
                        path.display()
                    ))
                })?);
                Self::parse_file(path, &bytes)
            }
            Err(e) => Err(DbError::Crypto(format!(
                "cannot create master key file {}: {e}",
                path.display()
            ))),
        }
    }

    /// Generates a fresh random key from the operating system's RNG.
    pub fn generate() -> MasterKey {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let mut bytes = [0u8; KEY_LEN];
        bytes.copy_from_slice(&key);
        MasterKey(bytes)
    }

    /// Builds a key from raw bytes (for tests and key-management tooling).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> MasterKey {
        MasterKey(bytes)
    }

    /// A key for another use of berth (named by `purpose`), derived from
    /// this one with HMAC-SHA-256: knowing it reveals nothing of this key.
    pub fn derive(&self, purpose: &str) -> [u8; KEY_LEN] {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0)
            .expect("HMAC takes keys of any length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Encrypts `plaintext`, binding it to `aad` (the backend id). Returns
    /// `nonce (24 bytes) || ciphertext || tag (16 bytes)`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            // Only fails for inputs beyond 2^38 bytes.
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory inputs");
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Decrypts a blob made by [`MasterKey::seal`] with the same `aad`.
    /// Fails with [`DbError::Crypto`] for a wrong key, a wrong `aad`, or a
    /// truncated or tampered blob.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, DbError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(DbError::Crypto(format!(
                "sealed data is too short ({} bytes)",
                sealed.len()
            )));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| {
                DbError::Crypto(
                    "cannot open sealed data: wrong master key, wrong owner id, or corrupted data"
                        .into(),
                )
            })
    }

    /// Serializes `value` as JSON and seals it (see [`MasterKey::seal`]).
    pub fn seal_json<T: Serialize + ?Sized>(
        &self,
        value: &T,
        aad: &[u8],
    ) -> Result<Vec<u8>, DbError> {
        let json = Zeroizing::new(
            serde_json::to_vec(value)
                .map_err(|e| DbError::Other(format!("cannot serialize config: {e}")))?,
        );
        Ok(self.seal(&json, aad))
    }

    /// Opens a blob made by [`MasterKey::seal_json`] and parses the JSON.
    /// The parse error is reported without any of the decrypted text.
    pub fn open_json<T: DeserializeOwned>(&self, sealed: &[u8], aad: &[u8]) -> Result<T, DbError> {
        let json = Zeroizing::new(self.open(sealed, aad)?);
        serde_json::from_slice(&json).map_err(|e| {
            DbError::Crypto(format!(
                "sealed config is not valid JSON ({:?} at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(&self.0))
    }

    fn parse_file(path: &Path, contents: &[u8]) -> Result<MasterKey, DbError> {
        warn_if_readable_by_others(path);
        let malformed = |why: &str| {
            DbError::Crypto(format!(
                "malformed master key file {}: {why}; expected {KEY_LEN} bytes encoded as \
                 64 hex characters or as base64",
                path.display()
            ))
        };
        let text = std::str::from_utf8(contents)
            .map_err(|_| malformed("not text"))?
            .trim();
        if text.is_empty() {
            return Err(malformed("file is empty"));
        }
        let decoded = Zeroizing::new(
            decode_key_text(text).ok_or_else(|| malformed("neither valid hex nor valid base64"))?,
        );
        if decoded.len() != KEY_LEN {
            return Err(malformed(&format!("decodes to {} bytes", decoded.len())));
        }
        let mut bytes = [0u8; KEY_LEN];
        bytes.copy_from_slice(&decoded);
        Ok(MasterKey(bytes))
    }
}

/// Decodes hex first (64 hex characters are also valid base64, but mean hex
/// here), then the usual base64 alphabets.
fn decode_key_text(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(text).ok();
    }
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private_file(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "master key file is accessible by group or others; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"{\"secret_access_key\":\"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"}";

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_master_key() {
        let key = MasterKey::from_bytes([1; KEY_LEN]);
        let a = key.derive("rclone-config");
        assert_eq!(
            a,
            MasterKey::from_bytes([1; KEY_LEN]).derive("rclone-config")
        );
        assert_ne!(a, key.derive("other"));
        assert_ne!(
            a,
            MasterKey::from_bytes([2; KEY_LEN]).derive("rclone-config")
        );
        assert_ne!(a, [1; KEY_LEN]);
    }

    #[test]
    fn round_trip() {
        let key = MasterKey::generate();
        let sealed = key.seal(SECRET, b"0123456789abcdef");
        assert_eq!(sealed.len(), NONCE_LEN + SECRET.len() + TAG_LEN);
        assert_eq!(key.open(&sealed, b"0123456789abcdef").unwrap(), SECRET);
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"", b"id");
        assert_eq!(key.open(&sealed, b"id").unwrap(), b"");
    }

    #[test]
    fn nonces_are_fresh() {
        let key = MasterKey::generate();
        let a = key.seal(SECRET, b"id");
        let b = key.seal(SECRET, b"id");
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_aad_fails() {
        let key = MasterKey::generate();
        let sealed = key.seal(SECRET, b"0123456789abcdef");
        let err = key.open(&sealed, b"fedcba9876543210").unwrap_err();
        assert!(matches!(err, DbError::Crypto(_)), "{err:?}");
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = MasterKey::generate().seal(SECRET, b"id");
        assert!(matches!(
            MasterKey::generate().open(&sealed, b"id"),
            Err(DbError::Crypto(_))
        ));
    }

    #[test]
    fn tampering_fails_anywhere() {
        let key = MasterKey::generate();
        let sealed = key.seal(SECRET, b"id");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(key.open(&bad, b"id"), Err(DbError::Crypto(_))),
                "flipping byte {i} went unnoticed"
            );
        }
        // Truncated and extended blobs fail too.
        assert!(key.open(&sealed[..sealed.len() - 1], b"id").is_err());
        assert!(key.open(&sealed[..NONCE_LEN], b"id").is_err());
        assert!(key.open(&[], b"id").is_err());
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(key.open(&longer, b"id").is_err());
    }

    #[test]
    fn plaintext_never_appears_in_sealed_bytes() {
        let key = MasterKey::generate();
        let sealed = key.seal(SECRET, b"id");
        assert!(!contains(&sealed, SECRET));
        assert!(!contains(&sealed, b"wJalrXUtnFEMI"));
        assert!(!contains(&sealed, b"secret_access_key"));
    }

    #[test]
    fn errors_do_not_leak_plaintext() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"not json: hunter2", b"id");
        let err = key
            .open_json::<serde_json::Value>(&sealed, b"id")
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = key.open(&sealed, b"other").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn json_round_trip() {
        let key = MasterKey::generate();
        let value = serde_json::json!({"access_key_id": "AKIA", "secret_access_key": "s3cr3t"});
        let sealed = key.seal_json(&value, b"id").unwrap();
        let back: serde_json::Value = key.open_json(&sealed, b"id").unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn debug_hides_key() {
        let key = MasterKey::from_bytes([0xab; KEY_LEN]);
        assert_eq!(format!("{key:?}"), "MasterKey(***)");
        assert_eq!(format!("{key:#?}"), "MasterKey(***)");
    }

    #[cfg(unix)]
    #[test]
    fn key_file_created_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/master.key");
        let key = MasterKey::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key file mode is {mode:o}");
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700, "key dir mode is {dir_mode:o}");
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);

        let sealed = key.seal(SECRET, b"id");
        let again = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(again.0, key.0);
        assert_eq!(again.open(&sealed, b"id").unwrap(), SECRET);
        assert_eq!(fs::read_to_string(&path).unwrap(), text, "file rewritten");
    }

    #[test]
    fn key_file_accepts_hex_and_base64() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let dir = tempfile::tempdir().unwrap();
        let raw: [u8; KEY_LEN] = std::array::from_fn(|i| (i * 7 + 250) as u8);
        let encodings = [
            hex::encode(raw),
            format!("  {}\n", hex::encode_upper(raw)),
            STANDARD.encode(raw),
            format!("{}\r\n", URL_SAFE_NO_PAD.encode(raw)),
        ];
        for (i, text) in encodings.iter().enumerate() {
            let path = dir.path().join(format!("k{i}"));
            fs::write(&path, text).unwrap();
            let key = MasterKey::load_or_create(&path).unwrap();
            assert_eq!(key.0, raw, "encoding {i}: {text:?}");
        }
    }

    #[test]
    fn malformed_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [&[u8]; 5] = [
            b"",
            b"   \n",
            b"not a key at all!",
            b"00112233",                     // valid hex, too short
            &[0xff, 0xfe, 0x00, 0x01, 0x02], // not text
        ];
        for (i, contents) in cases.iter().enumerate() {
            let path = dir.path().join(format!("bad{i}"));
            fs::write(&path, contents).unwrap();
            let err = MasterKey::load_or_create(&path).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, DbError::Crypto(_)), "{msg}");
            assert!(msg.contains("malformed master key file"), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            // The malformed file is left alone, not replaced by a new key.
            assert_eq!(fs::read(&path).unwrap(), *contents);
        }
    }
}
