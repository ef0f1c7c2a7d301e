//! The directory of live backends per org, by id and by name: how wrapper
//! backends find the storage they reference. The registry writes it; backend
//! actors read it through [`OrgLookup`] while building their engine.

use berth_engines::BackendLookup;
use berth_storage::{Storage, StorageError, Swappable};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

type Handles = HashMap<String, HashMap<String, Arc<Swappable>>>;

/// Shared map org -> (id or name) -> the backend's replaceable storage.
#[derive(Clone, Default)]
pub struct Directory {
    handles: Arc<RwLock<Handles>>,
}

impl Directory {
    /// Publishes a backend under its id and, when it has one, its name.
    pub fn insert(&self, org: &str, id: &str, name: Option<&str>, handle: Arc<Swappable>) {
        let mut handles = self.handles.write().unwrap_or_else(|e| e.into_inner());
        let org_handles = handles.entry(org.to_string()).or_default();
        org_handles.insert(id.to_string(), handle.clone());
        if let Some(name) = name {
            org_handles.insert(name.to_string(), handle);
        }
    }

    /// Withdraws a backend.
    pub fn remove(&self, org: &str, id: &str, name: Option<&str>) {
        let mut handles = self.handles.write().unwrap_or_else(|e| e.into_inner());
        if let Some(org_handles) = handles.get_mut(org) {
            org_handles.remove(id);
            if let Some(name) = name {
                org_handles.remove(name);
            }
        }
    }

    /// Whether `org` has a backend with this id or name.
    pub fn contains(&self, org: &str, key: &str) -> bool {
        let handles = self.handles.read().unwrap_or_else(|e| e.into_inner());
        handles.get(org).is_some_and(|h| h.contains_key(key))
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

impl BackendLookup for OrgLookup {
    fn lookup(&self, name_or_id: &str) -> Result<Arc<dyn Storage>, StorageError> {
        let handles = self
            .directory
            .handles
            .read()
            .unwrap_or_else(|e| e.into_inner());
        handles
            .get(&self.org)
            .and_then(|h| h.get(name_or_id))
            .map(|handle| handle.clone() as Arc<dyn Storage>)
            .ok_or_else(|| StorageError::not_found(&format!("backend '{name_or_id}'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_stay_inside_their_org() {
        let directory = Directory::default();
        directory.insert(
            "acme",
            "0123456789abcdef",
            Some("photos"),
            Swappable::new("photos"),
        );
        let acme = directory.for_org("acme");
        assert!(acme.lookup("photos").is_ok());
        assert!(acme.lookup("0123456789abcdef").is_ok());
        assert!(directory.for_org("globex").lookup("photos").is_err());
        directory.remove("acme", "0123456789abcdef", Some("photos"));
        assert!(!directory.contains("acme", "photos"));
    }
}
