//! Storage paths to S3 bucket/key pairs, and the URL coding S3 needs for
//! copy sources and URL-encoded listings.

use berth_storage::{normalize_path, ErrorKind, Result, StorageError};

/// A normalized storage path split into bucket and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loc {
    /// The first path component.
    pub bucket: String,
    /// The rest (`""` for the bucket itself).
    pub key: String,
}

impl Loc {
    /// The storage path of this location.
    pub fn path(&self) -> String {
        berth_storage::join_path(&self.bucket, &self.key)
    }

    /// The key prefix of the directory at this location (`"a/b/"`, or `""`
    /// for the bucket).
    pub fn dir_prefix(&self) -> String {
        if self.key.is_empty() {
            String::new()
        } else {
            format!("{}/", self.key)
        }
    }

    /// The parent directory inside the same bucket (`None` for a bucket or a
    /// top-level key).
    pub fn parent_key(&self) -> Option<&str> {
        self.key.rsplit_once('/').map(|(parent, _)| parent)
    }

    /// Every proper ancestor key (`a`, `a/b` for `a/b/c`), shortest first.
    pub fn ancestor_keys(&self) -> Vec<&str> {
        self.key
            .match_indices('/')
            .map(|(i, _)| &self.key[..i])
            .collect()
    }
}

/// Normalizes `path` (refusing `..`) and splits it; `None` for the root.
pub(crate) fn locate(path: &str) -> Result<Option<Loc>> {
    let path = normalize_path(path)?;
    if path.is_empty() {
        return Ok(None);
    }
    let (bucket, key) = path.split_once('/').unwrap_or((&path, ""));
    Ok(Some(Loc {
        bucket: bucket.to_string(),
        key: key.to_string(),
    }))
}

/// Whether `name` could name a bucket at all (lenient: legacy buckets may
/// have upper case and `_`). Lookups of other names answer `NotFound`
/// without a request.
pub(crate) fn plausible_bucket(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// `NotFound` for a name that cannot be a bucket.
pub(crate) fn check_bucket_name(bucket: &str) -> Result<()> {
    if plausible_bucket(bucket) {
        Ok(())
    } else {
        Err(StorageError::new(
            ErrorKind::NotFound,
            format!("S3 bucket '{bucket}' does not exist (not a valid bucket name)"),
        ))
    }
}

/// Percent-encodes everything but unreserved characters and `/`, as the
/// `x-amz-copy-source` header needs.
pub(crate) fn encode_copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 8);
    for b in bucket
        .bytes()
        .chain(std::iter::once(b'/'))
        .chain(key.bytes())
    {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a key of a listing made with `EncodingType=url` (`%XX`, and `+`
/// for a space); `None` when the result is not valid UTF-8 or malformed.
pub(crate) fn url_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_bucket_and_key() {
        assert_eq!(locate("").unwrap(), None);
        assert_eq!(locate("/").unwrap(), None);
        let loc = locate("/b//x/./y/").unwrap().unwrap();
        assert_eq!((loc.bucket.as_str(), loc.key.as_str()), ("b", "x/y"));
        assert_eq!(loc.path(), "b/x/y");
        assert_eq!(loc.dir_prefix(), "x/y/");
        assert_eq!(loc.parent_key(), Some("x"));
        let bucket = locate("b").unwrap().unwrap();
        assert_eq!(
            (bucket.key.as_str(), bucket.dir_prefix()),
            ("", String::new())
        );
        assert_eq!(bucket.parent_key(), None);
        assert_eq!(
            locate("b/a/b/c").unwrap().unwrap().ancestor_keys(),
            vec!["a", "a/b"]
        );
        assert_eq!(locate("b/../x").unwrap_err().kind, ErrorKind::Permission);
    }

    #[test]
    fn bucket_names() {
        assert!(plausible_bucket("berth-1-2"));
        assert!(plausible_bucket("Legacy_Bucket"));
        assert!(!plausible_bucket("ab"));
        assert!(!plausible_bucket(".Trash 1"));
        assert!(!plausible_bucket("dïr"));
        assert_eq!(
            check_bucket_name("a b").unwrap_err().kind,
            ErrorKind::NotFound
        );
    }

    #[test]
    fn copy_source_is_percent_encoded() {
        assert_eq!(
            encode_copy_source("b", "dïr 目/a+b=c&d%20.txt"),
            "b/d%C3%AFr%20%E7%9B%AE/a%2Bb%3Dc%26d%2520.txt"
        );
    }

    #[test]
    fn url_decoding() {
        assert_eq!(url_decode("a%2Bb+c%20d%C3%AF").as_deref(), Some("a+b c dï"));
        assert_eq!(url_decode("plain/key").as_deref(), Some("plain/key"));
        assert_eq!(url_decode("bad%2"), None);
        assert_eq!(url_decode("bad%zz"), None);
        assert_eq!(url_decode("%FF"), None);
    }
}
