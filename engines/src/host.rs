//! What a backend's config may reach on berth's own host, checked once for
//! every engine before anything is built. Some provider options name files
//! on the machine berth runs on (`service_account_file`, `key_file`, ...),
//! and some use the host's own cloud identity (`env_auth`, `use_msi`, an
//! AWS `profile`): an API caller must borrow neither. File options must name
//! a file inside the allowed local roots (`BERTH_LOCAL_ROOTS`, which a
//! `local` backend can read anyway); the host's identity is refused. An
//! operator running berth for one tenant turns both checks off with
//! `BERTH_HOST_CREDENTIALS=true`.

use berth_storage::catalog::Config;
use berth_storage::drivers::DriverEnv;
use berth_storage::{Result, StorageError};
use serde_json::Value;
use std::path::Path;

/// Options, in any provider, that name a file on the host.
const HOST_FILES: [&str; 9] = [
    "service_account_file",
    "service_principal_file",
    "client_certificate_path",
    "shared_credentials_file",
    "box_config_file",
    "sse_customer_key_file",
    "key_file",
    "pubkey_file",
    "known_hosts_file",
];

/// Flags that make a driver use the host's own identity.
const HOST_IDENTITY_FLAGS: [&str; 3] = ["env_auth", "use_msi", "use_az"];

fn text<'a>(config: &'a Config, key: &str) -> &'a str {
    config.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn enabled(config: &Config, key: &str) -> bool {
    match config.get(key) {
        Some(Value::Bool(on)) => *on,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn host_identity(field: &str, what: &str) -> StorageError {
    StorageError::invalid_config(format!(
        "{field}: {what} would use the credentials of the host berth runs on, which the service does not allow (BERTH_HOST_CREDENTIALS)"
    ))
}

/// Refuses what `config` of `slug` would take from the host.
pub(crate) fn check(slug: &str, config: &Config, env: &DriverEnv) -> Result<()> {
    if env.host_credentials {
        return Ok(());
    }
    if let Some(flag) = HOST_IDENTITY_FLAGS.iter().find(|f| enabled(config, f)) {
        return Err(host_identity(flag, "this option"));
    }
    if slug == "s3" && !text(config, "profile").is_empty() {
        return Err(host_identity(
            "profile",
            "a profile of the host's AWS config",
        ));
    }
    let mut files: Vec<&str> = HOST_FILES.to_vec();
    if slug == "oracleobjectstorage" {
        match text(config, "provider") {
            "" | "no_auth" => {}
            // Reads `config_file`, by default the host's `~/.oci/config`.
            "user_principal_auth" => files.push("config_file"),
            other => return Err(host_identity("provider", other)),
        }
    }
    for field in files {
        let path = text(config, field);
        if !path.is_empty() {
            env.confine(field, Path::new(path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(value: Value) -> Config {
        value.as_object().unwrap().clone()
    }

    fn env(root: &Path, host_credentials: bool) -> DriverEnv {
        DriverEnv {
            local_roots: vec![root.to_path_buf()],
            host_credentials,
        }
    }

    #[test]
    fn host_identity_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let denied = env(dir.path(), false);
        for (slug, body, field) in [
            ("s3", json!({"env_auth": true}), "env_auth"),
            ("azureblob", json!({"use_msi": "true"}), "use_msi"),
            ("s3", json!({"profile": "prod"}), "profile"),
            (
                "oracleobjectstorage",
                json!({"provider": "instance_principal_auth"}),
                "provider",
            ),
        ] {
            let err = check(slug, &config(body.clone()), &denied).unwrap_err();
            assert!(err.message.starts_with(field), "{}", err.message);
            assert!(err.message.contains("BERTH_HOST_CREDENTIALS"));
            check(slug, &config(body), &env(dir.path(), true)).unwrap();
        }
        check("s3", &config(json!({"env_auth": false})), &denied).unwrap();
        check(
            "oracleobjectstorage",
            &config(json!({"provider": "no_auth"})),
            &denied,
        )
        .unwrap();
    }

    #[test]
    fn host_files_must_lie_inside_the_local_roots() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("sa.json");
        std::fs::write(&inside, "{}").unwrap();
        let denied = env(dir.path(), false);
        let ok = config(json!({"service_account_file": inside}));
        check("google-cloud-storage", &ok, &denied).unwrap();
        for (slug, body, field) in [
            (
                "sftp",
                json!({"key_file": "/etc/ssh/ssh_host_ed25519_key"}),
                "key_file",
            ),
            (
                "oracleobjectstorage",
                json!({"provider": "user_principal_auth", "config_file": "~/.oci/config"}),
                "config_file",
            ),
            (
                "drive",
                json!({"service_account_file": dir.path().join("../x")}),
                "service_account_file",
            ),
        ] {
            let err = check(slug, &config(body.clone()), &denied).unwrap_err();
            assert!(err.message.starts_with(field), "{}", err.message);
            check(slug, &config(body), &env(dir.path(), true)).unwrap();
        }
    }
}
