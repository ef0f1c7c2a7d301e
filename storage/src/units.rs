//! Size and duration parsing in the forms rclone users write.
//!
//! * Sizes: a plain byte count (`4194304`) or a number with a binary suffix
//!   `B`, `K`, `M`, `G`, `T`, `P` (1K = 1024), optionally followed by `i` or
//!   `iB` (`5MiB`, `5Mi`, `5M` are the same). The suffix is
//!   case-insensitive; the number may have a fractional part (`1.5G`),
//!   rounded down to whole bytes. Note that rclone itself reads a bare number
//!   as KiB: pass `"<n>B"` to rclone for a plain byte count.
//! * Durations: a bare number is seconds (`90`, `1.5`); otherwise one or more
//!   `<number><unit>` parts with units `ms`, `s`, `m`, `h`, `d` (24 h) and
//!   `w` (7 d), lower case (`90s`, `1h30m`, `1.5h`, `500ms`).

use std::time::Duration;

const SIZE_EXPECTED: &str =
    "expected a size in bytes or with a unit suffix B, K, M, G, T or P (e.g. 4194304, 64M, 1.5G, 5MiB)";
const DURATION_EXPECTED: &str =
    "expected a duration in seconds or with units ms, s, m, h, d, w (e.g. 90, 90s, 1h30m, 1.5h)";

/// A non-negative decimal number split into its integer digits and its
/// fraction digits, without any rounding.
struct Decimal<'a> {
    int: &'a str,
    frac: &'a str,
}

impl<'a> Decimal<'a> {
    /// Splits `s` (digits with at most one `.`) into parts; `None` when it
    /// is not such a number or has no digit at all.
    fn parse(s: &'a str) -> Option<Self> {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
            return None;
        }
        Some(Decimal { int, frac })
    }

    /// `self * unit`, rounded down; `None` on overflow of `u128`.
    fn times(&self, unit: u128) -> Option<u128> {
        let mut whole: u128 = 0;
        for b in self.int.bytes() {
            whole = whole.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
        }
        let mut value = whole.checked_mul(unit)?;
        // Fraction digits beyond 18 cannot change the result for the units
        // used here (at most 2^50 bytes or a week in nanoseconds, < 10^18).
        let frac = &self.frac[..self.frac.len().min(18)];
        if !frac.is_empty() {
            let mut num: u128 = 0;
            for b in frac.bytes() {
                num = num * 10 + u128::from(b - b'0');
            }
            let den = 10u128.pow(frac.len() as u32);
            // num < 10^18 < 2^60 and unit < 2^60, so num * unit fits.
            value = value.checked_add(num.checked_mul(unit)? / den)?;
        }
        Some(value)
    }
}

/// Parses an rclone-style size into bytes: `4194304`, `10G`, `128M`,
/// `5MiB`, `1.5G`, `512K`, `100B`. Suffixes are binary (1K = 1024) and
/// case-insensitive; fractional bytes are rounded down.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let bad = || format!("invalid size '{s}': {SIZE_EXPECTED}");
    let number = Decimal::parse(number).ok_or_else(bad)?;
    let suffix = suffix.to_ascii_lowercase();
    let (letter, rest) = match suffix.chars().next() {
        Some(c) => suffix.split_at(c.len_utf8()),
        None => ("", ""),
    };
    let shift = match letter {
        "" | "b" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    let rest_ok = match letter {
        "" | "b" => rest.is_empty(),
        _ => matches!(rest, "" | "i" | "ib"),
    };
    if !rest_ok {
        return Err(bad());
    }
    let bytes = number
        .times(1u128 << shift)
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| format!("invalid size '{s}': too large"))?;
    Ok(bytes)
}

/// Parses a duration: a bare number is seconds (`90`, `1.5`); otherwise a
/// sequence of `<number><unit>` with units `ms`, `s`, `m`, `h`, `d`, `w`
/// (`90s`, `30m`, `1h30m`, `1.5h`, `500ms`, `1d`, `1w`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const NS: u128 = 1_000_000_000;
    let t = s.trim();
    let bad = || format!("invalid duration '{s}': {DURATION_EXPECTED}");
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = Decimal::parse(&rest[..n]).ok_or_else(bad)?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            // A bare number is only valid as the whole string.
            "" if total == 0 && n == t.len() => NS,
            "ms" => NS / 1000,
            "s" => NS,
            "m" => 60 * NS,
            "h" => 3600 * NS,
            "d" => 86_400 * NS,
            "w" => 604_800 * NS,
            _ => return Err(bad()),
        };
        rest = &rest[u..];
        total = number
            .times(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("invalid duration '{s}': too large"))?;
    }
    let secs =
        u64::try_from(total / NS).map_err(|_| format!("invalid duration '{s}': too large"))?;
    Ok(Duration::new(secs, (total % NS) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("4194304", 4_194_304),
            ("100B", 100),
            ("100b", 100),
            ("1K", 1024),
            ("512k", 512 * 1024),
            ("128M", 128 << 20),
            ("5MiB", 5 << 20),
            ("5Mi", 5 << 20),
            ("5mib", 5 << 20),
            ("10G", 10 << 30),
            ("10g", 10 << 30),
            ("1.5G", 1_610_612_736),
            ("0.5K", 512),
            (".5K", 512),
            ("1.3K", 1331),
            ("2T", 2 << 40),
            ("1P", 1 << 50),
            ("1PiB", 1 << 50),
            (" 64M ", 64 << 20),
            ("16383P", 16383 << 50),
        ];
        for (input, want) in cases {
            assert_eq!(parse_size(input), Ok(*want), "{input}");
        }
    }

    #[test]
    fn bad_sizes() {
        for input in [
            "", " ", "M", "-1", "off", "1.2.3", "10X", "10MB", "10KiBB", "10 M", "1e6", "ten",
            "5Bi", "1,5G", "0x10", "+5",
        ] {
            let err = parse_size(input).unwrap_err();
            assert!(err.contains("expected a size"), "{input}: {err}");
        }
        assert!(parse_size("16384P").unwrap_err().contains("too large"));
        assert!(parse_size("99999999999999999999999999999999999999999")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn durations() {
        let s = Duration::from_secs;
        let cases: &[(&str, Duration)] = &[
            ("0", s(0)),
            ("90", s(90)),
            ("1.5", Duration::from_millis(1500)),
            ("90s", s(90)),
            ("30m", s(1800)),
            ("1h", s(3600)),
            ("1h30m", s(5400)),
            ("1h30m15s", s(5415)),
            ("1.5h", s(5400)),
            ("500ms", Duration::from_millis(500)),
            ("1s500ms", Duration::from_millis(1500)),
            ("1d", s(86_400)),
            ("1w", s(604_800)),
            ("2w1d", s(15 * 86_400)),
            (" 4s ", s(4)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), Ok(*want), "{input}");
        }
    }

    #[test]
    fn bad_durations() {
        for input in [
            "", "s", "h1", "-1", "-1s", "1x", "1H", "1M", "1h 30m", "1.2.3s", "off", "1hm", "1h30",
            "ten",
        ] {
            let err = parse_duration(input).unwrap_err();
            assert!(err.contains("expected a duration"), "{input}: {err}");
        }
        assert!(parse_duration("99999999999999999999999w")
            .unwrap_err()
            .contains("too large"));
    }
}
