//! References from wrapper backends to other storage: `name:path` (or
//! `id:path`) for another backend of the same org, or an absolute local path.
//! Parsed once here; the catalog validates with these parsers and the engine
//! resolves what they return.

use std::path::PathBuf;

/// Where a wrapper's upstream lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// Another backend (by name or id) and a path inside it (may be empty).
    Backend {
        /// The backend's name or id.
        backend: String,
        /// Path inside that backend, without leading or trailing `/`.
        path: String,
    },
    /// A directory on the server (must lie inside `BERTH_LOCAL_ROOTS`).
    Local(PathBuf),
}

/// How a union upstream may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamMode {
    /// Read and write (no suffix).
    ReadWrite,
    /// `:ro`: never written.
    ReadOnly,
    /// `:nc`: existing files may change, new files are never created there.
    NoCreate,
}

/// One entry of a union's `upstreams`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnionUpstream {
    /// The upstream.
    pub remote: Remote,
    /// Its mode.
    pub mode: UpstreamMode,
}

/// One entry of a combine's `upstreams`: a top-level directory and its upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CombineUpstream {
    /// Directory name at the root of the combined tree.
    pub dir: String,
    /// The upstream shown there.
    pub remote: Remote,
}

impl Remote {
    /// Parses `name:path` or an absolute path.
    pub fn parse(value: &str) -> Result<Remote, String> {
        let value = value.trim();
        if value.starts_with('/') {
            return Ok(Remote::Local(PathBuf::from(value)));
        }
        match value.split_once(':') {
            None => Err("Invalid remote specification: missing ':' separator".to_string()),
            Some((name, _)) if name.trim().is_empty() => {
                Err("Invalid remote specification: missing remote name before ':'".to_string())
            }
            Some((name, path)) => Ok(Remote::Backend {
                backend: name.trim().to_string(),
                path: path.trim_matches('/').to_string(),
            }),
        }
    }

    /// The backend this remote names, if it names one.
    pub fn backend(&self) -> Option<&str> {
        match self {
            Remote::Backend { backend, .. } => Some(backend),
            Remote::Local(_) => None,
        }
    }
}

/// Splits on whitespace outside double quotes; quotes are removed and empty
/// entries (`""`) dropped.
fn split_quoted(field: &str, value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if quoted {
        return Err(format!("Invalid {field}: unbalanced '\"'"));
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// Parses a union's `upstreams`: space-separated remotes, quoted when they
/// hold spaces, each optionally suffixed `:ro` or `:nc`.
pub fn parse_union_upstreams(field: &str, value: &str) -> Result<Vec<UnionUpstream>, String> {
    let entries = split_quoted(field, value)?;
    if entries.is_empty() {
        return Err(format!("{field} must contain at least one remote"));
    }
    entries
        .iter()
        .map(|entry| {
            let (spec, mode) = match (entry.strip_suffix(":ro"), entry.strip_suffix(":nc")) {
                (Some(rest), _) if rest.contains(':') || rest.starts_with('/') => {
                    (rest, UpstreamMode::ReadOnly)
                }
                (_, Some(rest)) if rest.contains(':') || rest.starts_with('/') => {
                    (rest, UpstreamMode::NoCreate)
                }
                _ => (entry.as_str(), UpstreamMode::ReadWrite),
            };
            let remote = Remote::parse(spec).map_err(|_| {
                format!(
                    "Invalid {field} entry '{entry}': expected 'remote:path' or an absolute path"
                )
            })?;
            Ok(UnionUpstream { remote, mode })
        })
        .collect()
}

/// Parses a combine's `upstreams`: `dir=remote:path` entries, quoted when they
/// hold spaces; directory names must be unique.
pub fn parse_combine_upstreams(field: &str, value: &str) -> Result<Vec<CombineUpstream>, String> {
    let entries = split_quoted(field, value)?;
    if entries.is_empty() {
        return Err(format!(
            "{field} must contain at least one entry in 'dir=remote:path' form"
        ));
    }
    let mut out: Vec<CombineUpstream> = Vec::with_capacity(entries.len());
    for entry in &entries {
        let invalid = || format!("Invalid {field} entry '{entry}': expected 'dir=remote:path'");
        let (dir, spec) = entry.split_once('=').ok_or_else(invalid)?;
        let dir = dir.trim().trim_matches('/');
        if dir.is_empty() || dir.contains('/') {
            return Err(invalid());
        }
        let remote = Remote::parse(spec).map_err(|_| invalid())?;
        if out.iter().any(|u| u.dir == dir) {
            return Err(format!("Invalid {field}: directory '{dir}' is used twice"));
        }
        out.push(CombineUpstream {
            dir: dir.to_string(),
            remote,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(name: &str, path: &str) -> Remote {
        Remote::Backend {
            backend: name.into(),
            path: path.into(),
        }
    }

    #[test]
    fn remotes() {
        assert_eq!(
            Remote::parse("s3-prod:backups/2025/").unwrap(),
            backend("s3-prod", "backups/2025")
        );
        assert_eq!(Remote::parse("myremote:").unwrap(), backend("myremote", ""));
        assert_eq!(
            Remote::parse("/local/path").unwrap(),
            Remote::Local("/local/path".into())
        );
        assert_eq!(
            Remote::parse("nocolon").unwrap_err(),
            "Invalid remote specification: missing ':' separator"
        );
        assert!(Remote::parse(":path").is_err());
    }

    #[test]
    fn quoted_split() {
        assert_eq!(
            split_quoted("u", r#"a:x "b:with space" c:"#).unwrap(),
            vec!["a:x", "b:with space", "c:"]
        );
        assert_eq!(split_quoted("u", "  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_quoted("u", r#""" a:"#).unwrap(), vec!["a:"]);
        assert!(split_quoted("u", r#"a:"b"#).is_err());
    }

    #[test]
    fn union_upstreams() {
        let parsed = parse_union_upstreams(
            "upstreams",
            r#"drive-a:photos:ro /srv/b "upstreamb:with space:nc" c:"#,
        )
        .unwrap();
        assert_eq!(
            parsed[0],
            UnionUpstream {
                remote: backend("drive-a", "photos"),
                mode: UpstreamMode::ReadOnly
            }
        );
        assert_eq!(parsed[1].remote, Remote::Local("/srv/b".into()));
        assert_eq!(
            parsed[2],
            UnionUpstream {
                remote: backend("upstreamb", "with space"),
                mode: UpstreamMode::NoCreate
            }
        );
        assert_eq!(parsed[3].mode, UpstreamMode::ReadWrite);
        assert_eq!(
            parse_union_upstreams("upstreams", " ").unwrap_err(),
            "upstreams must contain at least one remote"
        );
        assert!(parse_union_upstreams("upstreams", "drive-a:photos plain").is_err());
    }

    #[test]
    fn combine_upstreams() {
        let parsed = parse_combine_upstreams(
            "upstreams",
            r#"photos=gdrive:photos "my dir=remote:path with space""#,
        )
        .unwrap();
        assert_eq!(
            parsed[0],
            CombineUpstream {
                dir: "photos".into(),
                remote: backend("gdrive", "photos")
            }
        );
        assert_eq!(
            parsed[1],
            CombineUpstream {
                dir: "my dir".into(),
                remote: backend("remote", "path with space")
            }
        );
        assert!(parse_combine_upstreams("upstreams", "a=r: a=s:")
            .unwrap_err()
            .contains("twice"));
        assert!(parse_combine_upstreams("upstreams", "gdrive:photos").is_err());
        assert_eq!(
            parse_combine_upstreams("upstreams", "").unwrap_err(),
            "upstreams must contain at least one entry in 'dir=remote:path' form"
        );
    }
}
