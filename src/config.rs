//! Configuration: compiled-in defaults (`config/default.toml`) < a file given
//! with `--config` < `BERTH_*` environment variables. Paths that default to the
//! data dir are resolved here, once.

use berth_storage::units::parse_duration;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// One layer of settings as written in a TOML file; absent keys keep the
/// lower layer's value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    listen: Option<String>,
    data_dir: Option<String>,
    database_url: Option<String>,
    mount_root: Option<String>,
    local_roots: Option<String>,
    jwt_secret: Option<String>,
    master_key_file: Option<String>,
    otlp_endpoint: Option<String>,
    log: Option<String>,
    rclone: Option<String>,
    #[serde(default, deserialize_with = "flag_text")]
    host_credentials: Option<String>,
    backends: Option<BackendsLayer>,
}

/// A flag written as a TOML boolean or (like its variable) as text.
fn flag_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    Ok(Option::<Flag>::deserialize(d)?.map(|flag| match flag {
        Flag::Bool(on) => on.to_string(),
        Flag::Text(text) => text,
    }))
}

fn flag(value: Option<String>, key: &str) -> Result<bool, String> {
    match non_empty(value)
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("false" | "0" | "no" | "off") => Ok(false),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some(other) => Err(format!("{key}: expected true or false, got '{other}'")),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendsLayer {
    probe_timeout: Option<String>,
    retry_base: Option<String>,
    retry_max: Option<String>,
}

/// The resolved settings the service runs with.
#[derive(Clone)]
pub struct Settings {
    /// Address to listen on.
    pub listen: String,
    /// Data directory (created on start).
    pub data_dir: PathBuf,
    /// Database URL (SQLite path or postgres URL).
    pub database_url: String,
    /// Root for FUSE mounts.
    pub mount_root: PathBuf,
    /// Directories local backends may expose.
    pub local_roots: Vec<PathBuf>,
    /// Explicit JWT secret; `None` means the generated file in the data dir.
    pub jwt_secret: Option<String>,
    /// Master key file.
    pub master_key_file: PathBuf,
    /// OTLP endpoint, if traces are exported.
    pub otlp_endpoint: Option<String>,
    /// Log filter.
    pub log: String,
    /// The rclone binary that serves providers without a native engine.
    pub rclone: PathBuf,
    /// Backends may use the host's own credentials and files anywhere.
    pub host_credentials: bool,
    /// Probe timeout for backends.
    pub probe_timeout: Duration,
    /// First retry delay for failed backends.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "database",
                &if self.database_url.starts_with("postgres") {
                    "postgres"
                } else {
                    "sqlite"
                },
            )
            .field("mount_root", &self.mount_root)
            .field("local_roots", &self.local_roots)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field("master_key_file", &self.master_key_file)
            .field("otlp_endpoint", &self.otlp_endpoint)
            .field("rclone", &self.rclone)
            .field("host_credentials", &self.host_credentials)
            .finish_non_exhaustive()
    }
}

fn parse_layer(text: &str, origin: &str) -> Result<Layer, String> {
    toml::from_str(text).map_err(|e| format!("{origin}: {e}"))
}

fn merge(base: &mut Layer, top: Layer) {
    macro_rules! take {
        ($($field:ident),*) => { $( if top.$field.is_some() { base.$field = top.$field; } )* };
    }
    take!(
        listen,
        data_dir,
        database_url,
        mount_root,
        local_roots,
        jwt_secret,
        master_key_file,
        otlp_endpoint,
        log,
        rclone,
        host_credentials
    );
    if let Some(top) = top.backends {
        let backends = base.backends.get_or_insert_with(BackendsLayer::default);
        if top.probe_timeout.is_some() {
            backends.probe_timeout = top.probe_timeout;
        }
        if top.retry_base.is_some() {
            backends.retry_base = top.retry_base;
        }
        if top.retry_max.is_some() {
            backends.retry_max = top.retry_max;
        }
    }
}

fn env_layer(env: &dyn Fn(&str) -> Option<String>) -> Layer {
    Layer {
        listen: env("BERTH_LISTEN"),
        data_dir: env("BERTH_DATA_DIR"),
        database_url: env("BERTH_DATABASE_URL"),
        mount_root: env("BERTH_MOUNT_ROOT"),
        local_roots: env("BERTH_LOCAL_ROOTS"),
        jwt_secret: env("BERTH_JWT_SECRET"),
        master_key_file: env("BERTH_MASTER_KEY_FILE"),
        otlp_endpoint: env("BERTH_OTLP_ENDPOINT"),
        log: env("BERTH_LOG"),
        rclone: env("BERTH_RCLONE"),
        host_credentials: env("BERTH_HOST_CREDENTIALS"),
        backends: Some(BackendsLayer {
            probe_timeout: env("BERTH_PROBE_TIMEOUT"),
            retry_base: env("BERTH_RETRY_BASE"),
            retry_max: env("BERTH_RETRY_MAX"),
        }),
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn duration(value: Option<String>, key: &str) -> Result<Duration, String> {
    let text = value.ok_or_else(|| format!("backends.{key} is missing"))?;
    parse_duration(&text).map_err(|e| format!("backends.{key}: {e}"))
}

impl Settings {
    /// Loads settings from the defaults, the optional file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, String> {
        Self::load_with(file, &|key| std::env::var(key).ok())
    }

    /// Like [`Settings::load`], reading variables through `env` (for tests).
    pub fn load_with(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, String> {
        let mut layer = parse_layer(DEFAULTS, "config/default.toml")?;
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            merge(&mut layer, parse_layer(&text, &path.display().to_string())?);
        }
        merge(&mut layer, env_layer(env));
        Self::resolve(layer)
    }

    fn resolve(layer: Layer) -> Result<Settings, String> {
        let data_dir = PathBuf::from(non_empty(layer.data_dir).unwrap_or_else(|| "./data".into()));
        let database_url = non_empty(layer.database_url)
            .unwrap_or_else(|| data_dir.join("berth.db").display().to_string());
        let mount_root =
            non_empty(layer.mount_root).map_or_else(|| data_dir.join("mounts"), PathBuf::from);
        let local_roots = match non_empty(layer.local_roots) {
            Some(list) => list
                .split(':')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect(),
            None => vec![data_dir.join("local")],
        };
        let master_key_file = non_empty(layer.master_key_file)
            .map_or_else(|| data_dir.join("master.key"), PathBuf::from);
        let backends = layer.backends.unwrap_or_default();
        Ok(Settings {
            listen: non_empty(layer.listen).unwrap_or_else(|| "127.0.0.1:8080".into()),
            database_url,
            mount_root,
            local_roots,
            jwt_secret: non_empty(layer.jwt_secret),
            master_key_file,
            otlp_endpoint: non_empty(layer.otlp_endpoint),
            log: non_empty(layer.log).unwrap_or_else(|| "info".into()),
            rclone: PathBuf::from(non_empty(layer.rclone).unwrap_or_else(|| "rclone".into())),
            host_credentials: flag(layer.host_credentials, "host_credentials")?,
            probe_timeout: duration(backends.probe_timeout, "probe_timeout")?,
            retry_base: duration(backends.retry_base, "retry_base")?,
            retry_max: duration(backends.retry_max, "retry_max")?,
            data_dir,
        })
    }

    /// Where the generated JWT secret lives when none is configured.
    pub fn jwt_secret_file(&self) -> PathBuf {
        self.data_dir.join("jwt.secret")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(file: Option<&Path>, vars: &[(&str, &str)]) -> Result<Settings, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_with(file, &|key| vars.get(key).cloned())
    }

    #[test]
    fn defaults_derive_paths_from_the_data_dir() {
        let s = load(None, &[]).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.database_url, "./data/berth.db");
        assert_eq!(s.mount_root, PathBuf::from("./data/mounts"));
        assert_eq!(s.local_roots, vec![PathBuf::from("./data/local")]);
        assert_eq!(s.master_key_file, PathBuf::from("./data/master.key"));
        assert_eq!(s.jwt_secret, None);
        assert_eq!(s.probe_timeout, Duration::from_secs(30));
        assert!(!s.host_credentials);
    }

    #[test]
    fn host_credentials_is_a_flag_in_files_and_variables() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(&file, "host_credentials = true\n").unwrap();
        assert!(load(Some(&file), &[]).unwrap().host_credentials);
        let off = [("BERTH_HOST_CREDENTIALS", "false")];
        assert!(!load(Some(&file), &off).unwrap().host_credentials);
        assert!(
            load(None, &[("BERTH_HOST_CREDENTIALS", "1")])
                .unwrap()
                .host_credentials
        );
        let err = load(None, &[("BERTH_HOST_CREDENTIALS", "maybe")]).unwrap_err();
        assert!(err.contains("host_credentials"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\ndata_dir = \"/srv/berth\"\n[backends]\nretry_max = \"1m\"\n").unwrap();
        let s = load(
            Some(&file),
            &[
                ("BERTH_LISTEN", "127.0.0.1:7000"),
                ("BERTH_LOCAL_ROOTS", "/a:/b"),
            ],
        )
        .unwrap();
        assert_eq!(s.listen, "127.0.0.1:7000");
        assert_eq!(s.data_dir, PathBuf::from("/srv/berth"));
        assert_eq!(s.mount_root, PathBuf::from("/srv/berth/mounts"));
        assert_eq!(
            s.local_roots,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(s.retry_max, Duration::from_secs(60));
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        assert!(load(Some(&file), &[]).unwrap_err().contains("lisen"));
        let err = load(None, &[("BERTH_PROBE_TIMEOUT", "soon")]).unwrap_err();
        assert!(err.contains("probe_timeout"), "{err}");
    }

    #[test]
    fn debug_hides_the_jwt_secret() {
        let s = load(None, &[("BERTH_JWT_SECRET", "hunter2-secret")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
