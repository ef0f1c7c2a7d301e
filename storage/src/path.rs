//! Path helpers shared by drivers: one normal form for storage paths.

use crate::{ErrorKind, Result, StorageError};

/// Normalizes a storage path: strips leading/trailing `/`, collapses empty and
/// `.` components, and refuses `..` so no path can climb out of its root.
pub fn normalize_path(path: &str) -> Result<String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(StorageError::new(
                    ErrorKind::Permission,
                    format!("path '{path}' may not contain '..'"),
                ))
            }
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

/// Joins a directory and a name, treating `""` as the root.
pub fn join_path(dir: &str, name: &str) -> String {
    match (dir.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (_, true) => dir.to_string(),
        _ => format!("{dir}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_refuses_parent_components() {
        assert_eq!(normalize_path("/a//b/./c/").unwrap(), "a/b/c");
        assert_eq!(normalize_path("").unwrap(), "");
        assert_eq!(
            normalize_path("a/../b").unwrap_err().kind,
            ErrorKind::Permission
        );
    }

    #[test]
    fn joins_with_root() {
        assert_eq!(join_path("", "x"), "x");
        assert_eq!(join_path("a", "x"), "a/x");
        assert_eq!(join_path("a", ""), "a");
    }
}
