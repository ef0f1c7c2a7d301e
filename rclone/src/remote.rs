//! Remote definitions, and the environment that defines them for one child.
//!
//! rclone reads a remote `name` of type `t` with option `o = v` from
//! `RCLONE_CONFIG_NAME_TYPE=t` and `RCLONE_CONFIG_NAME_O=v` (upper case).
//! berth passes every remote that way, and nothing else of rclone's from its
//! own environment: no config file in clear on disk, no secret in argv. The
//! one exception are OAuth tokens, which go to berth's encrypted token file
//! ([`TokenVault`]) so that the tokens rclone refreshes are kept.

use std::ffi::{OsStr, OsString};

pub use berth_storage::catalog::RcloneOption;

use crate::obscure::obscure;
use crate::secret::Scrubber;
use crate::tokens::{is_oauth_token, TokenVault};
use crate::RcloneError;

/// Longest remote name berth accepts.
const MAX_NAME_LEN: usize = 64;

/// Constructors of [`RcloneOption`] (the catalog's type, which builds them
/// for providers) for remotes defined by hand.
pub mod option {
    use super::RcloneOption;

    /// A plain option.
    pub fn plain(name: impl Into<String>, value: impl Into<String>) -> RcloneOption {
        build(name, value, false, false)
    }

    /// A secret passed as is (keys, tokens).
    pub fn secret(name: impl Into<String>, value: impl Into<String>) -> RcloneOption {
        build(name, value, false, true)
    }

    /// A secret rclone wants obscured (passwords).
    pub fn obscured(name: impl Into<String>, value: impl Into<String>) -> RcloneOption {
        build(name, value, true, true)
    }

    fn build(
        name: impl Into<String>,
        value: impl Into<String>,
        obscure: bool,
        secret: bool,
    ) -> RcloneOption {
        RcloneOption {
            name: name.into(),
            value: value.into(),
            obscure,
            secret,
        }
    }
}

/// An obscured value is a secret even when the option does not say so.
fn is_secret(option: &RcloneOption) -> bool {
    option.secret || option.obscure
}

/// One rclone remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteDef {
    /// The name berth generated (`b_<hex>`): starts with a lower-case letter,
    /// then lower-case letters, digits and `_`, at most 64 characters.
    pub name: String,
    /// rclone's backend type (`s3`, `sftp`, `google cloud storage`, ...).
    pub rclone_type: String,
    /// Its options.
    pub options: Vec<RcloneOption>,
}

/// The remotes one rclone child needs: the backend's own, plus the upstreams
/// of a wrapper backend (union, crypt, ...), which refer to them by name.
#[derive(Debug, Clone)]
pub struct Remotes {
    main: RemoteDef,
    upstreams: Vec<RemoteDef>,
}

/// The `RCLONE_CONFIG_*` variables of a [`Remotes`] set and the secrets in them.
pub(crate) struct RemoteEnv {
    pub(crate) vars: Vec<(String, String)>,
    pub(crate) scrubber: Scrubber,
}

impl Remotes {
    /// Checks every name and value: names safe for variable names, unique,
    /// none a `_`-prefix of another (rclone could not tell `b_1` + option
    /// `x_type` from `b_1_x` + `type`), no NUL byte in any value.
    pub fn new(main: RemoteDef, upstreams: Vec<RemoteDef>) -> Result<Self, RcloneError> {
        let remotes = Remotes { main, upstreams };
        let all: Vec<&RemoteDef> = remotes.all().collect();
        for (i, remote) in all.iter().enumerate() {
            check_remote(remote)?;
            for other in &all[i + 1..] {
                let (a, b) = (&remote.name, &other.name);
                if a == b || a.starts_with(&format!("{b}_")) || b.starts_with(&format!("{a}_")) {
                    return Err(RcloneError::InvalidRemote(format!(
                        "remote names {a:?} and {b:?} collide in rclone's variables"
                    )));
                }
            }
        }
        Ok(remotes)
    }

    /// The name of the backend's own remote.
    pub fn main_name(&self) -> &str {
        &self.main.name
    }

    /// rclone's type of the backend's own remote.
    pub(crate) fn main_type(&self) -> &str {
        &self.main.rclone_type
    }

    /// `name:path` of the backend's own remote, as rclone's commands take it.
    pub(crate) fn target(&self, path: &str) -> String {
        format!("{}:{}", self.main.name, path)
    }

    fn all(&self) -> impl Iterator<Item = &RemoteDef> {
        std::iter::once(&self.main).chain(&self.upstreams)
    }

    /// The variables defining every remote (obscuring what needs it), and a
    /// scrubber for every secret value, in clear and as passed. With a
    /// `vault`, OAuth tokens go to its file instead, where rclone keeps the
    /// ones it refreshes; a token the vault cannot take stays in the
    /// environment (working, but its refreshes are lost), said in the log.
    pub(crate) fn env(&self, vault: Option<&TokenVault>) -> RemoteEnv {
        let mut vars = Vec::new();
        let mut secrets = Vec::new();
        let mut in_vault = false;
        for remote in self.all() {
            let prefix = format!("RCLONE_CONFIG_{}", remote.name.to_ascii_uppercase());
            vars.push((format!("{prefix}_TYPE"), remote.rclone_type.clone()));
            for option in &remote.options {
                if let Some(vault) = vault.filter(|_| is_oauth_token(&option.name, &option.value)) {
                    match vault.stage(&remote.name, &option.value) {
                        Ok(()) => {
                            secrets.push(option.value.clone());
                            in_vault = true;
                            continue;
                        }
                        Err(err) => tracing::warn!(
                            remote = %remote.name,
                            error = %err,
                            "could not keep the OAuth token in berth's rclone token file; tokens rclone refreshes now are lost"
                        ),
                    }
                }
                let value = if option.obscure {
                    obscure(&option.value)
                } else {
                    option.value.clone()
                };
                if is_secret(option) {
                    secrets.push(option.value.clone());
                    secrets.push(value.clone());
                }
                let name = option.name.to_ascii_uppercase();
                vars.push((format!("{prefix}_{name}"), value));
            }
        }
        if let Some(vault) = vault.filter(|_| in_vault) {
            secrets.push(vault.password().to_owned());
            vars.extend(vault.child_env());
        }
        RemoteEnv {
            vars,
            scrubber: Scrubber::new(secrets),
        }
    }
}

fn check_remote(remote: &RemoteDef) -> Result<(), RcloneError> {
    let invalid = |what: String| Err(RcloneError::InvalidRemote(what));
    let name = &remote.name;
    let name_ok = name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(is_name_byte);
    if !name_ok {
        return invalid(format!(
            "remote name {name:?} must be a lower-case letter then lower-case letters, digits or _ (at most {MAX_NAME_LEN})"
        ));
    }
    if remote.rclone_type.is_empty() || remote.rclone_type.contains('\0') {
        return invalid(format!("remote {name} has an empty or invalid type"));
    }
    for option in &remote.options {
        let option_ok = !option.name.is_empty() && option.name.bytes().all(is_name_byte);
        if !option_ok || option.name == "type" {
            return invalid(format!(
                "remote {name}: invalid option name {:?}",
                option.name
            ));
        }
        if option.value.contains('\0') {
            return invalid(format!(
                "remote {name}: option {} holds a NUL byte",
                option.name
            ));
        }
    }
    Ok(())
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

/// The child's environment: berth's own minus every `RCLONE_*` variable (a
/// user's remotes, flags, `RCLONE_CONFIG_PASS`, ...), plus `RCLONE_CONFIG`
/// set to `/dev/null`, which rclone takes as "configuration in memory only":
/// no config file is read or written.
pub(crate) fn base_env(
    parent: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = parent
        .into_iter()
        .filter(|(key, _)| !is_rclone_var(key))
        .collect();
    env.push(("RCLONE_CONFIG".into(), "/dev/null".into()));
    env
}

fn is_rclone_var(key: &OsStr) -> bool {
    key.as_encoded_bytes()
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"RCLONE_"))
}

#[cfg(test)]
mod tests {
    use super::option::{obscured, plain, secret};
    use super::*;

    fn remote(name: &str, options: Vec<RcloneOption>) -> RemoteDef {
        RemoteDef {
            name: name.into(),
            rclone_type: "sftp".into(),
            options,
        }
    }

    #[test]
    fn env_defines_each_remote_in_upper_case() {
        let remotes = Remotes::new(
            remote(
                "b_1a",
                vec![
                    plain("host", "example.org"),
                    obscured("pass", "hunter2"),
                    secret("key_pem", "-----BEGIN"),
                ],
            ),
            vec![RemoteDef {
                name: "b_2".into(),
                rclone_type: "local".into(),
                options: vec![],
            }],
        )
        .unwrap();
        let env = remotes.env(None);
        let get = |key: &str| {
            env.vars
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("RCLONE_CONFIG_B_1A_TYPE").as_deref(), Some("sftp"));
        assert_eq!(
            get("RCLONE_CONFIG_B_1A_HOST").as_deref(),
            Some("example.org")
        );
        assert_eq!(
            get("RCLONE_CONFIG_B_1A_KEY_PEM").as_deref(),
            Some("-----BEGIN")
        );
        assert_eq!(get("RCLONE_CONFIG_B_2_TYPE").as_deref(), Some("local"));
        let pass = get("RCLONE_CONFIG_B_1A_PASS").unwrap();
        assert_ne!(pass, "hunter2");
        assert_eq!(env.vars.len(), 5);
        let scrubbed = env
            .scrubber
            .scrub(&format!("hunter2 {pass} -----BEGIN example.org"));
        assert_eq!(scrubbed, "*** *** *** example.org");
        assert_eq!(remotes.target("dir/sub"), "b_1a:dir/sub");
    }

    #[test]
    fn debug_hides_secret_values() {
        let shown = format!(
            "{:?}",
            vec![
                plain("user", "alice"),
                secret("token", "tok-123"),
                obscured("pass", "pw-456"),
            ]
        );
        assert!(shown.contains("alice"), "{shown}");
        assert!(
            !shown.contains("tok-123") && !shown.contains("pw-456"),
            "{shown}"
        );
        assert_eq!(shown.matches("\"***\"").count(), 2, "{shown}");
    }

    #[test]
    fn rejects_names_unsafe_for_variables_and_collisions() {
        for bad in [
            "",
            "B_1",
            "1b",
            "b-1",
            "b 1",
            "b.1",
            "b:1",
            "é",
            &"b".repeat(65),
        ] {
            assert!(
                Remotes::new(remote(bad, vec![]), vec![]).is_err(),
                "{bad:?}"
            );
        }
        for bad_option in ["", "Pass", "pass-word", "type", "a b"] {
            let option = plain(bad_option, "v");
            assert!(
                Remotes::new(remote("b_1", vec![option]), vec![]).is_err(),
                "{bad_option:?}"
            );
        }
        let nul = secret("pass", "a\0b");
        assert!(Remotes::new(remote("b_1", vec![nul]), vec![]).is_err());
        assert!(Remotes::new(remote("b_1", vec![]), vec![remote("b_1", vec![])]).is_err());
        assert!(Remotes::new(remote("b_1", vec![]), vec![remote("b_1_x", vec![])]).is_err());
        assert!(Remotes::new(remote("b_1", vec![]), vec![remote("b_11", vec![])]).is_ok());
    }

    #[test]
    fn base_env_drops_every_rclone_variable() {
        let parent = [
            ("PATH", "/usr/bin"),
            ("RCLONE_CONFIG", "/home/u/.config/rclone/rclone.conf"),
            ("RCLONE_CONFIG_PASS", "config-password"),
            ("RCLONE_CONFIG_MINE_TYPE", "s3"),
            ("rclone_verbose", "2"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = base_env(parent);
        let keys: Vec<_> = env.iter().map(|(k, v)| format!("{k:?}={v:?}")).collect();
        assert_eq!(
            keys,
            [
                "\"PATH\"=\"/usr/bin\"",
                "\"HOME\"=\"/root\"",
                "\"RCLONE_CONFIG\"=\"/dev/null\""
            ]
        );
    }
}
