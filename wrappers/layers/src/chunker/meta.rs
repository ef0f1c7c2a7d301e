//! The `simplejson` metadata object of a composite file, byte-compatible
//! with rclone: `{"ver":1,"size":N,"nchunks":K,"md5":"…"}` (`sha1` instead
//! of `md5` when that is the hash type; no hash field when there is none),
//! and version 2 with `"txn":"<id>"` when the chunks keep their transaction
//! suffix (`norename` transactions).

use serde::{Deserialize, Serialize};

/// Largest valid metadata object, in bytes. Larger files are never metadata.
pub const MAX_METADATA_SIZE: u64 = 255;
/// Highest metadata version berth reads.
const VERSION: i64 = 2;

/// Decoded metadata of a composite file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Total size of the data chunks.
    pub size: u64,
    /// Number of data chunks.
    pub chunks: u64,
    /// MD5 of the whole file, when recorded.
    pub md5: Option<String>,
    /// SHA-1 of the whole file, when recorded.
    pub sha1: Option<String>,
    /// Transaction id carried by the data chunks' names (version 2).
    pub txn: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct SimpleJson {
    ver: Option<i64>,
    size: Option<i64>,
    nchunks: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    md5: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sha1: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    txn: String,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Metadata {
    /// The JSON object, version 1 or (with a transaction id) 2.
    pub fn encode(&self) -> Vec<u8> {
        let json = SimpleJson {
            ver: Some(if self.txn.is_some() { 2 } else { 1 }),
            size: Some(i64::try_from(self.size).unwrap_or(i64::MAX)),
            nchunks: Some(i64::try_from(self.chunks).unwrap_or(i64::MAX)),
            md5: self.md5.clone().unwrap_or_default(),
            sha1: self.sha1.clone().unwrap_or_default(),
            txn: self.txn.clone().unwrap_or_default(),
        };
        serde_json::to_vec(&json).expect("plain struct serializes")
    }

    /// Decodes `data` with rclone's checks, which keep ordinary small files
    /// from passing for metadata. `strict` also refuses versions newer than
    /// berth reads (without it, any version of the shape is accepted: used to
    /// decide whether a small file's content could be mistaken for metadata).
    pub fn decode(data: &[u8], strict: bool) -> Result<Metadata, String> {
        if data.len() as u64 > MAX_METADATA_SIZE {
            return Err("too big".into());
        }
        if data.len() < 2 || data[0] != b'{' || data[data.len() - 1] != b'}' {
            return Err("invalid json".into());
        }
        let json: SimpleJson = serde_json::from_slice(data).map_err(|e| e.to_string())?;
        let (Some(ver), Some(size), Some(nchunks)) = (json.ver, json.size, json.nchunks) else {
            return Err("missing required field".into());
        };
        if ver < 1 {
            return Err("wrong version".into());
        }
        let size = u64::try_from(size).map_err(|_| "negative file size".to_string())?;
        let chunks = u64::try_from(nchunks).map_err(|_| "negative number of chunks".to_string())?;
        if chunks > super::names::MAX_CHUNKS {
            return Err("chunk number overflow".into());
        }
        if !json.md5.is_empty() && !is_hex(&json.md5, 32) {
            return Err("wrong md5 hash".into());
        }
        if !json.sha1.is_empty() && !is_hex(&json.sha1, 40) {
            return Err("wrong sha1 hash".into());
        }
        if chunks < 1 && ver <= VERSION {
            return Err("wrong number of chunks".into());
        }
        if strict && ver > VERSION {
            return Err(format!("metadata version {ver} is not supported"));
        }
        let txn = match json.txn.as_str() {
            "" => None,
            id if (4..=9).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()) =>
            {
                Some(id.to_string())
            }
            _ => return Err("wrong transaction id".into()),
        };
        let some = |s: String| (!s.is_empty()).then_some(s);
        Ok(Metadata {
            size,
            chunks,
            md5: some(json.md5),
            sha1: some(json.sha1),
            txn,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rclone_bytes() {
        let m = Metadata {
            size: 2500,
            chunks: 3,
            md5: Some("1b624eebd72830d41e3dbcd5ace622ba".into()),
            ..Metadata::default()
        };
        assert_eq!(
            String::from_utf8(m.encode()).unwrap(),
            r#"{"ver":1,"size":2500,"nchunks":3,"md5":"1b624eebd72830d41e3dbcd5ace622ba"}"#
        );
        let v2 = Metadata {
            txn: Some("wzrm45".into()),
            ..m.clone()
        };
        assert_eq!(
            String::from_utf8(v2.encode()).unwrap(),
            r#"{"ver":2,"size":2500,"nchunks":3,"md5":"1b624eebd72830d41e3dbcd5ace622ba","txn":"wzrm45"}"#
        );
        let sha = Metadata {
            size: 6,
            chunks: 1,
            sha1: Some("f572d396fae9206628714fb2ce00f72e94f2258f".into()),
            ..Metadata::default()
        };
        assert_eq!(
            String::from_utf8(sha.encode()).unwrap(),
            r#"{"ver":1,"size":6,"nchunks":1,"sha1":"f572d396fae9206628714fb2ce00f72e94f2258f"}"#
        );
        for m in [m, v2, sha] {
            assert_eq!(Metadata::decode(&m.encode(), true).unwrap(), m);
        }
    }

    #[test]
    fn rejects_lookalikes() {
        for bad in [
            &b"hello"[..],
            b"{}",
            br#"{"ver":1,"size":5}"#,
            br#"{"ver":0,"size":5,"nchunks":1}"#,
            br#"{"ver":1,"size":-5,"nchunks":1}"#,
            br#"{"ver":1,"size":5,"nchunks":0}"#,
            br#"{"ver":1,"size":"5","nchunks":1}"#,
            br#"{"ver":1,"size":5,"nchunks":1,"md5":"xyz"}"#,
            br#"{"ver":2,"size":5,"nchunks":1,"txn":"NOPE"}"#,
            br#" {"ver":1,"size":5,"nchunks":1}"#,
        ] {
            assert!(
                Metadata::decode(bad, false).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let future = br#"{"ver":3,"size":5,"nchunks":1}"#;
        assert!(Metadata::decode(future, false).is_ok());
        assert!(Metadata::decode(future, true)
            .unwrap_err()
            .contains("version 3"));
        let mut long = br#"{"ver":1,"size":5,"nchunks":1,"x":""#.to_vec();
        long.extend(std::iter::repeat_n(b'a', 300));
        long.extend(br#""}"#);
        assert_eq!(Metadata::decode(&long, false).unwrap_err(), "too big");
    }
}
