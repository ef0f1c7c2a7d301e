//! What wrapper backends reference: their `remote` or `upstreams` option,
//! parsed once ([`Upstreams`]) for the registry (which backends a wrapper
//! uses, [`references`]) and for the rclone engine, which writes the same
//! entries again with rclone's remote names ([`Upstreams::render`]).

use crate::{BackendDefinition, BackendLookup};
use berth_storage::catalog::Config;
use berth_storage::remote::{
    parse_combine_upstreams, parse_union_upstreams, CombineUpstream, Remote, UnionUpstream,
    UpstreamMode,
};
use berth_storage::{Result, StorageError};
use std::collections::VecDeque;

/// A wrapper's references as its config writes them.
pub(crate) enum Upstreams {
    /// `remote` of alias, chunker, hasher and cache.
    One(Remote),
    /// A union's `upstreams`, with their modes.
    Union(Vec<UnionUpstream>),
    /// A combine's `upstreams`, with their directories.
    Combine(Vec<CombineUpstream>),
}

fn text<'a>(config: &'a Config, key: &str) -> &'a str {
    config.get(key).and_then(|v| v.as_str()).unwrap_or_default()
}

impl Upstreams {
    /// The option of wrapper `slug` that holds its references and what it
    /// says; `None` for providers that are no wrapper.
    pub(crate) fn of(slug: &str, config: &Config) -> Option<(&'static str, Result<Upstreams>)> {
        let (option, parsed) = match slug {
            "alias" | "chunker" | "hasher" | "cache" => (
                "remote",
                Remote::parse(text(config, "remote")).map(Upstreams::One),
            ),
            "union" => (
                "upstreams",
                parse_union_upstreams("upstreams", text(config, "upstreams")).map(Upstreams::Union),
            ),
            "combine" => (
                "upstreams",
                parse_combine_upstreams("upstreams", text(config, "upstreams"))
                    .map(Upstreams::Combine),
            ),
            _ => return None,
        };
        Some((option, parsed.map_err(StorageError::invalid_config)))
    }

    /// Every remote, in the order written.
    pub(crate) fn remotes(&self) -> Vec<&Remote> {
        match self {
            Upstreams::One(remote) => vec![remote],
            Upstreams::Union(ups) => ups.iter().map(|u| &u.remote).collect(),
            Upstreams::Combine(ups) => ups.iter().map(|u| &u.remote).collect(),
        }
    }

    /// The option's value again with each remote replaced by its entry of
    /// `targets` (in the order of [`remotes`](Self::remotes)); union modes
    /// and combine directories are kept, and list entries holding spaces are
    /// quoted, as both berth and rclone read them.
    pub(crate) fn render(&self, targets: &[String]) -> String {
        let entries: Vec<String> = match self {
            Upstreams::One(_) => return targets.concat(),
            Upstreams::Union(ups) => ups
                .iter()
                .zip(targets)
                .map(|(u, target)| {
                    let suffix = match u.mode {
                        UpstreamMode::ReadWrite => "",
                        UpstreamMode::ReadOnly => ":ro",
                        UpstreamMode::NoCreate => ":nc",
                    };
                    format!("{target}{suffix}")
                })
                .collect(),
            Upstreams::Combine(ups) => ups
                .iter()
                .zip(targets)
                .map(|(u, target)| format!("{}={target}", u.dir))
                .collect(),
        };
        let quoted: Vec<String> = entries
            .into_iter()
            .map(|entry| {
                if entry.contains(char::is_whitespace) {
                    format!("\"{entry}\"")
                } else {
                    entry
                }
            })
            .collect();
        quoted.join(" ")
    }
}

/// The backends (names or ids) a wrapper's config references; empty for
/// everything else. Used by the registry to refuse deleting a referenced
/// backend and to refuse cycles.
pub fn references(slug: &str, config: &Config) -> Vec<String> {
    let Some((_, Ok(upstreams))) = Upstreams::of(slug, config) else {
        return Vec::new();
    };
    let mut names: Vec<String> = upstreams
        .remotes()
        .iter()
        .filter_map(|r| r.backend().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Every backend `slug`/`config` references, directly or through nested
/// wrappers, each once (by id): those it names first, then theirs. `NotFound` when one of
/// them does not exist.
pub(crate) fn referenced(
    slug: &str,
    config: &Config,
    backends: &dyn BackendLookup,
) -> Result<Vec<BackendDefinition>> {
    let mut found: Vec<BackendDefinition> = Vec::new();
    let mut pending = VecDeque::from(references(slug, config));
    while let Some(reference) = pending.pop_front() {
        let definition = backends.definition(&reference)?;
        if found.iter().all(|d| d.id != definition.id) {
            pending.extend(references(&definition.slug, &definition.config));
            found.push(definition);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(value: serde_json::Value) -> Config {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn references_of_wrappers() {
        assert_eq!(
            references("alias", &config(json!({"remote": "s3-prod:backups"}))),
            vec!["s3-prod"]
        );
        assert!(references("alias", &config(json!({"remote": "/srv/data"}))).is_empty());
        assert_eq!(
            references("union", &config(json!({"upstreams": "b:x a:y:ro b:z"}))),
            vec!["a", "b"]
        );
        assert_eq!(
            references("combine", &config(json!({"upstreams": "p=g:photos v=h:"}))),
            vec!["g", "h"]
        );
        assert!(references("s3", &config(json!({"remote": "x:y"}))).is_empty());
    }

    #[test]
    fn rendering_keeps_modes_directories_and_quotes() {
        let render = |slug: &str, value: &str, targets: &[&str]| {
            let written = config(json!({"remote": value, "upstreams": value}));
            let (_, parsed) = Upstreams::of(slug, &written).unwrap();
            let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
            parsed.unwrap().render(&targets)
        };
        assert_eq!(render("alias", "a:x y", &["b_1:x y"]), "b_1:x y");
        assert_eq!(
            render(
                "union",
                r#"a:x:ro "b:sp ace:nc" /srv"#,
                &["b_1:x", "b_2:sp ace", "/srv"]
            ),
            r#"b_1:x:ro "b_2:sp ace:nc" /srv"#
        );
        assert_eq!(
            render("combine", r#"p=a:x "my dir=b:""#, &["b_1:x", "b_2:"]),
            r#"p=b_1:x "my dir=b_2:""#
        );
    }
}
