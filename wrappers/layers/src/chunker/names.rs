//! Chunk file names, as rclone's chunker makes and recognises them.
//!
//! A `name_format` such as `*.rclone_chunk.###` has the base file name in
//! place of `*` and the chunk number (starting at `start_from`, zero-padded
//! to the number of `#`s, longer numbers kept whole) in place of the `#`s.
//! Control chunks have `_<type>` (a lowercase letter and 2-6 more letters or
//! digits) where the number goes; berth makes none and hides them. A chunk
//! of a transaction carries the suffix `_<id>` (4-9 base-36 characters) after
//! the whole name; old rclone versions wrote `..tmp_<10-13 digits>` instead,
//! which reads as the same id in base 36.

use std::fmt::Write;

/// Most data chunks one file may have (rclone's `maxSafeChunkNumber`).
pub const MAX_CHUNKS: u64 = 10_000_000;

/// A parsed `name_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameFormat {
    /// Literal text between `*` and the `#`s.
    middle: String,
    /// Number of `#`s: the minimum width of the number.
    digits: usize,
    /// Literal text after the `#`s.
    suffix: String,
    /// Number of the first chunk.
    start_from: u64,
}

/// What a chunk name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkName {
    /// Name of the file the chunk belongs to.
    pub base: String,
    /// Zero-based data chunk index; `None` for a control chunk.
    pub index: Option<u64>,
    /// Transaction id of a temporary (or norename) chunk.
    pub xact: Option<String>,
}

fn is_base36(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

fn is_ctrl_type(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=7).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// `n` in base 36 (lowercase).
pub fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii digits")
}

impl NameFormat {
    /// Parses `pattern` with rclone's rules: exactly one `*`, first; one run
    /// of `#`s after it; no `/`.
    pub fn parse(pattern: &str, start_from: i64) -> Result<NameFormat, String> {
        let invalid = |why: &str| format!("Invalid name_format '{pattern}': {why}");
        if pattern.matches('*').count() != 1 {
            return Err(invalid("it must contain exactly one '*'"));
        }
        if !pattern.starts_with('*') {
            return Err(invalid("it must start with '*'"));
        }
        if pattern.contains('/') {
            return Err(invalid("it may not contain '/'"));
        }
        let first = pattern
            .find('#')
            .ok_or_else(|| invalid("it must contain at least one '#'"))?;
        let digits = pattern[first..].bytes().take_while(|&b| b == b'#').count();
        let suffix = &pattern[first + digits..];
        if suffix.contains('#') {
            return Err(invalid("its '#' characters must be consecutive"));
        }
        let start_from = u64::try_from(start_from)
            .map_err(|_| "Invalid start_from: must not be negative".to_string())?;
        Ok(NameFormat {
            middle: pattern[1..first].to_string(),
            digits,
            suffix: suffix.to_string(),
            start_from,
        })
    }

    /// The name of data chunk `index` (zero-based) of `base`, with the
    /// transaction suffix when `xact` is given.
    pub fn chunk_name(&self, base: &str, index: u64, xact: Option<&str>) -> String {
        let mut name = format!(
            "{base}{}{:0width$}{}",
            self.middle,
            index + self.start_from,
            self.suffix,
            width = self.digits
        );
        if let Some(id) = xact {
            let _ = write!(name, "_{id}");
        }
        name
    }

    /// Number of the first chunk (`start_from`).
    pub fn start_from(&self) -> u64 {
        self.start_from
    }

    /// Every chunk name of `base` starts with this.
    pub fn prefix(&self, base: &str) -> String {
        format!("{base}{}", self.middle)
    }

    /// Parses `name` as a chunk name (the shortest base wins, as rclone's
    /// non-greedy pattern does); `None` for other names.
    pub fn parse_name(&self, name: &str) -> Option<ChunkName> {
        let min_digits = self.digits.max(1);
        for (at, _) in name.match_indices(self.middle.as_str()) {
            if at == 0 {
                continue;
            }
            let base = &name[..at];
            let after = &name[at + self.middle.len()..];
            let run = after.bytes().take_while(u8::is_ascii_digit).count();
            for len in (min_digits..=run).rev() {
                if let Some(xact) = self.tail(&after[len..]) {
                    let Some(index) = after[..len]
                        .parse::<u64>()
                        .ok()
                        .and_then(|n| n.checked_sub(self.start_from))
                    else {
                        // Below start_from or too long: a normal file name.
                        return None;
                    };
                    return Some(ChunkName {
                        base: base.to_string(),
                        index: Some(index),
                        xact,
                    });
                }
            }
            if let Some(ctrl) = after.strip_prefix('_') {
                for len in (3..=7.min(ctrl.len())).rev() {
                    if !ctrl.is_char_boundary(len) || !is_ctrl_type(&ctrl[..len]) {
                        continue;
                    }
                    if let Some(xact) = self.tail(&ctrl[len..]) {
                        return Some(ChunkName {
                            base: base.to_string(),
                            index: None,
                            xact,
                        });
                    }
                }
            }
        }
        None
    }

    /// Matches what follows the number: the format's suffix, then optionally
    /// a transaction suffix (returned).
    fn tail(&self, rest: &str) -> Option<Option<String>> {
        let extra = rest.strip_prefix(self.suffix.as_str())?;
        if extra.is_empty() {
            return Some(None);
        }
        if let Some(id) = extra.strip_prefix('_') {
            return is_base36(id, 4, 9).then(|| Some(id.to_string()));
        }
        let old = extra.strip_prefix("..tmp_")?;
        if (10..=13).contains(&old.len()) && old.bytes().all(|b| b.is_ascii_digit()) {
            let n: u64 = old.parse().ok()?;
            return Some(Some(format!("{:0>4}", base36(n))));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(base: &str, index: Option<u64>, xact: Option<&str>) -> Option<ChunkName> {
        Some(ChunkName {
            base: base.into(),
            index,
            xact: xact.map(Into::into),
        })
    }

    #[test]
    fn default_format() {
        let f = NameFormat::parse("*.rclone_chunk.###", 1).unwrap();
        assert_eq!(f.chunk_name("big.bin", 0, None), "big.bin.rclone_chunk.001");
        assert_eq!(
            f.chunk_name("big.bin", 1234, None),
            "big.bin.rclone_chunk.1235"
        );
        assert_eq!(
            f.chunk_name("big.bin", 2, Some("wzrm45")),
            "big.bin.rclone_chunk.003_wzrm45"
        );
        assert_eq!(f.prefix("a"), "a.rclone_chunk.");
        assert_eq!(
            f.parse_name("big.bin.rclone_chunk.001"),
            chunk("big.bin", Some(0), None)
        );
        assert_eq!(
            f.parse_name("big.bin.rclone_chunk.1235"),
            chunk("big.bin", Some(1234), None)
        );
        assert_eq!(
            f.parse_name("big.bin.rclone_chunk.003_wzrm45"),
            chunk("big.bin", Some(2), Some("wzrm45"))
        );
        assert_eq!(f.parse_name("x.rclone_chunk._meta"), chunk("x", None, None));
        assert_eq!(
            f.parse_name("x.rclone_chunk._meta_abcd"),
            chunk("x", None, Some("abcd"))
        );
        // Old-style temporary suffix: decimal, converted to base 36.
        assert_eq!(
            f.parse_name("x.rclone_chunk.002..tmp_1234567890"),
            chunk("x", Some(1), Some(&base36(1_234_567_890)))
        );
        // The shortest base wins.
        assert_eq!(
            f.parse_name("a.rclone_chunk.001.rclone_chunk.002"),
            chunk("a.rclone_chunk.001", Some(1), None)
        );
        for plain in [
            "big.bin",
            "big.bin.rclone_chunk.01",
            "big.bin.rclone_chunk.000",
            "big.bin.rclone_chunk.001x",
            "big.bin.rclone_chunk.001_ABCD",
            "big.bin.rclone_chunk.001_abc",
            ".rclone_chunk.001",
            "x.rclone_chunk._Me",
        ] {
            assert_eq!(f.parse_name(plain), None, "{plain}");
        }
    }

    #[test]
    fn custom_formats() {
        let f = NameFormat::parse("*-##.part", 0).unwrap();
        assert_eq!(f.chunk_name("data.txt", 0, None), "data.txt-00.part");
        assert_eq!(f.chunk_name("data.txt", 301, None), "data.txt-301.part");
        assert_eq!(
            f.parse_name("data.txt-301.part"),
            chunk("data.txt", Some(301), None)
        );
        assert_eq!(f.parse_name("data.txt-3.part"), None);
        let f = NameFormat::parse("*#", 1).unwrap();
        assert_eq!(f.chunk_name("a", 9, None), "a10");
        assert_eq!(f.parse_name("a10"), chunk("a", Some(9), None));
        assert_eq!(f.parse_name("a0"), None, "below start_from");
        let f = NameFormat::parse("*.c#", 1).unwrap();
        assert_eq!(f.parse_name("日本.c7"), chunk("日本", Some(6), None));
    }

    #[test]
    fn bad_formats() {
        for (pattern, why) in [
            ("*.*.#", "exactly one '*'"),
            ("chunk.#", "exactly one '*'"),
            ("*.chunk", "at least one '#'"),
            ("x*.#", "start with '*'"),
            ("*.#.#", "consecutive"),
            ("*/#", "'/'"),
        ] {
            let e = NameFormat::parse(pattern, 1).unwrap_err();
            assert!(e.contains(why), "{pattern}: {e}");
        }
        assert!(NameFormat::parse("*.#", -1)
            .unwrap_err()
            .contains("start_from"));
    }
}
