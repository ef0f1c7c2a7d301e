//! Where a mount may go: always inside `BERTH_MOUNT_ROOT`, so no API call can
//! mount over `/etc`.

use std::path::{Component, Path, PathBuf};

/// Resolves the requested mount path against `root` (already canonical):
/// omitted -> `root/<id>`; relative -> under `root`; absolute -> must lie
/// inside `root` after resolving `..` and symlinks. The error names the field.
pub fn resolve_mount_path(
    root: &Path,
    requested: Option<&str>,
    id: &str,
) -> Result<PathBuf, String> {
    let requested = match requested.map(str::trim) {
        None | Some("") => return Ok(root.join(id)),
        Some(path) => path,
    };
    let joined = if Path::new(requested).is_absolute() {
        PathBuf::from(requested)
    } else {
        root.join(requested)
    };
    let resolved = resolve(&joined).ok_or_else(|| {
        format!("Invalid mount_path '{requested}': it climbs above the filesystem root")
    })?;
    if resolved == root || !resolved.starts_with(root) {
        return Err(format!(
            "Invalid mount_path '{requested}': must be inside the mount root {} (BERTH_MOUNT_ROOT)",
            root.display()
        ));
    }
    Ok(resolved)
}

/// Resolves `..`, `.` and symlinks of the existing part of `path`; the part
/// that does not exist yet is appended as written (it will be created).
fn resolve(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(name) => {
                let next = out.join(name);
                match std::fs::symlink_metadata(&next) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        // Follow the link, then go on with the rest.
                        let target = std::fs::canonicalize(&next).ok()?;
                        out = target;
                    }
                    _ => out = next,
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let id = "mount_0123";
        assert_eq!(resolve_mount_path(&root, None, id).unwrap(), root.join(id));
        assert_eq!(
            resolve_mount_path(&root, Some("photos/2025"), id).unwrap(),
            root.join("photos/2025")
        );
        let inside = root.join("a/../b");
        assert_eq!(
            resolve_mount_path(&root, Some(inside.to_str().unwrap()), id).unwrap(),
            root.join("b")
        );
        for bad in ["/etc", "../escape", "a/../../escape", "/", "."] {
            let err = resolve_mount_path(&root, Some(bad), id).unwrap_err();
            assert!(err.contains("mount_path"), "{bad}: {err}");
        }
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        assert!(resolve_mount_path(&root, Some("link/x"), id).is_err());
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("inner")).unwrap();
        assert_eq!(
            resolve_mount_path(&root, Some("inner/x"), id).unwrap(),
            root.join("real/x")
        );
    }
}
