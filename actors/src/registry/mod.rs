//! The registry actor: the only door for routes. It owns the set of backends
//! (per org), starts one supervised [`BackendActor`] per backend, stores
//! configs sealed under the master key, and enforces the rules: names unique
//! per org, no credential change or delete while a backend is busy, other
//! orgs' backends invisible.

use crate::backend::{
    self, Adopt, BackendActor, BackendServices, BackendSpec, CheckCredentials, Disconnect, Probe,
    Rebuild,
};
use crate::book::{iso, ActorBook, ActorHealth};
use crate::directory::Directory;
use mounts::MountEntry;

mod mounts;
mod tokens;
use crate::error::RegistryError;
use crate::guard::guard;
use crate::state::BackendState;
use crate::Timing;
use actix::prelude::*;
use berth_db::{BackendRow, Db, DbError, MasterKey, MountRow};
use berth_engines::{references, served_by_rclone, BackendDefinition, EngineEnv};
use berth_storage::catalog::{catalog, Config, Provider};
use berth_storage::Swappable;
use chrono::{TimeZone, Utc};
#[cfg(test)]
pub use mounts::MountAddr;
pub use mounts::{CreateMount, DeleteMount, GetMount, ListMounts, MountView, PatchMount, Shutdown};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use tracing::{info_span, Span};

/// The actor kind and id of the registry in the actor book.
const KIND: &str = "registry";

/// What the registry needs from the service's configuration.
#[derive(Clone)]
pub struct RegistrySettings {
    /// The database.
    pub db: Db,
    /// The key sealing stored configs.
    pub key: Arc<MasterKey>,
    /// What engines need (local roots, state dir).
    pub env: EngineEnv,
    /// Probe timeout and retry policy.
    pub timing: Timing,
    /// The actor book shown at `/api/v1/health/actors`.
    pub book: ActorBook,
    /// Where mounts may go (canonical `BERTH_MOUNT_ROOT`).
    pub mount_root: PathBuf,
    /// Where mounts keep their caches, one directory per mount.
    pub cache_root: PathBuf,
    /// The runtime serving the data path of every mount.
    pub data_runtime: tokio::runtime::Handle,
}

/// What a backend is busy with; a busy backend refuses other changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Busy {
    Rotating,
}

struct BackendEntry {
    row: BackendRow,
    config: Config,
    addr: Addr<BackendActor>,
    busy: Option<Busy>,
    /// Backends (names or ids) this one's config references.
    references: Vec<String>,
}

/// A backend as the API shows it (config already redacted).
#[derive(Debug, Clone, PartialEq)]
pub struct BackendView {
    /// 16 lowercase hex characters.
    pub id: String,
    /// Optional unique name within the org.
    pub name: Option<String>,
    /// Provider slug.
    pub slug: String,
    /// The provider's backend type.
    pub backend_type: String,
    /// The `type` of the connect response (`object_storage`, `backend`, ...).
    pub response_type: String,
    /// `<backend_type>:<detail>`.
    pub server: String,
    /// The user the backend connects as, if any.
    pub user: String,
    /// Free text from the config.
    pub description: String,
    /// Lifecycle state name.
    pub state: String,
    /// Whether the backend is connected.
    pub connected: bool,
    /// The last probe error, if the backend is failing.
    pub last_error: Option<String>,
    /// Paths where it is mounted.
    pub mount_paths: Vec<String>,
    /// ISO 8601 creation time.
    pub created_at: String,
    /// ISO 8601 time of the last test, when known.
    pub last_used: Option<String>,
    /// The config with every secret value replaced by `***`.
    pub config: Config,
}

/// The outcome of a connection test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// Whether the probe succeeded.
    pub success: bool,
    /// What happened.
    pub message: String,
}

/// Connect a new backend from a validated config.
#[derive(Message)]
#[rtype(result = "Result<BackendView, RegistryError>")]
pub struct CreateBackend {
    /// Owning org.
    pub org: String,
    /// Provider slug (known to the catalog).
    pub slug: String,
    /// Config validated by the catalog.
    pub config: Config,
    /// The request span.
    pub span: Span,
}

/// List the org's backends.
#[derive(Message)]
#[rtype(result = "Vec<BackendView>")]
pub struct ListBackends {
    /// The caller's org.
    pub org: String,
}

/// One backend of the org.
#[derive(Message)]
#[rtype(result = "Result<BackendView, RegistryError>")]
pub struct GetBackend {
    /// The caller's org.
    pub org: String,
    /// Backend id.
    pub id: String,
}

/// Probe a backend now.
#[derive(Message)]
#[rtype(result = "Result<TestOutcome, RegistryError>")]
pub struct TestBackend {
    /// The caller's org.
    pub org: String,
    /// Backend id.
    pub id: String,
    /// The request span.
    pub span: Span,
}

/// Rotate credentials (the raw PUT body; the registry validates it against the
/// backend's provider). Answers whether anything changed.
#[derive(Message)]
#[rtype(result = "Result<bool, RegistryError>")]
pub struct UpdateCredentials {
    /// The caller's org.
    pub org: String,
    /// Backend id.
    pub id: String,
    /// The JSON body.
    pub body: serde_json::Value,
    /// The request span.
    pub span: Span,
}

/// Remove a backend and its stored credentials.
#[derive(Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct DeleteBackend {
    /// The caller's org.
    pub org: String,
    /// Backend id.
    pub id: String,
    /// The request span.
    pub span: Span,
}

/// The actor book as the org may see it.
#[derive(Message)]
#[rtype(result = "Vec<ActorHealth>")]
pub struct ActorHealthList {
    /// The caller's org.
    pub org: String,
}

/// The registry actor.
pub struct Registry {
    settings: RegistrySettings,
    backends: HashMap<String, BackendEntry>,
    /// Restored backends whose actors start in `started`.
    restored: Vec<(BackendRow, Config)>,
    /// (org, name) pairs held by creates still probing.
    reserved_names: HashSet<(String, String)>,
    /// Live storage of every backend, for wrappers and mounts.
    directory: Directory,
    /// Every mount, by id.
    mounts: HashMap<String, MountEntry>,
    /// Stored mounts whose actors start in `started`.
    restored_mounts: Vec<MountRow>,
    panic_cause: Option<String>,
}

fn provider_of(slug: &str) -> Result<&'static Provider, RegistryError> {
    catalog().get(slug).ok_or_else(|| {
        RegistryError::Internal(format!("provider '{slug}' is missing from the catalog"))
    })
}

fn config_text(config: &Config, key: &str) -> String {
    config
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

fn name_of(config: &Config) -> Option<String> {
    Some(config_text(config, "name")).filter(|name| !name.is_empty())
}

/// What the directory keeps of a backend for wrappers served by rclone.
fn definition_of(row: &BackendRow, config: &Config) -> BackendDefinition {
    BackendDefinition {
        id: row.id.clone(),
        slug: row.slug.clone(),
        config: config.clone(),
    }
}

/// How messages name a backend: its name, or its id when it has none.
fn shown(entry: &BackendEntry) -> &str {
    entry.row.name.as_deref().unwrap_or(&entry.row.id)
}

fn iso_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(iso)
        .unwrap_or_default()
}

fn db_error(err: DbError) -> RegistryError {
    match err {
        DbError::Conflict(message) => RegistryError::Conflict(message),
        other => {
            tracing::error!(error = %other, "database error");
            RegistryError::Internal("Internal server error".to_string())
        }
    }
}

type Reply<T> = ResponseActFuture<Registry, Result<T, RegistryError>>;

fn ready<T: 'static>(result: Result<T, RegistryError>) -> Reply<T> {
    Box::pin(fut::ready(result))
}

impl Registry {
    /// Loads every stored backend and opens its sealed config. Fails when a
    /// config cannot be opened with `settings.key` (a wrong master key must
    /// not silently drop backends).
    pub fn load(settings: RegistrySettings) -> Result<Registry, String> {
        let rows = settings
            .db
            .list_backends()
            .map_err(|e| format!("cannot read backends: {e}"))?;
        let mut restored = Vec::with_capacity(rows.len());
        for row in rows {
            let plain = settings
                .key
                .open(&row.sealed_config, row.id.as_bytes())
                .map_err(|e| {
                    format!(
                        "stored backend {} cannot be opened with the master key: {e}",
                        row.id
                    )
                })?;
            let config: Config = serde_json::from_slice(&plain)
                .map_err(|e| format!("stored backend {} has an unreadable config: {e}", row.id))?;
            restored.push((row, config));
        }
        let restored_mounts = settings
            .db
            .list_mounts()
            .map_err(|e| format!("cannot read mounts: {e}"))?;
        Ok(Registry {
            settings,
            backends: HashMap::new(),
            restored,
            reserved_names: HashSet::new(),
            directory: Directory::default(),
            mounts: HashMap::new(),
            restored_mounts,
            panic_cause: None,
        })
    }

    fn services(&self) -> BackendServices {
        BackendServices {
            db: self.settings.db.clone(),
            book: self.settings.book.clone(),
            env: self.settings.env.clone(),
            timing: self.settings.timing,
        }
    }
    fn start_backend(
        &self,
        row: &BackendRow,
        config: &Config,
        state: BackendState,
        probe_on_start: bool,
        handle: Arc<Swappable>,
    ) -> Addr<BackendActor> {
        let spec = BackendSpec {
            id: row.id.clone(),
            org: row.org.clone(),
            slug: row.slug.clone(),
            config: config.clone(),
            state,
            probe_on_start,
            handle,
            lookup: self.directory.for_org(&row.org),
        };
        let services = self.services();
        Supervisor::start(move |_| BackendActor::new(spec, services))
    }

    /// Refuses references to backends the org does not have, and cycles.
    fn check_references(
        &self,
        org: &str,
        name: Option<&str>,
        refs: &[String],
    ) -> Result<(), RegistryError> {
        for reference in refs {
            if Some(reference.as_str()) == name {
                return Err(RegistryError::Invalid(format!(
                    "Backend '{reference}' cannot reference itself (reference cycle)"
                )));
            }
            if !self.directory.contains(org, reference) {
                return Err(RegistryError::Invalid(format!(
                    "Invalid remote specification: backend '{reference}' does not exist"
                )));
            }
        }
        // Stored references always point at existing backends and the new
        // backend is referenced by nobody yet, so the walk can only meet it
        // through its name; walk anyway so the invariant is checked, not assumed.
        let mut stack: Vec<&str> = refs.iter().map(String::as_str).collect();
        let mut seen = HashSet::new();
        while let Some(key) = stack.pop() {
            if Some(key) == name {
                return Err(RegistryError::Invalid(format!(
                    "Backend references form a cycle through '{key}'"
                )));
            }
            if let Some(entry) = self.entry_by_key(org, key) {
                if seen.insert(entry.row.id.as_str()) {
                    stack.extend(entry.references.iter().map(String::as_str));
                }
            }
        }
        Ok(())
    }

    fn entry_by_key(&self, org: &str, key: &str) -> Option<&BackendEntry> {
        self.backends
            .values()
            .find(|e| e.row.org == org && (e.row.id == key || e.row.name.as_deref() == Some(key)))
    }

    /// The backends of the org whose config references `entry`.
    fn referrers_of<'a>(
        &'a self,
        entry: &'a BackendEntry,
    ) -> impl Iterator<Item = &'a BackendEntry> {
        self.backends.values().filter(|other| {
            other.row.org == entry.row.org
                && other.row.id != entry.row.id
                && other
                    .references
                    .iter()
                    .any(|r| *r == entry.row.id || Some(r.as_str()) == entry.row.name.as_deref())
        })
    }

    /// The wrappers served by rclone that use `entry`, directly or through
    /// other wrappers: each defines `entry` in its own rclone children, from
    /// the definition it found when it was built.
    fn rclone_users_of<'a>(&'a self, entry: &'a BackendEntry) -> Vec<&'a BackendEntry> {
        let mut users: Vec<&BackendEntry> = Vec::new();
        let mut pending = vec![entry];
        while let Some(used) = pending.pop() {
            for user in self.referrers_of(used) {
                if users.iter().all(|u| u.row.id != user.row.id) {
                    users.push(user);
                    pending.push(user);
                }
            }
        }
        let lookup = self.directory.for_org(&entry.row.org);
        users.retain(|u| served_by_rclone(&u.row.slug, &u.config, &lookup));
        users
    }

    /// 409 while a wrapper served by rclone that uses `entry` is mounted:
    /// its `rclone mount` child keeps `entry`'s credentials for its life.
    fn refuse_if_rclone_user_mounted(&self, entry: &BackendEntry) -> Result<(), RegistryError> {
        match self
            .rclone_users_of(entry)
            .into_iter()
            .find(|user| self.is_mounted(&user.row.id))
        {
            Some(user) => Err(RegistryError::Conflict(format!(
                "Backend is used by backend '{}' ({}), which rclone serves and which is mounted; unmount it first",
                shown(user),
                user.row.backend_type
            ))),
            None => Ok(()),
        }
    }

    fn find(&self, org: &str, id: &str) -> Result<&BackendEntry, RegistryError> {
        self.backends
            .get(id)
            .filter(|entry| entry.row.org == org)
            .ok_or_else(RegistryError::backend_not_found)
    }

    fn find_mut(&mut self, org: &str, id: &str) -> Result<&mut BackendEntry, RegistryError> {
        self.backends
            .get_mut(id)
            .filter(|entry| entry.row.org == org)
            .ok_or_else(RegistryError::backend_not_found)
    }

    fn name_taken(&self, org: &str, name: &str) -> bool {
        self.reserved_names
            .contains(&(org.to_string(), name.to_string()))
            || self
                .backends
                .values()
                .any(|e| e.row.org == org && e.row.name.as_deref() == Some(name))
    }

    fn fresh_id(&self) -> String {
        loop {
            let id = hex::encode(rand::random::<[u8; 8]>());
            if !self.backends.contains_key(&id) {
                return id;
            }
        }
    }

    fn view(&self, entry: &BackendEntry) -> BackendView {
        let row = &entry.row;
        let health = self.settings.book.get(backend::KIND, &row.id);
        let state = health
            .as_ref()
            .map_or_else(|| row.state.clone(), |h| h.state.clone());
        let last_error = health
            .and_then(|h| h.last_error)
            .filter(|_| state != "connected");
        let (response_type, config) = match catalog().get(&row.slug) {
            Some(provider) => (
                provider.response_type.clone(),
                provider.redact(&entry.config),
            ),
            None => (String::new(), Config::new()),
        };
        BackendView {
            id: row.id.clone(),
            name: row.name.clone(),
            slug: row.slug.clone(),
            backend_type: row.backend_type.clone(),
            response_type,
            server: row.server.clone(),
            user: row.user_name.clone(),
            description: row.description.clone(),
            connected: state == "connected",
            state,
            last_error,
            mount_paths: self.mount_paths_of(&row.id),
            created_at: iso_ms(row.created_at_ms),
            last_used: row.last_used_ms.map(iso_ms),
            config,
        }
    }

    /// Runs a handler body, turning a panic into a restart of the registry.
    fn guarded<T>(
        &mut self,
        ctx: &mut Context<Self>,
        body: impl FnOnce(&mut Self, &mut Context<Self>) -> Reply<T>,
    ) -> Reply<T>
    where
        T: 'static,
    {
        match guard(|| body(self, ctx)) {
            Ok(reply) => reply,
            Err(panic) => {
                tracing::error!(%panic, "registry panicked; restarting");
                self.panic_cause = Some(panic);
                // Stop only once the error is answered: stopping first would
                // drop the reply and leave the caller a closed mailbox.
                Box::pin(fut::ready(()).map(|(), _act, ctx: &mut Context<Self>| {
                    ctx.stop();
                    Err(RegistryError::Internal("Internal server error".to_string()))
                }))
            }
        }
    }

    fn create(&mut self, msg: CreateBackend) -> Reply<BackendView> {
        let provider = match provider_of(&msg.slug) {
            Ok(provider) => provider,
            Err(err) => return ready(Err(err)),
        };
        let name = name_of(&msg.config);
        let refs = references(&provider.slug, &msg.config);
        if let Err(err) = self.check_references(&msg.org, name.as_deref(), &refs) {
            return ready(Err(err));
        }
        if let Some(name) = &name {
            if self.name_taken(&msg.org, name) {
                return ready(Err(RegistryError::Conflict(format!(
                    "A backend named '{name}' already exists"
                ))));
            }
            self.reserved_names.insert((msg.org.clone(), name.clone()));
        }
        let row = BackendRow {
            id: self.fresh_id(),
            org: msg.org.clone(),
            name: name.clone(),
            slug: provider.slug.clone(),
            backend_type: provider.backend_type.clone(),
            server: provider.server(&msg.config),
            user_name: provider.user(&msg.config),
            description: config_text(&msg.config, "description"),
            state: BackendState::Connected.as_str().to_string(),
            last_error: None,
            sealed_config: Vec::new(),
            created_at_ms: Utc::now().timestamp_millis(),
            last_used_ms: None,
        };
        let handle = Swappable::new(name.clone().unwrap_or_else(|| row.id.clone()));
        let addr = self.start_backend(
            &row,
            &msg.config,
            BackendState::Connecting { attempt: 0 },
            false,
            handle.clone(),
        );
        let config = msg.config;
        let probe = addr.send(Probe { span: msg.span });
        Box::pin(
            fut::wrap_future::<_, Self>(probe).map(move |outcome, act, _ctx| {
                if let Some(name) = &name {
                    act.reserved_names.remove(&(row.org.clone(), name.clone()));
                }
                let result = match outcome {
                    Ok(Ok(())) => act.store_new(row, config, addr.clone(), handle, refs),
                    Ok(Err(err)) => Err(RegistryError::ProbeFailed(
                        provider.scrub(&config, &err.message),
                    )),
                    Err(mailbox) => Err(RegistryError::Internal(format!(
                        "backend actor unavailable: {mailbox}"
                    ))),
                };
                if result.is_err() {
                    addr.do_send(Disconnect);
                }
                result
            }),
        )
    }

    fn store_new(
        &mut self,
        mut row: BackendRow,
        config: Config,
        addr: Addr<BackendActor>,
        handle: Arc<Swappable>,
        references: Vec<String>,
    ) -> Result<BackendView, RegistryError> {
        let plain =
            serde_json::to_vec(&config).map_err(|e| RegistryError::Internal(e.to_string()))?;
        row.sealed_config = self.settings.key.seal(&plain, row.id.as_bytes());
        self.settings.db.insert_backend(&row).map_err(db_error)?;
        self.directory.insert(
            &row.org,
            row.name.as_deref(),
            handle,
            definition_of(&row, &config),
        );
        let id = row.id.clone();
        self.backends.insert(
            id.clone(),
            BackendEntry {
                row,
                config,
                addr,
                busy: None,
                references,
            },
        );
        // Its probe may have refreshed the token already.
        self.keep_refreshed_token(&id);
        Ok(self.view(&self.backends[&id]))
    }

    fn test(&mut self, msg: TestBackend) -> Reply<TestOutcome> {
        let entry = match self.find(&msg.org, &msg.id) {
            Ok(entry) => entry,
            Err(err) => return ready(Err(err)),
        };
        let (id, slug, config) = (
            entry.row.id.clone(),
            entry.row.slug.clone(),
            entry.config.clone(),
        );
        let probe = entry.addr.send(Probe { span: msg.span });
        Box::pin(
            fut::wrap_future::<_, Self>(probe).map(move |outcome, act, _ctx| {
                let now = Utc::now().timestamp_millis();
                if let Some(entry) = act.backends.get_mut(&id) {
                    entry.row.last_used_ms = Some(now);
                    if let Err(err) = act.settings.db.touch_backend(&id, now) {
                        tracing::error!(backend = %id, error = %err, "could not record last use");
                    }
                }
                let scrub = |text: &str| {
                    provider_of(&slug).map_or_else(|_| text.to_string(), |p| p.scrub(&config, text))
                };
                Ok(match outcome {
                    Ok(Ok(())) => TestOutcome {
                        success: true,
                        message: "Connection successful".into(),
                    },
                    Ok(Err(err)) => TestOutcome {
                        success: false,
                        message: scrub(&err.message),
                    },
                    Err(mailbox) => TestOutcome {
                        success: false,
                        message: format!("backend actor unavailable: {mailbox}"),
                    },
                })
            }),
        )
    }

    fn update(&mut self, msg: UpdateCredentials) -> Reply<bool> {
        if let Err(err) = self.find(&msg.org, &msg.id).and_then(|entry| {
            self.refuse_if_mounted(&msg.id)?;
            self.refuse_if_rclone_user_mounted(entry)
        }) {
            return ready(Err(err));
        }
        let entry = match self.find_mut(&msg.org, &msg.id) {
            Ok(entry) => entry,
            Err(err) => return ready(Err(err)),
        };
        if entry.busy.is_some() {
            return ready(Err(RegistryError::Conflict(
                "Backend is busy with another credential change; retry later".into(),
            )));
        }
        let provider = match provider_of(&entry.row.slug) {
            Ok(provider) => provider,
            Err(err) => return ready(Err(err)),
        };
        let update = match provider.validate_credential_update(&msg.body) {
            Ok(update) => update,
            Err(err) => return ready(Err(RegistryError::Invalid(err.message))),
        };
        let new_config = provider.apply_credentials(&entry.config, &update);
        if new_config == entry.config {
            return ready(Ok(false));
        }
        entry.busy = Some(Busy::Rotating);
        let old_config = entry.config.clone();
        let check = entry.addr.send(CheckCredentials {
            config: new_config.clone(),
            span: msg.span,
        });
        let id = msg.id;
        Box::pin(
            fut::wrap_future::<_, Self>(check).map(move |outcome, act, _ctx| {
                let Some(entry) = act.backends.get_mut(&id) else {
                    return Err(RegistryError::backend_not_found());
                };
                entry.busy = None;
                let storage = match outcome {
                    Ok(Ok(storage)) => storage,
                    Ok(Err(err)) => {
                        let message =
                            provider.scrub(&old_config, &provider.scrub(&new_config, &err.message));
                        return Err(RegistryError::CredentialCheckFailed(message));
                    }
                    Err(mailbox) => {
                        return Err(RegistryError::Internal(format!(
                            "backend actor unavailable: {mailbox}"
                        )))
                    }
                };
                // A wrapper using it may have been mounted meanwhile.
                act.refuse_if_rclone_user_mounted(&act.backends[&id])?;
                let mut new_config = new_config;
                act.keep_token_refreshed_meanwhile(&id, &old_config, &mut new_config);
                act.store_config(&id, new_config.clone())?;
                let entry = &act.backends[&id];
                entry.addr.do_send(Adopt {
                    config: new_config,
                    storage,
                });
                // The check may have refreshed the new token already.
                act.keep_refreshed_token(&id);
                // Wrappers served by rclone hold the old definition: they
                // build their engines again from the new one.
                let entry = &act.backends[&id];
                for user in act.rclone_users_of(entry) {
                    user.addr.do_send(Rebuild);
                }
                Ok(true)
            }),
        )
    }
    /// Seals `config` as backend `id`'s stored config, and makes it the one
    /// the registry and the directory hold.
    fn store_config(&mut self, id: &str, config: Config) -> Result<(), RegistryError> {
        let plain =
            serde_json::to_vec(&config).map_err(|e| RegistryError::Internal(e.to_string()))?;
        let sealed = self.settings.key.seal(&plain, id.as_bytes());
        self.settings
            .db
            .update_backend_config(id, &sealed)
            .map_err(db_error)?;
        let entry = self
            .backends
            .get_mut(id)
            .ok_or_else(RegistryError::backend_not_found)?;
        self.directory.redefine(
            &entry.row.org,
            entry.row.name.as_deref(),
            definition_of(&entry.row, &config),
        );
        entry.config = config;
        entry.row.sealed_config = sealed;
        Ok(())
    }

    /// Removes what engines kept for a deleted backend: hasher records and
    /// the on-disk state directory (cache chunks). Failures are logged: the
    /// backend itself is already gone.
    fn forget_state(&self, id: &str) {
        if let Err(err) = self.settings.db.delete_backend_hashes(id) {
            tracing::warn!(backend = %id, error = %err, "could not delete hasher records");
        }
        let dir = self.settings.env.state_dir.join(id);
        if let Err(err) = std::fs::remove_dir_all(&dir) {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(backend = %id, error = %err, "could not remove engine state");
            }
        }
    }
    fn delete(&mut self, msg: DeleteBackend) -> Result<(), RegistryError> {
        let entry = self.find(&msg.org, &msg.id)?;
        self.refuse_if_mounted(&msg.id)?;
        if entry.busy.is_some() {
            return Err(RegistryError::Conflict(
                "Backend is busy with a credential change; retry later".into(),
            ));
        }
        if let Some(referrer) = self.referrers_of(entry).next() {
            return Err(RegistryError::Conflict(format!(
                "Backend is used by backend '{}' ({}); delete that one first",
                shown(referrer),
                referrer.row.backend_type
            )));
        }
        self.settings.db.delete_backend(&msg.id).map_err(db_error)?;
        self.forget_state(&msg.id);
        self.forget_token(&msg.id);
        if let Some(entry) = self.backends.remove(&msg.id) {
            self.directory
                .remove(&entry.row.org, &entry.row.id, entry.row.name.as_deref());
            entry.addr.do_send(Disconnect);
        }
        Ok(())
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.settings.book.register(KIND, KIND, None, "running");
        self.watch_tokens(ctx);
        let restored = std::mem::take(&mut self.restored);
        // Publish every backend before any actor builds, so wrappers find
        // their upstreams whatever the order.
        let handles: Vec<_> = restored
            .iter()
            .map(|(row, config)| {
                let handle = Swappable::new(row.name.clone().unwrap_or_else(|| row.id.clone()));
                self.directory.insert(
                    &row.org,
                    row.name.as_deref(),
                    handle.clone(),
                    definition_of(row, config),
                );
                handle
            })
            .collect();
        for ((row, config), handle) in restored.into_iter().zip(handles) {
            let state = BackendState::from_stored(&row.state);
            let references = references(&row.slug, &config);
            let addr = self.start_backend(&row, &config, state, true, handle);
            let entry = BackendEntry {
                row,
                config,
                addr,
                busy: None,
                references,
            };
            self.backends.insert(entry.row.id.clone(), entry);
        }
        let mounts = std::mem::take(&mut self.restored_mounts);
        self.restore_mounts(mounts);
    }
}

impl Supervised for Registry {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        let cause = self
            .panic_cause
            .take()
            .unwrap_or_else(|| "stopped unexpectedly".into());
        self.settings.book.record_restart(KIND, KIND, &cause);
        // A half-finished create or rotation died with the old context.
        self.reserved_names.clear();
        for entry in self.backends.values_mut() {
            entry.busy = None;
        }
    }
}

impl Handler<CreateBackend> for Registry {
    type Result = Reply<BackendView>;

    fn handle(&mut self, msg: CreateBackend, ctx: &mut Context<Self>) -> Self::Result {
        let span = info_span!(parent: &msg.span, "registry.create_backend", provider = %msg.slug);
        let _entered = span.enter();
        let msg = CreateBackend {
            span: span.clone(),
            ..msg
        };
        self.guarded(ctx, |act, _| act.create(msg))
    }
}

impl Handler<ListBackends> for Registry {
    type Result = Vec<BackendView>;

    fn handle(&mut self, msg: ListBackends, _ctx: &mut Context<Self>) -> Self::Result {
        let mut entries: Vec<_> = self
            .backends
            .values()
            .filter(|e| e.row.org == msg.org)
            .collect();
        entries.sort_by_key(|e| (e.row.created_at_ms, &e.row.id));
        entries.into_iter().map(|e| self.view(e)).collect()
    }
}

impl Handler<GetBackend> for Registry {
    type Result = Result<BackendView, RegistryError>;

    fn handle(&mut self, msg: GetBackend, _ctx: &mut Context<Self>) -> Self::Result {
        self.find(&msg.org, &msg.id).map(|entry| self.view(entry))
    }
}

impl Handler<TestBackend> for Registry {
    type Result = Reply<TestOutcome>;

    fn handle(&mut self, msg: TestBackend, ctx: &mut Context<Self>) -> Self::Result {
        let span = info_span!(parent: &msg.span, "registry.test_backend", backend = %msg.id);
        let _entered = span.enter();
        let msg = TestBackend {
            span: span.clone(),
            ..msg
        };
        self.guarded(ctx, |act, _| act.test(msg))
    }
}

impl Handler<UpdateCredentials> for Registry {
    type Result = Reply<bool>;

    fn handle(&mut self, msg: UpdateCredentials, ctx: &mut Context<Self>) -> Self::Result {
        let span = info_span!(parent: &msg.span, "registry.update_credentials", backend = %msg.id);
        let _entered = span.enter();
        let msg = UpdateCredentials {
            span: span.clone(),
            ..msg
        };
        self.guarded(ctx, |act, _| act.update(msg))
    }
}

impl Handler<DeleteBackend> for Registry {
    type Result = Reply<()>;

    fn handle(&mut self, msg: DeleteBackend, ctx: &mut Context<Self>) -> Self::Result {
        let span = info_span!(parent: &msg.span, "registry.delete_backend", backend = %msg.id);
        let _entered = span.enter();
        self.guarded(ctx, |act, _| ready(act.delete(msg)))
    }
}

impl Handler<ActorHealthList> for Registry {
    type Result = Vec<ActorHealth>;

    fn handle(&mut self, msg: ActorHealthList, _ctx: &mut Context<Self>) -> Self::Result {
        self.settings.book.snapshot(&msg.org)
    }
}

/// Test-only: panics inside a guarded registry handler.
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct Crash;

#[cfg(test)]
impl Handler<Crash> for Registry {
    type Result = Reply<()>;

    fn handle(&mut self, _msg: Crash, ctx: &mut Context<Self>) -> Self::Result {
        self.guarded(ctx, |_, _| panic!("injected"))
    }
}

#[cfg(test)]
impl Registry {
    /// Test-only: the backend actor of `id`.
    pub(crate) fn backend_addr(&self, id: &str) -> Option<Addr<BackendActor>> {
        self.backends.get(id).map(|entry| entry.addr.clone())
    }
}

/// Test-only: the address of a backend actor.
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "Option<Addr<BackendActor>>")]
pub struct BackendAddr(pub String);

#[cfg(test)]
impl Handler<BackendAddr> for Registry {
    type Result = Option<Addr<BackendActor>>;

    fn handle(&mut self, msg: BackendAddr, _ctx: &mut Context<Self>) -> Self::Result {
        self.backend_addr(&msg.0)
    }
}
