//! rclone's config file, encrypted the way rclone encrypts it: the INI text
//! sealed with NaCl secretbox (XSalsa20-Poly1305) under SHA-256 of
//! `[<password>][rclone-config]`, written as `RCLONE_ENCRYPT_V0:` and the
//! base64 of nonce ‖ box. rclone opens it with `RCLONE_CONFIG_PASS` and,
//! once it has opened an encrypted file, saves it encrypted again.

use std::io::{self, Write};
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use rand::RngCore;
use sha2::{Digest, Sha256};

const MARKER: &str = "RCLONE_ENCRYPT_V0:";
const NONCE_LEN: usize = 24;

/// The sections of an INI file in order, each with its keys in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Ini {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl Ini {
    /// Parses rclone's INI: `[section]` lines, `key = value` lines, `#`/`;`
    /// comments. A value rclone quoted (it quotes values with leading or
    /// trailing blanks, or with quotes inside) is unquoted.
    pub(crate) fn parse(text: &str) -> Ini {
        let mut ini = Ini::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                ini.sections.push((name.to_owned(), Vec::new()));
            } else if let (Some((key, value)), Some((_, keys))) =
                (line.split_once('='), ini.sections.last_mut())
            {
                keys.push((key.trim().to_owned(), unquote(value.trim()).to_owned()));
            }
        }
        ini
    }

    /// The value of `key` in `section`.
    pub(crate) fn get(&self, section: &str, key: &str) -> Option<&str> {
        let (_, keys) = self.sections.iter().find(|(name, _)| name == section)?;
        keys.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Sets `key` in `section`, adding either when missing.
    pub(crate) fn set(&mut self, section: &str, key: &str, value: &str) {
        let keys = match self.sections.iter().position(|(name, _)| name == section) {
            Some(at) => &mut self.sections[at].1,
            None => {
                self.sections.push((section.to_owned(), Vec::new()));
                &mut self.sections.last_mut().expect("just pushed").1
            }
        };
        match keys.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_owned(),
            None => keys.push((key.to_owned(), value.to_owned())),
        }
    }

    /// Removes `section`.
    pub(crate) fn remove(&mut self, section: &str) {
        self.sections.retain(|(name, _)| name != section);
    }

    fn render(&self) -> String {
        let mut text = String::new();
        for (name, keys) in &self.sections {
            text.push_str(&format!("[{name}]\n"));
            for (key, value) in keys {
                text.push_str(&format!("{key} = {value}\n"));
            }
            text.push('\n');
        }
        text
    }
}

/// rclone (goconfig) wraps a value in ``` ``` ```, `'` or `"` when it
/// must; JSON tokens come unquoted.
fn unquote(value: &str) -> &str {
    for quote in ["```", "'", "\""] {
        if value.len() >= 2 * quote.len() {
            if let Some(inner) = value
                .strip_prefix(quote)
                .and_then(|v| v.strip_suffix(quote))
            {
                return inner;
            }
        }
    }
    value
}

/// The secretbox key rclone derives from a config password.
pub(crate) fn key_for(password: &str) -> [u8; 32] {
    Sha256::digest(format!("[{password}][rclone-config]")).into()
}

/// `ini` sealed in rclone's encrypted format.
pub(crate) fn seal(ini: &Ini, key: &[u8; 32]) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let sealed = XSalsa20Poly1305::new(key.into())
        .encrypt(Nonce::from_slice(&nonce), ini.render().as_bytes())
        .expect("secretbox sealing cannot fail");
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&sealed);
    format!(
        "# Encrypted rclone configuration File\n\n{MARKER}\n{}\n",
        STANDARD.encode(blob)
    )
}

/// Opens a file [`seal`] (or rclone) wrote with `key`.
pub(crate) fn open(text: &str, key: &[u8; 32]) -> io::Result<Ini> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'));
    if lines.next() != Some(MARKER) {
        return Err(invalid("not an encrypted rclone config"));
    }
    let blob = STANDARD
        .decode(lines.collect::<String>())
        .map_err(|_| invalid("encrypted rclone config is not base64"))?;
    if blob.len() < NONCE_LEN {
        return Err(invalid("encrypted rclone config is too short"));
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let plain = XSalsa20Poly1305::new(key.into())
        .decrypt(Nonce::from_slice(nonce), sealed)
        .map_err(|_| invalid("encrypted rclone config does not open with berth's key"))?;
    Ok(Ini::parse(&String::from_utf8_lossy(&plain)))
}

/// Replaces `path` with `text` at once (a temporary file renamed over it),
/// readable by berth's user only.
pub(crate) fn replace(path: &Path, text: &str) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.berth-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("config"),
        rand::rng().next_u64()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_round_trips_and_unquotes_what_rclone_quoted() {
        let mut ini = Ini::parse(
            "# c\n[a]\ntype = drive\ntoken = {\"access_token\":\"x=\"}\n\n[b]\nq = 'say \"hi\"'\n",
        );
        assert_eq!(ini.get("a", "token"), Some("{\"access_token\":\"x=\"}"));
        assert_eq!(ini.get("b", "q"), Some("say \"hi\""));
        ini.set("a", "token", "{}");
        ini.set("c", "token", "{\"t\":1}");
        ini.remove("b");
        let again = Ini::parse(&ini.render());
        assert_eq!(again, ini);
        assert_eq!(again.get("b", "q"), None);
        assert_eq!(again.get("a", "type"), Some("drive"));
    }

    #[test]
    fn sealed_files_open_with_the_same_key_only() {
        let mut ini = Ini::default();
        ini.set("b_1", "token", "{\"refresh_token\":\"r-1\"}");
        let key = key_for("pass");
        let text = seal(&ini, &key);
        assert!(text.contains(MARKER) && !text.contains("r-1"));
        assert_eq!(open(&text, &key).unwrap(), ini);
        assert!(open(&text, &key_for("other")).is_err());
        assert!(open("[b_1]\ntoken = x\n", &key).is_err());
    }
}
