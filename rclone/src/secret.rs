//! Removing secret values from anything berth returns or logs.

use std::fmt;

/// What a secret is replaced with.
pub(crate) const MASK: &str = "***";

/// A set of secret values to cut out of text (rclone's stderr, rc errors).
#[derive(Clone, Default)]
pub(crate) struct Scrubber {
    /// Longest first, so a secret that contains another goes whole.
    secrets: Vec<String>,
}

impl Scrubber {
    /// Scrubs every non-empty value of `secrets`.
    pub(crate) fn new<S: Into<String>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(Into::into)
            .filter(|s| !s.is_empty())
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Scrubber { secrets }
    }

    /// This set plus `extra`.
    pub(crate) fn with(&self, extra: &[&str]) -> Self {
        Scrubber::new(
            self.secrets
                .iter()
                .map(String::as_str)
                .chain(extra.iter().copied()),
        )
    }

    /// `text` with every secret replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        self.secrets
            .iter()
            .fold(text.to_owned(), |text, secret| text.replace(secret, MASK))
    }
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scrubber({} secrets)", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_occurrence_longest_first() {
        let s = Scrubber::new(["abc", "abcdef", ""]).with(&["zz"]);
        assert_eq!(s.scrub("x abcdef y abc zz"), "x *** y *** ***");
        assert_eq!(format!("{s:?}"), "Scrubber(3 secrets)");
    }
}
