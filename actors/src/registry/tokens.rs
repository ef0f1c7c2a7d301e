//! OAuth tokens rclone refreshed, sealed into the database: rclone writes
//! them to berth's token file ([`TokenVault`]); every [`TOKEN_CHECK`] (and
//! at shutdown) the registry reads what changed there and stores each
//! backend's newer token as part of its config, so the database stays the
//! one place a backend's credentials live (a lost token file costs
//! nothing but the refreshes since the last check).

use super::{Registry, RegistryError};
use crate::backend::KeepConfig;
use actix::prelude::*;
use berth_rclone::TokenVault;
use berth_storage::catalog::Config;
use std::sync::Arc;
use std::time::Duration;

/// How often the token file is looked at (a `stat` when nothing changed).
const TOKEN_CHECK: Duration = Duration::from_secs(2);

/// The config key of an OAuth token.
const TOKEN: &str = "token";

fn token_of(config: &Config) -> Option<&str> {
    config.get(TOKEN).and_then(|v| v.as_str())
}

impl Registry {
    fn token_vault(&self) -> Option<Arc<TokenVault>> {
        let rclone = self.settings.env.rclone.as_ref().ok()?;
        rclone.token_vault().cloned()
    }

    /// Checks the token file every [`TOKEN_CHECK`] while rclone keeps one.
    pub(super) fn watch_tokens(&self, ctx: &mut Context<Self>) {
        if self.token_vault().is_some() {
            ctx.run_interval(TOKEN_CHECK, |act, _| act.keep_refreshed_tokens());
        }
    }

    /// Stores every token rclone refreshed, when the token file changed.
    pub(super) fn keep_refreshed_tokens(&mut self) {
        if self.token_vault().is_some_and(|vault| vault.changed()) {
            let ids: Vec<String> = self.backends.keys().cloned().collect();
            self.keep_refreshed(&ids);
        }
    }

    /// Stores the token rclone refreshed from backend `id`'s stored one, if
    /// it did.
    pub(super) fn keep_refreshed_token(&mut self, id: &str) {
        self.keep_refreshed(&[id.to_owned()]);
    }

    /// Stores the tokens rclone refreshed from the stored ones of `ids`
    /// (the token file is read once).
    fn keep_refreshed(&mut self, ids: &[String]) {
        let Some(vault) = self.token_vault() else {
            return;
        };
        let (owners, held): (Vec<&String>, Vec<(String, &str)>) = ids
            .iter()
            .filter_map(|id| {
                let token = token_of(&self.backends.get(id)?.config)?;
                Some((id, (berth_engines::remote_name(id), token)))
            })
            .unzip();
        let found = match vault.newer(&held) {
            Ok(found) => found,
            Err(err) => {
                tracing::error!(error = %err, "could not read berth's rclone token file");
                return;
            }
        };
        let newer: Vec<(String, String)> = owners
            .into_iter()
            .zip(found)
            .filter_map(|(id, token)| Some((id.clone(), token?)))
            .collect();
        for (id, token) in newer {
            if let Err(err) = self.store_token(&id, token) {
                tracing::error!(backend = %id, error = %err, "could not store the token rclone refreshed");
            }
        }
    }

    fn store_token(&mut self, id: &str, token: String) -> Result<(), RegistryError> {
        let entry = self
            .backends
            .get(id)
            .ok_or_else(RegistryError::backend_not_found)?;
        let mut config = entry.config.clone();
        config.insert(TOKEN.into(), token.into());
        self.store_config(id, config.clone())?;
        self.backends[id].addr.do_send(KeepConfig { config });
        tracing::info!(backend = %id, "stored the OAuth token rclone refreshed");
        Ok(())
    }

    /// A credential change that left the token as it was keeps the token
    /// rclone refreshed while the new credentials were checked.
    pub(super) fn keep_token_refreshed_meanwhile(
        &self,
        id: &str,
        before: &Config,
        config: &mut Config,
    ) {
        let Some(entry) = self.backends.get(id) else {
            return;
        };
        if token_of(config) == token_of(before) {
            if let Some(current) = entry.config.get(TOKEN) {
                config.insert(TOKEN.into(), current.clone());
            }
        }
    }

    /// Drops a deleted backend's token from the token file.
    pub(super) fn forget_token(&self, id: &str) {
        if let Some(vault) = self.token_vault() {
            if let Err(err) = vault.forget(&berth_engines::remote_name(id)) {
                tracing::warn!(backend = %id, error = %err, "could not remove the token from berth's rclone token file");
            }
        }
    }
}
