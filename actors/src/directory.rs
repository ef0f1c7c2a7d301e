//! The directory of live backends per org, by id and by name: how wrapper
//! backends find the storage they reference, and the definitions of those
//! backends (for wrappers served by rclone, whose child defines every
//! backend it uses). The registry writes it; backend actors and mount
//! engines read it through [`OrgLookup`] while building.

use berth_engines::{BackendDefinition, BackendLookup};
use berth_storage::{Storage, StorageError, Swappable};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// One published backend.
#[derive(Clone)]
struct Published {
    /// Its live, replaceable storage.
    handle: Arc<Swappable>,
    /// Its id, provider and current config.
    definition: Arc<BackendDefinition>,
}

type Entries = HashMap<String, HashMap<String, Published>>;

/// Shared map org -> (id or name) -> the backend's storage and definition.
#[derive(Clone, Default)]
pub struct Directory {
    entries: Arc<RwLock<Entries>>,
}

impl Directory {
    /// Publishes a backend under its id and, when it has one, its name.
    pub fn insert(
        &self,
        org: &str,
        name: Option<&str>,
        handle: Arc<Swappable>,
        definition: BackendDefinition,
    ) {
        let published = Published {
            handle,
            definition: Arc::new(definition),
        };
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let org_entries = entries.entry(org.to_string()).or_default();
        let id = published.definition.id.clone();
        if let Some(name) = name {
            org_entries.insert(name.to_string(), published.clone());
        }
        org_entries.insert(id, published);
    }

    /// Replaces the definition of a published backend (its credentials
    /// changed); its storage handle stays.
    pub fn redefine(&self, org: &str, name: Option<&str>, definition: BackendDefinition) {
        if let Some(published) = self.published(org, &definition.id) {
            self.insert(org, name, published.handle, definition);
        }
    }

    fn published(&self, org: &str, key: &str) -> Option<Published> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(org)?.get(key).cloned()
    }

    /// Withdraws a backend.
    pub fn remove(&self, org: &str, id: &str, name: Option<&str>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if let Some(org_entries) = entries.get_mut(org) {
            org_entries.remove(id);
            if let Some(name) = name {
                org_entries.remove(name);
            }
        }
    }

    /// Whether `org` has a backend with this id or name.
    pub fn contains(&self, org: &str, key: &str) -> bool {
        self.published(org, key).is_some()
    }

    /// A lookup confined to `org`.
    pub fn for_org(&self, org: &str) -> OrgLookup {
        OrgLookup {
            directory: self.clone(),
            org: org.to_string(),
        }
    }
}

/// Finds backends of one org only: other orgs' backends do not exist here.
#[derive(Clone)]
pub struct OrgLookup {
    directory: Directory,
    org: String,
}

impl OrgLookup {
    fn find(&self, name_or_id: &str) -> Result<Published, StorageError> {
        self.directory
            .published(&self.org, name_or_id)
            .ok_or_else(|| StorageError::not_found(&format!("backend '{name_or_id}'")))
    }
}

impl BackendLookup for OrgLookup {
    fn lookup(&self, name_or_id: &str) -> Result<Arc<dyn Storage>, StorageError> {
        Ok(self.find(name_or_id)?.handle)
    }

    fn definition(&self, name_or_id: &str) -> Result<BackendDefinition, StorageError> {
        Ok(BackendDefinition::clone(&self.find(name_or_id)?.definition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definition(pass: &str) -> BackendDefinition {
        BackendDefinition {
            id: "0123456789abcdef".into(),
            slug: "webdav".into(),
            config: json!({"url": "http://dav", "pass": pass})
                .as_object()
                .unwrap()
                .clone(),
        }
    }

    #[test]
    fn lookups_stay_inside_their_org() {
        let directory = Directory::default();
        directory.insert(
            "acme",
            Some("photos"),
            Swappable::new("photos"),
            definition("old"),
        );
        let acme = directory.for_org("acme");
        assert!(acme.lookup("photos").is_ok());
        assert!(acme.lookup("0123456789abcdef").is_ok());
        assert_eq!(acme.definition("photos").unwrap().slug, "webdav");
        assert!(directory.for_org("globex").lookup("photos").is_err());
        assert!(directory.for_org("globex").definition("photos").is_err());
        directory.remove("acme", "0123456789abcdef", Some("photos"));
        assert!(!directory.contains("acme", "photos"));
        assert!(acme.definition("0123456789abcdef").is_err());
    }

    #[test]
    fn a_new_definition_replaces_the_old_under_every_key() {
        let directory = Directory::default();
        let handle = Swappable::new("photos");
        directory.insert("acme", Some("photos"), handle.clone(), definition("old"));
        directory.redefine("acme", Some("photos"), definition("new"));
        let acme = directory.for_org("acme");
        for key in ["photos", "0123456789abcdef"] {
            assert_eq!(acme.definition(key).unwrap().config["pass"], "new");
            let published = directory.published("acme", key).unwrap();
            assert!(Arc::ptr_eq(&published.handle, &handle));
        }
    }
}
