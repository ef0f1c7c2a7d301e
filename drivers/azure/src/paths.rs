//! Storage paths on Azure: the first component is the container, the rest the
//! blob name with `/` as the directory delimiter.

use berth_storage::{normalize_path, ErrorKind, Result, StorageError};

/// Where a normalized path points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Loc {
    /// The account: the list of containers.
    Root,
    /// A whole container.
    Container(String),
    /// A blob (or directory prefix) inside a container.
    Blob { container: String, blob: String },
}

impl Loc {
    /// Parses `path` (normalizing it; `..` is refused).
    pub fn parse(path: &str) -> Result<(String, Loc)> {
        let path = normalize_path(path)?;
        let loc = match path.split_once('/') {
            None if path.is_empty() => Loc::Root,
            None => Loc::Container(path.clone()),
            Some((container, blob)) => Loc::Blob {
                container: container.to_string(),
                blob: blob.to_string(),
            },
        };
        Ok((path, loc))
    }
}

/// Checks a container name against Azure's rules: 3 to 63 lowercase letters,
/// digits and single hyphens, starting and ending with a letter or digit.
pub(crate) fn check_container_name(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let ok = (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(StorageError::new(
            ErrorKind::Unsupported,
            format!(
                "'{name}' cannot be an Azure container name: 3 to 63 lowercase letters, digits and single hyphens"
            ),
        ))
    }
}

/// Whether Azure would store `blob` under exactly this name: it drops a
/// trailing `.` of a path segment and reads `\` as `/`.
pub(crate) fn storable(blob: &str) -> bool {
    !blob.contains('\\') && !blob.split('/').any(|segment| segment.ends_with('.'))
}

/// Refuses a blob name Azure would change.
pub(crate) fn check_storable(path: &str, blob: &str) -> Result<()> {
    if storable(blob) {
        Ok(())
    } else {
        Err(StorageError::new(
            ErrorKind::Unsupported,
            format!(
                "{path}: Azure Blob cannot store names with a backslash or a segment ending in '.'"
            ),
        ))
    }
}

/// The parent directory of a blob name (`""` at the container root).
pub(crate) fn parent(blob: &str) -> &str {
    blob.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

/// The listing prefix of a directory blob name (`""` stays `""`).
pub(crate) fn dir_prefix(blob: &str) -> String {
    if blob.is_empty() {
        String::new()
    } else {
        format!("{blob}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(Loc::parse("/").unwrap(), (String::new(), Loc::Root));
        assert_eq!(Loc::parse("box/").unwrap().1, Loc::Container("box".into()));
        assert_eq!(
            Loc::parse("box//a/./b").unwrap(),
            (
                "box/a/b".to_string(),
                Loc::Blob {
                    container: "box".into(),
                    blob: "a/b".into()
                }
            )
        );
        assert_eq!(
            Loc::parse("box/../x").unwrap_err().kind,
            ErrorKind::Permission
        );
    }

    #[test]
    fn container_names() {
        for ok in ["abc", "a-b-c", "berth-123-4", &"a".repeat(63)] {
            check_container_name(ok).unwrap();
        }
        for bad in ["ab", "ABC", "-abc", "abc-", "a--b", "a_b", &"a".repeat(64)] {
            assert_eq!(
                check_container_name(bad).unwrap_err().kind,
                ErrorKind::Unsupported,
                "{bad}"
            );
        }
    }

    #[test]
    fn names_azure_would_change() {
        assert!(storable("a/b.txt"));
        assert!(storable("a+b=c&d%20.txt"));
        assert!(!storable("dir./x"));
        assert!(!storable("x."));
        assert!(!storable("a\\b"));
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(parent("c"), "");
        assert_eq!(dir_prefix("a/b"), "a/b/");
        assert_eq!(dir_prefix(""), "");
    }
}
