//! Backends served by rclone: every provider without a native engine,
//! those created with `"engine": "rclone"`, and wrappers over any of them.
//! The catalog turns the validated config into rclone's options
//! ([`Provider::rclone_options`]); the backend becomes one rclone remote,
//! defined in each rclone child's environment only, under a name derived
//! from the backend id, and served through [`RcloneStorage`]. A wrapper's
//! child also defines every backend the wrapper uses, directly or through
//! nested wrappers, each under its own name, and the wrapper's `remote` or
//! `upstreams` names them so.

use crate::upstreams::{self, Upstreams};
use crate::{host, BackendDefinition, BuildContext};
use berth_rclone::{option, Rclone, RcloneOption, RcloneStorage, RemoteDef, Remotes};
use berth_storage::catalog::{Config, Provider};
use berth_storage::drivers::LocalStorage;
use berth_storage::remote::Remote;
use berth_storage::{join_path, normalize_path, Result, Storage, StorageError};
use std::path::Path;
use std::sync::Arc;

/// Whether the backend itself chose rclone: it asked for it, or its provider
/// defaults to it (configs stored before the `engine` field existed have
/// none). Providers rclone cannot serve either go here too, to say why.
/// [`crate::served_by_rclone`] adds wrappers over such backends.
pub(crate) fn serves(provider: &Provider, config: &Config) -> bool {
    let chosen = config
        .get("engine")
        .and_then(|v| v.as_str())
        .or_else(|| provider.field("engine")?.default.as_str());
    chosen == Some("rclone") || provider.rclone_unavailable().is_some()
}

/// The rclone remote name of a backend: stable for its life, so rclone's
/// VFS cache of a mount finds its pending uploads again after a restart,
/// and its tokens are found in berth's token file.
pub fn remote_name(backend_id: &str) -> String {
    let safe: String = backend_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("b_{safe}")
}

/// The backend's remote definition and the path inside it that is the
/// backend's root.
struct RcloneSource {
    /// The remote and, for wrappers, the remotes of every backend they use.
    remotes: Remotes,
    /// Path inside the main remote the backend exposes (`""` for the whole).
    root: String,
    /// Secret values to cut out of rclone's messages.
    scrub: Vec<String>,
}

/// What `rclone mount` needs to mount a backend rclone serves.
pub struct RcloneMountSource {
    /// The rclone binary.
    pub rclone: Arc<Rclone>,
    /// The backend's remote (and its upstreams).
    pub remotes: Remotes,
    /// Path inside the main remote that is the backend's root.
    pub root: String,
}

/// One backend the rclone child defines: the one served, or one that it
/// uses (for wrappers).
struct Member<'a> {
    id: &'a str,
    provider: &'static Provider,
    rclone_type: &'static str,
    config: &'a Config,
    /// Path inside its remote that is the backend's root.
    root: String,
}

/// rclone's backend type for `provider`, or why rclone cannot serve it.
fn rclone_type(provider: &'static Provider) -> std::result::Result<&'static str, String> {
    let slug = provider.slug.as_str();
    if let Some(why) = provider.rclone_unavailable() {
        return Err(format!("provider '{slug}' cannot be served: {why}"));
    }
    match (slug, provider.rclone_type()) {
        // rclone's memory remote lives inside one rclone process, and berth
        // runs one per operation: nothing written would stay.
        ("memory", _) => {
            Err("memory cannot run in rclone (its data would live in one rclone process)".into())
        }
        (_, Some(rclone_type)) => Ok(rclone_type),
        (_, None) => Err(format!("provider '{slug}' has no rclone backend")),
    }
}

/// The path inside a backend's remote that is its root: the directory of a
/// `local` backend, which must stay inside the allowed local roots (checked
/// by the native driver's rules); the whole remote otherwise. rclone's
/// `copy_links` follows symlinks wherever they point (the native driver
/// only inside the root), so a local directory runs in rclone without it.
async fn root_of(provider: &Provider, config: &Config, ctx: &BuildContext<'_>) -> Result<String> {
    Ok(match provider.slug.as_str() {
        "local" if config.get("copy_links") == Some(&serde_json::Value::Bool(true)) => {
            return Err(StorageError::invalid_config(
                "copy_links: rclone would follow symlinks out of the root; a local directory with copy_links runs on the native engine only",
            ))
        }
        "local" => LocalStorage::from_config(config, &ctx.env.drivers)
            .await?
            .root()
            .display()
            .to_string(),
        _ => String::new(),
    })
}

/// A backend a wrapper uses, as a member of the wrapper's rclone child:
/// refused when rclone cannot serve it or it takes from the host what it
/// may not, with the error naming it.
async fn upstream<'a>(
    wrapper: &str,
    definition: &'a BackendDefinition,
    ctx: &BuildContext<'_>,
) -> Result<Member<'a>> {
    let shown = definition
        .config
        .get("name")
        .and_then(|v| v.as_str())
        .filter(|name| !name.is_empty())
        .unwrap_or(&definition.id);
    let named = |err: StorageError| {
        StorageError::new(
            err.kind,
            format!(
                "backend '{shown}' ({}), which this {wrapper} uses, cannot run in rclone: {}",
                definition.slug, err.message
            ),
        )
    };
    let member = async {
        let provider = crate::provider(&definition.slug)?;
        let rclone_type = rclone_type(provider).map_err(StorageError::unsupported)?;
        host::check(&definition.slug, &definition.config, &ctx.env.drivers)?;
        Ok(Member {
            id: &definition.id,
            provider,
            rclone_type,
            config: &definition.config,
            root: root_of(provider, &definition.config, ctx).await?,
        })
    };
    member.await.map_err(named)
}

/// Describes `provider`'s backend as an rclone remote, refusing what rclone
/// cannot serve for berth with a clear reason.
async fn source(
    provider: &'static Provider,
    config: &Config,
    ctx: &BuildContext<'_>,
) -> Result<RcloneSource> {
    let (mut defs, root) = definitions(provider, config, ctx).await?;
    let scrub = defs
        .iter()
        .flat_map(|def| &def.options)
        .filter(|o| o.secret && !o.value.is_empty())
        .map(|o| o.value.clone())
        .collect();
    let main = defs.remove(0);
    let remotes =
        Remotes::new(main, defs).map_err(|e| StorageError::invalid_config(e.to_string()))?;
    Ok(RcloneSource {
        remotes,
        root,
        scrub,
    })
}

/// The remotes of the child serving `provider`'s backend, its own first,
/// and the path inside it that is the backend's root. A wrapper's remote
/// names the backends it uses by their rclone remote names, and each of
/// them (and those they use in turn) follows, once.
async fn definitions(
    provider: &'static Provider,
    config: &Config,
    ctx: &BuildContext<'_>,
) -> Result<(Vec<RemoteDef>, String)> {
    let slug = provider.slug.as_str();
    let rclone_type = rclone_type(provider).map_err(|why| {
        let native = provider
            .field("engine")
            .is_some_and(|f| f.default.as_str() == Some("native"));
        let advice = if native { "; use engine native" } else { "" };
        StorageError::unsupported(format!("{why}{advice}"))
    })?;
    let used = upstreams::referenced(slug, config, ctx.backends)?;
    let mut members = vec![Member {
        id: ctx.backend_id,
        provider,
        rclone_type,
        config,
        root: root_of(provider, config, ctx).await?,
    }];
    for definition in &used {
        members.push(upstream(slug, definition, ctx).await?);
    }
    let mut defs = Vec::with_capacity(members.len());
    for member in &members {
        defs.push(remote_def(member, &members, ctx).await?);
    }
    Ok((defs, members.swap_remove(0).root))
}

/// The rclone remote of `member`: its options from the catalog, with a
/// wrapper's `remote`/`upstreams` naming rclone remotes of `members`.
async fn remote_def(
    member: &Member<'_>,
    members: &[Member<'_>],
    ctx: &BuildContext<'_>,
) -> Result<RemoteDef> {
    let mut options = member.provider.rclone_options(member.config);
    if let Some((option, upstreams)) = Upstreams::of(&member.provider.slug, member.config) {
        let upstreams = upstreams?;
        let mut targets = Vec::new();
        for remote in upstreams.remotes() {
            targets.push(target(remote, members, ctx).await?);
        }
        let value = upstreams.render(&targets);
        for o in options.iter_mut().filter(|o| o.name == option) {
            o.value.clone_from(&value);
        }
    }
    if member.provider.slug == "cache" {
        keep_cache_in_state(&mut options, &ctx.env.state_dir.join(member.id))?;
    }
    Ok(RemoteDef {
        name: remote_name(member.id),
        rclone_type: member.rclone_type.to_string(),
        options,
    })
}

/// A wrapper's remote in rclone's terms: `<remote name>:<root>/<path>` of
/// the backend it names, or the canonical form of a local directory, which
/// must lie inside the allowed local roots (as for the native wrapper).
async fn target(remote: &Remote, members: &[Member<'_>], ctx: &BuildContext<'_>) -> Result<String> {
    match remote {
        Remote::Backend { backend, path } => {
            let id = ctx.backends.definition(backend)?.id;
            let member = members
                .iter()
                .find(|m| m.id == id)
                .ok_or_else(|| StorageError::not_found(&format!("backend '{backend}'")))?;
            let path = normalize_path(path)?;
            let inside = match member.root.as_str() {
                "/" => format!("/{path}"),
                root => join_path(root, &path),
            };
            Ok(format!("{}:{inside}", remote_name(&id)))
        }
        Remote::Local(dir) => Ok(crate::open_local(dir, &ctx.env.drivers)
            .await?
            .root()
            .display()
            .to_string()),
    }
}

/// Options of rclone's `cache` naming directories on the server.
const CACHE_PATHS: [&str; 3] = ["chunk_path", "db_path", "tmp_upload_path"];

/// rclone's `cache` keeps its chunks and database in the backend's own state
/// directory, as berth's cache does: a path on the server is not the API
/// caller's to pick, so setting one is refused.
fn keep_cache_in_state(options: &mut Vec<RcloneOption>, state: &Path) -> Result<()> {
    if let Some(set) = options
        .iter()
        .find(|o| CACHE_PATHS.contains(&o.name.as_str()))
    {
        return Err(StorageError::invalid_config(format!(
            "{} cannot be set: the cache lives in the backend's own state directory",
            set.name
        )));
    }
    let dir = state.join("rclone-cache").display().to_string();
    options.extend(["chunk_path", "db_path"].map(|name| option::plain(name, dir.clone())));
    Ok(())
}

/// The rclone binary, or why a backend of `provider` cannot be served.
fn binary(provider: &Provider, ctx: &BuildContext<'_>) -> Result<Arc<Rclone>> {
    ctx.env.rclone.clone().map_err(|why| {
        StorageError::unsupported(format!(
            "provider '{}' is served by rclone, which is not available: {why}",
            provider.slug
        ))
    })
}

/// Builds the storage of a backend served by rclone.
pub(crate) async fn build(
    provider: &'static Provider,
    config: &Config,
    ctx: &BuildContext<'_>,
) -> Result<Arc<dyn Storage>> {
    let source = source(provider, config, ctx).await?;
    Ok(Arc::new(RcloneStorage::new(
        binary(provider, ctx)?,
        source.remotes,
        source.root,
        source.scrub,
    )))
}

/// What `rclone mount` needs for a backend rclone serves.
pub(crate) async fn mount_source(
    provider: &'static Provider,
    config: &Config,
    ctx: &BuildContext<'_>,
) -> Result<RcloneMountSource> {
    let source = source(provider, config, ctx).await?;
    Ok(RcloneMountSource {
        rclone: binary(provider, ctx)?,
        remotes: source.remotes,
        root: source.root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{served_by_rclone, BackendLookup, EngineEnv};
    use berth_storage::catalog::catalog;
    use berth_storage::drivers::DriverEnv;
    use berth_storage::ErrorKind;
    use serde_json::{json, Value};
    use std::collections::HashMap;
    use std::path::PathBuf;

    /// The id of the backend being defined.
    const OWN: &str = "00000000000000aa";

    /// Backends by name and id, with definitions only (nothing is built).
    struct Defined(HashMap<String, BackendDefinition>);

    impl BackendLookup for Defined {
        fn lookup(&self, name_or_id: &str) -> Result<Arc<dyn Storage>> {
            Err(StorageError::unsupported(format!(
                "{name_or_id}: these tests build nothing"
            )))
        }

        fn definition(&self, name_or_id: &str) -> Result<BackendDefinition> {
            self.0
                .get(name_or_id)
                .cloned()
                .ok_or_else(|| StorageError::not_found(&format!("backend '{name_or_id}'")))
        }
    }

    fn validated(slug: &str, body: Value) -> Config {
        catalog()
            .get(slug)
            .unwrap()
            .validate_create(&body)
            .unwrap_or_else(|e| panic!("{slug}: {e}"))
    }

    /// Local roots and state in a temp dir, and an org of backends: `dav`
    /// (webdav with a password), `loc` (local, `<root>/data`), `mem`
    /// (memory) and `mid` (a native union of `dav:` and `loc:sub`).
    struct Org {
        _dir: tempfile::TempDir,
        /// The canonical local root.
        root: PathBuf,
        env: EngineEnv,
        backends: Defined,
    }

    impl Org {
        fn new() -> Org {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("local");
            std::fs::create_dir_all(root.join("data/sub")).unwrap();
            let root = root.canonicalize().unwrap();
            let env = EngineEnv {
                drivers: DriverEnv {
                    local_roots: vec![root.clone()],
                    host_credentials: false,
                },
                state_dir: dir.path().join("state"),
                hashes: Arc::new(berth_layers::MemoryHashStore::new()),
                rclone: Err("rclone is not run here".into()),
            };
            let mut org = Org {
                _dir: dir,
                backends: Defined(HashMap::new()),
                root,
                env,
            };
            let data = org.root.join("data");
            org.add(
                "d0000000000000da",
                "dav",
                "webdav",
                json!({"url": "http://127.0.0.1:1", "user": "alice", "pass": "dav-Secret-1"}),
            );
            org.add("10000000000000c0", "loc", "local", json!({"root": data}));
            org.add("e0000000000000e0", "mem", "memory", json!({}));
            org.add(
                "f0000000000000f0",
                "mid",
                "union",
                json!({"upstreams": "dav: loc:sub"}),
            );
            org
        }

        fn add(&mut self, id: &str, name: &str, slug: &str, mut body: Value) {
            body["name"] = json!(name);
            let definition = BackendDefinition {
                id: id.into(),
                slug: slug.into(),
                config: validated(slug, body),
            };
            self.backends.0.insert(id.into(), definition.clone());
            self.backends.0.insert(name.into(), definition);
        }

        fn ctx(&self) -> BuildContext<'_> {
            BuildContext {
                backend_id: OWN,
                env: &self.env,
                backends: &self.backends,
            }
        }

        /// Whether a backend of `slug` with `body` is served by rclone.
        fn served(&self, slug: &str, body: Value) -> bool {
            served_by_rclone(slug, &validated(slug, body), &self.backends)
        }

        /// The remotes of a backend of `slug` with `body`.
        async fn define(&self, slug: &str, body: Value) -> Result<Vec<RemoteDef>> {
            let provider = catalog().get(slug).unwrap();
            let config = validated(slug, body);
            Ok(definitions(provider, &config, &self.ctx()).await?.0)
        }

        /// The remotes of a backend that must be defined.
        async fn defined(&self, slug: &str, body: Value) -> Vec<RemoteDef> {
            self.define(slug, body)
                .await
                .unwrap_or_else(|e| panic!("{slug}: {e}"))
        }

        fn at(&self, path: &str) -> String {
            self.root.join(path).display().to_string()
        }
    }

    fn value<'a>(def: &'a RemoteDef, option: &str) -> Option<&'a str> {
        def.options
            .iter()
            .find(|o| o.name == option)
            .map(|o| o.value.as_str())
    }

    fn names(defs: &[RemoteDef]) -> Vec<(&str, &str)> {
        defs.iter()
            .map(|d| (d.name.as_str(), d.rclone_type.as_str()))
            .collect()
    }

    #[tokio::test]
    async fn alias_names_the_backend_it_uses_and_defines_it() {
        let org = Org::new();
        let body = json!({"remote": "dav:share/x"});
        assert!(org.served("alias", body.clone()));
        let defs = org.defined("alias", body).await;
        assert_eq!(
            names(&defs),
            [
                ("b_00000000000000aa", "alias"),
                ("b_d0000000000000da", "webdav")
            ]
        );
        assert_eq!(
            value(&defs[0], "remote"),
            Some("b_d0000000000000da:share/x")
        );
        assert_eq!(value(&defs[1], "url"), Some("http://127.0.0.1:1"));
        let pass = defs[1].options.iter().find(|o| o.name == "pass").unwrap();
        assert!(pass.obscure && pass.secret);
        // Its secrets are scrubbed like the main remote's.
        let provider = catalog().get("alias").unwrap();
        let config = validated("alias", json!({"remote": "dav:share/x"}));
        let source = source(provider, &config, &org.ctx()).await.unwrap();
        assert_eq!(source.scrub, ["dav-Secret-1"]);
        assert_eq!(source.root, "");
    }

    #[tokio::test]
    async fn union_keeps_modes_quotes_and_confines_local_paths() {
        let org = Org::new();
        let upstreams = format!(
            r#"dav:a:ro {}:nc loc:sub "dav:with space""#,
            org.at("data/../data/sub")
        );
        let defs = org
            .defined("union", json!({ "upstreams": upstreams }))
            .await;
        assert_eq!(
            value(&defs[0], "upstreams").unwrap(),
            format!(
                r#"b_d0000000000000da:a:ro {}:nc b_10000000000000c0:{} "b_d0000000000000da:with space""#,
                org.at("data/sub"),
                org.at("data/sub")
            )
        );
        assert_eq!(
            names(&defs),
            [
                ("b_00000000000000aa", "union"),
                ("b_d0000000000000da", "webdav"),
                ("b_10000000000000c0", "local")
            ]
        );
        // Over native backends only, a union stays native, unless asked.
        assert!(!org.served("union", json!({"upstreams": "loc: mem:"})));
        assert!(org.served("union", json!({"upstreams": "loc:", "engine": "rclone"})));
    }

    #[tokio::test]
    async fn combine_keeps_directories() {
        let org = Org::new();
        let defs = org
            .defined(
                "combine",
                json!({"upstreams": r#"p=dav:photos "my dir=loc:""#}),
            )
            .await;
        assert_eq!(
            value(&defs[0], "upstreams").unwrap(),
            format!(
                r#"p=b_d0000000000000da:photos "my dir=b_10000000000000c0:{}""#,
                org.at("data")
            )
        );
        assert_eq!(defs.len(), 3);
    }

    #[tokio::test]
    async fn chunker_keeps_its_options() {
        let org = Org::new();
        let defs = org
            .defined("chunker", json!({"remote": "dav:big", "chunk_size": "64K"}))
            .await;
        assert_eq!(value(&defs[0], "remote"), Some("b_d0000000000000da:big"));
        assert_eq!(value(&defs[0], "chunk_size"), Some("65536B"));
        assert_eq!(
            value(&defs[0], "name_format"),
            Some("*.hoody-vfs_chunk.###")
        );
    }

    #[tokio::test]
    async fn nested_wrappers_are_defined_once_each() {
        let org = Org::new();
        let body = json!({"upstreams": "mid:x dav:"});
        assert!(org.served("union", body.clone()));
        let defs = org.defined("union", body).await;
        assert_eq!(
            value(&defs[0], "upstreams"),
            Some("b_f0000000000000f0:x b_d0000000000000da:")
        );
        assert_eq!(
            names(&defs),
            [
                ("b_00000000000000aa", "union"),
                ("b_d0000000000000da", "webdav"),
                ("b_f0000000000000f0", "union"),
                ("b_10000000000000c0", "local")
            ]
        );
        assert_eq!(
            value(&defs[2], "upstreams").unwrap(),
            format!(
                "b_d0000000000000da: b_10000000000000c0:{}",
                org.at("data/sub")
            )
        );
    }

    #[tokio::test]
    async fn backends_rclone_cannot_serve_are_refused_by_name() {
        let org = Org::new();
        let body = json!({"upstreams": "dav: mem:"});
        assert!(org.served("union", body.clone()));
        let err = org.define("union", body).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unsupported);
        assert!(
            err.message.starts_with("backend 'mem' (memory), which this union uses, cannot run in rclone: memory cannot run in rclone"),
            "{}",
            err.message
        );
        let own = org.define("memory", json!({"engine": "rclone"})).await;
        assert!(own.unwrap_err().message.ends_with("; use engine native"));
        let missing = org.define("alias", json!({"remote": "nope:"})).await;
        assert_eq!(missing.unwrap_err().kind, ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn local_paths_stay_inside_the_local_roots() {
        let org = Org::new();
        std::os::unix::fs::symlink(org.root.join("data"), org.root.join("link")).unwrap();
        let defs = org
            .defined(
                "alias",
                json!({"remote": org.at("link/sub"), "engine": "rclone"}),
            )
            .await;
        assert_eq!(value(&defs[0], "remote"), Some(org.at("data/sub").as_str()));
        for outside in ["/etc", &org.at("../..")] {
            let body = json!({"remote": outside, "engine": "rclone"});
            let err = org.define("alias", body).await.unwrap_err();
            assert!(
                err.message.contains("outside the allowed local roots"),
                "{}",
                err.message
            );
        }
        let body = json!({"remote": "loc:../..", "engine": "rclone"});
        let err = org.define("alias", body).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permission, "{}", err.message);
        // rclone's copy_links would follow symlinks out of the root.
        let body = json!({"root": org.at("data"), "copy_links": true, "engine": "rclone"});
        let err = org.define("local", body).await.unwrap_err();
        assert!(err.message.starts_with("copy_links"), "{}", err.message);
    }

    #[tokio::test]
    async fn rclone_cache_lives_in_the_state_directory() {
        let org = Org::new();
        let defs = org.defined("cache", json!({"remote": "dav:"})).await;
        let state = org.env.state_dir.join(OWN).join("rclone-cache");
        for option in ["chunk_path", "db_path"] {
            assert_eq!(
                value(&defs[0], option),
                Some(state.display().to_string().as_str())
            );
        }
        let body = json!({"remote": "dav:", "db_path": org.at("db")});
        let err = org.define("cache", body).await.unwrap_err();
        assert!(
            err.message.starts_with("db_path cannot be set"),
            "{}",
            err.message
        );
    }
}
