//! The extra per-field rules named by [`Check`]; messages follow the spec's
//! example errors where it shows one.

use super::Check;
use crate::remote::{parse_combine_upstreams, parse_union_upstreams, Remote};

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

fn remote(value: &str) -> Result<(), String> {
    Remote::parse(value).map(|_| ())
}

fn combine_upstreams(field: &str, value: &str) -> Result<(), String> {
    parse_combine_upstreams(field, value).map(|_| ())
}

fn union_upstreams(field: &str, value: &str) -> Result<(), String> {
    parse_union_upstreams(field, value).map(|_| ())
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
