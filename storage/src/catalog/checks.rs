//! The extra per-field rules named by [`Check`]; messages follow the spec's
//! example errors where it shows one.

use super::Check;

/// Runs `check` on the stored string value of field `field`; the error is
/// the full user-facing message.
pub(super) fn run(check: Check, field: &str, value: &str) -> Result<(), String> {
    match check {
        Check::Name => name(field, value),
        Check::Remote => remote(value),
        Check::CombineUpstreams => combine_upstreams(field, value),
        Check::UnionUpstreams => union_upstreams(field, value),
        Check::ChunkNameFormat => chunk_name_format(field, value),
        Check::AbsolutePath => absolute_path(field, value),
    }
}

fn name(field: &str, value: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid {field}: must be 1-64 characters of a-z, 0-9, '_' and '-'"
        ))
    }
}

/// `name:path` with a non-empty name, or an absolute local path.
fn is_remote(value: &str) -> bool {
    value.starts_with('/')
        || value
            .split_once(':')
            .is_some_and(|(name, _)| !name.trim().is_empty())
}

fn remote(value: &str) -> Result<(), String> {
    let value = value.trim();
    if value.starts_with('/') {
        return Ok(());
    }
    match value.split_once(':') {
        None => Err("Invalid remote specification: missing ':' separator".to_string()),
        Some((name, _)) if name.trim().is_empty() => {
            Err("Invalid remote specification: missing remote name before ':'".to_string())
        }
        Some(_) => Ok(()),
    }
}

/// Splits on whitespace outside double quotes; quotes are removed and empty
/// entries (`""`) dropped.
fn split_quoted(field: &str, value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut in_token = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_token = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_token && !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                in_token = false;
            }
            c => {
                cur.push(c);
                in_token = true;
            }
        }
    }
    if quoted {
        return Err(format!("Invalid {field}: unbalanced '\"'"));
    }
    if in_token && !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn combine_upstreams(field: &str, value: &str) -> Result<(), String> {
    let entries = split_quoted(field, value)?;
    if entries.is_empty() {
        return Err(format!(
            "{field} must contain at least one entry in 'dir=remote:path' form"
        ));
    }
    let mut dirs = std::collections::HashSet::new();
    for entry in &entries {
        let ok = entry
            .split_once('=')
            .is_some_and(|(dir, r)| !dir.trim().is_empty() && is_remote(r));
        if !ok {
            return Err(format!(
                "Invalid {field} entry '{entry}': expected 'dir=remote:path'"
            ));
        }
        let dir = entry
            .split_once('=')
            .map(|(d, _)| d.trim().trim_matches('/'))
            .unwrap_or("");
        if !dirs.insert(dir.to_string()) {
            return Err(format!("Invalid {field}: directory '{dir}' is used twice"));
        }
    }
    Ok(())
}

fn union_upstreams(field: &str, value: &str) -> Result<(), String> {
    let entries = split_quoted(field, value)?;
    if entries.is_empty() {
        return Err(format!("{field} must contain at least one remote"));
    }
    match entries.iter().find(|e| !is_remote(e)) {
        Some(entry) => Err(format!(
            "Invalid {field} entry '{entry}': expected 'remote:path' or an absolute path"
        )),
        None => Ok(()),
    }
}

fn chunk_name_format(field: &str, value: &str) -> Result<(), String> {
    if value.matches('*').count() == 1 && value.contains('#') {
        Ok(())
    } else {
        Err(format!(
            "{field} must contain exactly one '*' and at least one '#'"
        ))
    }
}

fn absolute_path(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.starts_with('/') {
        Ok(())
    } else {
        Err(format!("Invalid {field}: must be an absolute path"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn remotes() {
        assert!(remote("s3-prod:backups/2025").is_ok());
        assert!(remote("myremote:").is_ok());
        assert!(remote("/local/path").is_ok());
        assert_eq!(
            remote("nocolon").unwrap_err(),
            "Invalid remote specification: missing ':' separator"
        );
        assert!(remote(":path").is_err());
    }

    #[test]
    fn upstreams() {
        assert!(
            combine_upstreams("upstreams", "photos=gdrive:photos videos=gdrive:videos").is_ok()
        );
        assert!(combine_upstreams("upstreams", r#""my dir=remote:path with space""#).is_ok());
        assert!(combine_upstreams("upstreams", "a=r: a=s:").is_err());
        assert!(combine_upstreams("upstreams", "gdrive:photos").is_err());
        assert!(union_upstreams("upstreams", "drive-a:photos /srv/b upstreamb:").is_ok());
        assert!(union_upstreams("upstreams", "drive-a:photos plain").is_err());
    }

    #[test]
    fn names_and_formats() {
        assert!(name("name", "s3-prod_2").is_ok());
        assert!(name("name", "S3").is_err());
        assert!(name("name", "").is_err());
        assert!(name("name", &"a".repeat(65)).is_err());
        assert!(chunk_name_format("name_format", "*.chunk.###").is_ok());
        assert!(chunk_name_format("name_format", "*.*.#").is_err());
        assert!(chunk_name_format("name_format", "chunk.#").is_err());
        assert!(chunk_name_format("name_format", "*.chunk").is_err());
        assert!(absolute_path("root", "").is_ok());
        assert!(absolute_path("root", "/srv").is_ok());
        assert!(absolute_path("root", "srv").is_err());
    }
}
