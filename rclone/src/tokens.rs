//! OAuth tokens that rclone refreshes, kept.
//!
//! rclone refreshes an expired OAuth token itself and writes the new one to
//! its config file; some providers (Box) rotate the refresh token on every
//! refresh, so a token that is not kept breaks the backend at the next
//! refresh. berth therefore gives every rclone child one shared config file
//! that holds only tokens, encrypted the way rclone encrypts config files
//! ([`crate::config_file`]) under a password derived from berth's master
//! key (`RCLONE_CONFIG_PASS` in the child's environment). Everything else
//! about a remote stays in the child's environment. rclone reloads the file
//! whenever it changed on disk and reads it again before it refreshes, so
//! children of the same backend (a mount, short-lived commands, a wrapper
//! over it) follow one chain of tokens.
//!
//! berth stays the owner of the token: [`TokenVault::newer`] tells whether
//! the file holds a refresh of the token the database holds, and the
//! service seals it into the database. Which token belongs in the file is
//! decided by a *lineage* per remote: the digest of the token berth last
//! placed there and of every refresh seen since. A child built with a token of the lineage leaves the file alone
//! (it is at or behind the file); a token outside it (a new one from the
//! API) replaces the file's. The lineages (digests only) persist beside the
//! file, so a restart finds the chain again. When a new token replaces the
//! file's, the old chain's latest token is remembered (in memory), so a
//! child still built from the old one (a credential check that failed, a
//! driver not yet replaced) puts it back instead of an outdated token.
//!
//! rclone and berth both rewrite the whole file (each by a rename); a write
//! that lands within the other's read-modify-write can be lost. rclone
//! writes only when it refreshed (about once an hour per remote).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config_file::{self, Ini};

/// How many digests of a chain are remembered.
const LINEAGE_LEN: usize = 64;
/// The option that holds an OAuth token.
const TOKEN: &str = "token";

/// The digest tokens are compared by in lineages (hex SHA-256).
fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether option `name = value` is an OAuth token rclone may refresh (a
/// JSON object under `token`).
pub(crate) fn is_oauth_token(name: &str, value: &str) -> bool {
    name == TOKEN && serde_json::from_str::<serde_json::Value>(value).is_ok_and(|v| v.is_object())
}

/// The digests of one remote's chain of tokens, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Lineage(VecDeque<String>);

impl Lineage {
    fn starting_at(digest: String) -> Lineage {
        Lineage(VecDeque::from([digest]))
    }

    fn contains(&self, digest: &str) -> bool {
        self.0.iter().any(|d| d == digest)
    }

    fn push(&mut self, digest: String) {
        self.0.push_back(digest);
        while self.0.len() > LINEAGE_LEN {
            self.0.pop_front();
        }
    }
}

#[derive(Default)]
struct State {
    /// Persisted: the chain each remote's token in the file belongs to.
    lineages: BTreeMap<String, Lineage>,
    /// In memory: the chain a new token replaced, and its latest token.
    replaced: HashMap<String, (Lineage, String)>,
    /// Modification time and length of the file when last polled.
    polled: Option<(SystemTime, u64)>,
}

/// The shared, encrypted token file of every rclone child.
pub struct TokenVault {
    config: PathBuf,
    lineages: PathBuf,
    password: String,
    key: [u8; 32],
    state: Mutex<State>,
}

impl fmt::Debug for TokenVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVault")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TokenVault {
    /// Opens (or starts) the vault in `dir`, created `0700`, with the file's
    /// password derived from `secret` (32 bytes only berth knows).
    pub fn open(dir: &Path, secret: &[u8; 32]) -> io::Result<TokenVault> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let password: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let vault = TokenVault {
            config: dir.join("rclone.conf"),
            lineages: dir.join("lineages.json"),
            key: config_file::key_for(&password),
            password,
            state: Mutex::new(State::default()),
        };
        let lineages = match std::fs::read(&vault.lineages) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(err) => return Err(err),
        };
        let any = !lineages.is_empty();
        vault.state.lock().expect("fresh lock").lineages = lineages;
        vault.read(any)?;
        Ok(vault)
    }

    /// The variables that point a child at the file.
    pub(crate) fn child_env(&self) -> [(String, String); 2] {
        [
            ("RCLONE_CONFIG".into(), self.config.display().to_string()),
            ("RCLONE_CONFIG_PASS".into(), self.password.clone()),
        ]
    }

    /// The file's password, to scrub from rclone's messages.
    pub(crate) fn password(&self) -> &str {
        &self.password
    }

    /// Makes sure the file holds the right token for `remote`, whose child
    /// was built with `token`: the file's when `token` is of its chain, the
    /// replaced chain's latest when `token` is of that one, `token` itself
    /// otherwise.
    pub(crate) fn stage(&self, remote: &str, token: &str) -> io::Result<()> {
        let digest = token_digest(token);
        let mut state = self.state.lock().expect("token vault lock");
        let mut ini = self.load(&mut state)?;
        let in_file = ini.get(remote, TOKEN).is_some();
        let current = state.lineages.get(remote).cloned();
        if in_file && current.as_ref().is_some_and(|l| l.contains(&digest)) {
            return Ok(());
        }
        let back = state
            .replaced
            .remove(remote)
            .filter(|(lineage, _)| lineage.contains(&digest));
        let (lineage, value) =
            back.unwrap_or_else(|| (Lineage::starting_at(digest), token.to_owned()));
        if let (Some(old), Some(old_token)) = (current, ini.get(remote, TOKEN)) {
            state
                .replaced
                .insert(remote.to_owned(), (old, old_token.to_owned()));
        }
        ini.set(remote, TOKEN, &value);
        self.write(&ini)?;
        state.lineages.insert(remote.to_owned(), lineage);
        self.save_lineages(&state)
    }

    /// Whether the file changed since the last call (a `stat`): when it
    /// did, [`newer`](Self::newer) may have something to say.
    pub fn changed(&self) -> bool {
        let mut state = self.state.lock().expect("token vault lock");
        let stamp = std::fs::metadata(&self.config)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        let changed = stamp != state.polled;
        state.polled = stamp;
        changed
    }

    /// For each `(remote, token)` the database holds, the token rclone
    /// refreshed from it (directly or after several refreshes), when the
    /// file holds one; in the same order, reading the file once. `None`
    /// when the file holds `token` itself, or a token of another chain (a
    /// newer token from the API replaced it).
    pub fn newer(&self, held: &[(String, &str)]) -> io::Result<Vec<Option<String>>> {
        let mut state = self.state.lock().expect("token vault lock");
        let ini = self.load(&mut state)?;
        Ok(held
            .iter()
            .map(|(remote, token)| {
                let in_file = ini.get(remote, TOKEN).filter(|t| t != token)?;
                let lineage = state.lineages.get(remote)?;
                lineage
                    .contains(&token_digest(token))
                    .then(|| in_file.to_owned())
            })
            .collect())
    }

    /// The file's contents, with what rclone wrote there added to the
    /// lineages.
    fn load(&self, state: &mut State) -> io::Result<Ini> {
        let ini = self.read(!state.lineages.is_empty())?;
        self.observe(state, &ini)?;
        Ok(ini)
    }

    /// Replaces the file with `ini`, sealed.
    fn write(&self, ini: &Ini) -> io::Result<()> {
        config_file::replace(&self.config, &config_file::seal(ini, &self.key))
    }

    /// Adds to each remote's lineage the token rclone wrote for it, if new.
    fn observe(&self, state: &mut State, ini: &Ini) -> io::Result<()> {
        let mut grew = false;
        for (remote, lineage) in state.lineages.iter_mut() {
            if let Some(token) = ini.get(remote, TOKEN) {
                let digest = token_digest(token);
                if !lineage.contains(&digest) {
                    lineage.push(digest);
                    grew = true;
                }
            }
        }
        if grew {
            self.save_lineages(state)?;
        }
        Ok(())
    }

    /// Drops `remote`'s token and chain (its backend is gone).
    pub fn forget(&self, remote: &str) -> io::Result<()> {
        let mut state = self.state.lock().expect("token vault lock");
        state.replaced.remove(remote);
        if state.lineages.remove(remote).is_none() {
            return Ok(());
        }
        let mut ini = self.read(true)?;
        ini.remove(remote);
        self.write(&ini)?;
        self.save_lineages(&state)
    }

    /// The file's contents. rclone replaces it by two renames (the old one
    /// away, the new one in): when the file should exist (`expected`: some
    /// token was placed there), a moment without it is waited out, so a
    /// read-modify-write never starts from nothing while the file exists.
    fn read(&self, expected: bool) -> io::Result<Ini> {
        let tries = if expected { 20 } else { 1 };
        for attempt in 1..=tries {
            match std::fs::read_to_string(&self.config) {
                Ok(text) => return config_file::open(&text, &self.key),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    if attempt < tries {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                Err(err) => return Err(err),
            }
        }
        Ok(Ini::default())
    }

    fn save_lineages(&self, state: &State) -> io::Result<()> {
        let json = serde_json::to_string(&state.lineages).map_err(io::Error::other)?;
        config_file::replace(&self.lineages, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = r#"{"access_token":"a0","refresh_token":"r0"}"#;
    const T1: &str = r#"{"access_token":"a1","refresh_token":"r1"}"#;
    const T2: &str = r#"{"access_token":"access-two","refresh_token":"refresh-two"}"#;
    const NEW: &str = r#"{"access_token":"n0","refresh_token":"n0"}"#;

    fn vault(dir: &Path) -> TokenVault {
        TokenVault::open(dir, &[7; 32]).unwrap()
    }

    /// [`TokenVault::newer`] for one remote.
    fn newer(vault: &TokenVault, remote: &str, token: &str) -> Option<String> {
        let mut found = vault.newer(&[(remote.to_owned(), token)]).unwrap();
        found.pop().unwrap()
    }

    fn in_file(vault: &TokenVault, remote: &str) -> Option<String> {
        vault
            .read(true)
            .unwrap()
            .get(remote, TOKEN)
            .map(str::to_owned)
    }

    /// What rclone does when it refreshed.
    fn rclone_refreshes(vault: &TokenVault, remote: &str, token: &str) {
        let mut ini = vault.read(true).unwrap();
        ini.set(remote, TOKEN, token);
        std::thread::sleep(Duration::from_millis(10));
        vault.write(&ini).unwrap();
    }

    #[test]
    fn refreshes_are_found_from_any_older_token_and_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        v.stage("b_1", T0).unwrap();
        assert_eq!(in_file(&v, "b_1").as_deref(), Some(T0));
        assert!(v.changed());
        assert!(!v.changed());
        assert_eq!(newer(&v, "b_1", T0), None);
        rclone_refreshes(&v, "b_1", T1);
        assert!(v.changed());
        assert_eq!(newer(&v, "b_1", T0).as_deref(), Some(T1));
        assert_eq!(newer(&v, "b_1", T1), None);
        // A child built from the stored token before or after the refresh
        // leaves the refreshed one in place.
        v.stage("b_1", T0).unwrap();
        v.stage("b_1", T1).unwrap();
        assert_eq!(in_file(&v, "b_1").as_deref(), Some(T1));
        rclone_refreshes(&v, "b_1", T2);
        drop(v);
        let v = vault(dir.path());
        assert_eq!(newer(&v, "b_1", T0).as_deref(), Some(T2));
        assert_eq!(newer(&v, "b_1", T1).as_deref(), Some(T2));
        assert_eq!(newer(&v, "b_1", NEW), None, "not of the chain");
        assert_eq!(newer(&v, "b_9", T0), None, "no such remote");
        v.stage("b_1", T1).unwrap();
        assert_eq!(in_file(&v, "b_1").as_deref(), Some(T2));
        let text = std::fs::read_to_string(&v.config).unwrap();
        assert!(!text.contains("refresh-two") && !text.contains("access-two"));
    }

    #[test]
    fn a_new_token_replaces_the_chain_and_the_old_chain_comes_back_for_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        v.stage("b_1", T0).unwrap();
        rclone_refreshes(&v, "b_1", T1);
        v.stage("b_2", T0).unwrap();
        // A credential check with a new token.
        v.stage("b_1", NEW).unwrap();
        assert_eq!(in_file(&v, "b_1").as_deref(), Some(NEW));
        // It failed: the live driver, built from T0, gets T1 back (T0 may
        // have been used up by the refresh).
        v.stage("b_1", T0).unwrap();
        assert_eq!(in_file(&v, "b_1").as_deref(), Some(T1));
        assert_eq!(newer(&v, "b_1", NEW), None);
        // Other remotes are untouched.
        assert_eq!(in_file(&v, "b_2").as_deref(), Some(T0));
        v.forget("b_1").unwrap();
        assert_eq!(in_file(&v, "b_1"), None);
        assert_eq!(in_file(&v, "b_2").as_deref(), Some(T0));
        v.stage("b_1", T2).unwrap();
        assert_eq!(in_file(&v, "b_1").as_deref(), Some(T2));
    }

    #[test]
    fn only_json_objects_under_token_are_oauth_tokens() {
        assert!(is_oauth_token("token", T0));
        assert!(!is_oauth_token("token", "plain-api-token"));
        assert!(!is_oauth_token("access_token", T0));
    }

    #[test]
    fn the_file_and_its_directory_are_berths_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("tokens");
        let v = vault(&home);
        v.stage("b_1", T0).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&home), 0o700);
        assert_eq!(mode(&v.config), 0o600);
        assert_eq!(mode(&v.lineages), 0o600);
        assert!(
            TokenVault::open(&home, &[8; 32]).is_err(),
            "wrong key opens"
        );
    }
}
