//! `memory`: an in-process object store. Data lives in a map and is lost when
//! the process exits.
//!
//! The store behaves like a small filesystem: writing a file creates its
//! parent directories, `mkdir` creates empty directories, and directories stay
//! until `rmdir` removes them (so [`Capability::directories`] is true).
//! Nodes are keyed by `(parent, name)`, which keeps every directory's children
//! together and sorted by name, so a listing page is one range scan.

use crate::{
    join_path, normalize_path, ByteStream, Capability, Entry, EntryKind, ErrorKind, ListPage,
    Result, Storage, StorageError, Usage,
};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::RwLock;
use std::time::SystemTime;

/// Page size used when `list` is called with `limit == 0`.
const DEFAULT_PAGE: usize = 1000;
/// Largest chunk a read stream yields.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Clone)]
enum Node {
    File { data: Bytes, modified: SystemTime },
    Dir { modified: SystemTime },
}

impl Node {
    fn is_dir(&self) -> bool {
        matches!(self, Node::Dir { .. })
    }

    fn entry(&self, path: String) -> Entry {
        match self {
            Node::File { data, modified } => Entry {
                path,
                kind: EntryKind::File,
                size: data.len() as u64,
                modified: Some(*modified),
            },
            Node::Dir { modified } => Entry {
                path,
                kind: EntryKind::Dir,
                size: 0,
                modified: Some(*modified),
            },
        }
    }
}

type Key = (String, String);
type Nodes = BTreeMap<Key, Node>;

/// The in-memory driver. Cheap to create; every instance is its own store.
#[derive(Default)]
pub struct MemoryStorage {
    nodes: RwLock<Nodes>,
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.nodes.read().map(|n| n.len()).unwrap_or(0);
        f.debug_struct("MemoryStorage")
            .field("nodes", &count)
            .finish()
    }
}

/// Splits a normalized, non-empty path into `(parent, name)`.
fn split(path: &str) -> Key {
    match path.rsplit_once('/') {
        Some((parent, name)) => (parent.to_string(), name.to_string()),
        None => (String::new(), path.to_string()),
    }
}

fn conflict(path: &str, what: &str) -> StorageError {
    StorageError::new(ErrorKind::Conflict, format!("{path}: {what}"))
}

fn poisoned() -> StorageError {
    StorageError::new(ErrorKind::Other, "memory store lock poisoned")
}

/// Whether `dir` (normalized; `""` is the root) is an existing directory.
fn dir_exists(nodes: &Nodes, dir: &str) -> Result<()> {
    if dir.is_empty() {
        return Ok(());
    }
    match nodes.get(&split(dir)) {
        Some(n) if n.is_dir() => Ok(()),
        Some(_) => Err(conflict(dir, "not a directory")),
        None => Err(StorageError::not_found(dir)),
    }
}

/// Creates `path` and its missing ancestors as directories.
fn ensure_dirs(nodes: &mut Nodes, path: &str) -> Result<()> {
    if path.is_empty() {
        return Ok(());
    }
    let mut end = 0;
    loop {
        let next = path[end..].find('/').map(|i| end + i);
        let prefix = &path[..next.unwrap_or(path.len())];
        match nodes.get(&split(prefix)) {
            Some(n) if n.is_dir() => {}
            Some(_) => return Err(conflict(prefix, "not a directory")),
            None => {
                nodes.insert(
                    split(prefix),
                    Node::Dir {
                        modified: SystemTime::now(),
                    },
                );
            }
        }
        match next {
            Some(i) => end = i + 1,
            None => return Ok(()),
        }
    }
}

/// Whether the directory `dir` has any child.
fn has_children(nodes: &Nodes, dir: &str) -> bool {
    nodes
        .range((dir.to_string(), String::new())..)
        .next()
        .is_some_and(|((parent, _), _)| parent == dir)
}

/// Keys of every node strictly below `dir`.
fn descendants(nodes: &Nodes, dir: &str) -> Vec<Key> {
    let mut keys: Vec<Key> = nodes
        .range((dir.to_string(), String::new())..)
        .take_while(|((parent, _), _)| parent == dir)
        .map(|(k, _)| k.clone())
        .collect();
    let prefix = format!("{dir}/");
    keys.extend(
        nodes
            .range((prefix.clone(), String::new())..)
            .take_while(|((parent, _), _)| parent.starts_with(&prefix))
            .map(|(k, _)| k.clone()),
    );
    keys
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Err(StorageError::unsupported(
                "the root has no modification time",
            ));
        }
        let mut nodes = self.nodes.write().map_err(|_| poisoned())?;
        match nodes.get_mut(&split(&path)) {
            Some(Node::File { modified, .. }) | Some(Node::Dir { modified }) => {
                *modified = time;
                Ok(())
            }
            None => Err(StorageError::not_found(&path)),
        }
    }

    fn capability(&self) -> Capability {
        Capability {
            directories: true,
            ranged_read: true,
            copy: true,
            atomic_rename: true,
            set_mtime: true,
            usage: false,
            append: false,
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Ok(Entry {
                path,
                kind: EntryKind::Dir,
                size: 0,
                modified: None,
            });
        }
        let nodes = self.nodes.read().map_err(|_| poisoned())?;
        match nodes.get(&split(&path)) {
            Some(node) => Ok(node.entry(path)),
            None => Err(StorageError::not_found(&path)),
        }
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        let dir = normalize_path(dir)?;
        let limit = if limit == 0 { DEFAULT_PAGE } else { limit };
        let nodes = self.nodes.read().map_err(|_| poisoned())?;
        dir_exists(&nodes, &dir)?;
        let start = match cursor {
            Some(c) => Bound::Excluded((dir.clone(), c)),
            None => Bound::Included((dir.clone(), String::new())),
        };
        let mut entries: Vec<Entry> = nodes
            .range((start, Bound::Unbounded))
            .take_while(|((parent, _), _)| *parent == dir)
            .take(limit + 1)
            .map(|((parent, name), node)| node.entry(join_path(parent, name)))
            .collect();
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|e| e.name().to_string())
        } else {
            None
        };
        Ok(ListPage { entries, next })
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        let path = normalize_path(path)?;
        let data = {
            let nodes = self.nodes.read().map_err(|_| poisoned())?;
            match nodes.get(&split(&path)) {
                Some(Node::File { data, .. }) => data.clone(),
                Some(Node::Dir { .. }) => return Err(conflict(&path, "is a directory")),
                None if path.is_empty() => return Err(conflict("/", "is a directory")),
                None => return Err(StorageError::not_found(&path)),
            }
        };
        let len = data.len() as u64;
        let (start, end) = match range {
            Some((offset, length)) => {
                let start = offset.min(len);
                (start, start.saturating_add(length).min(len))
            }
            None => (0, len),
        };
        let data = data.slice(start as usize..end as usize);
        let chunks: Vec<Result<Bytes>> = (0..data.len())
            .step_by(READ_CHUNK)
            .map(|at| Ok(data.slice(at..(at + READ_CHUNK).min(data.len()))))
            .collect();
        Ok(futures::stream::iter(chunks).boxed())
    }

    async fn write(&self, path: &str, mut body: ByteStream) -> Result<Entry> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Err(conflict("/", "is a directory"));
        }
        let mut buf = BytesMut::new();
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk?);
        }
        let mut nodes = self.nodes.write().map_err(|_| poisoned())?;
        let key = split(&path);
        if nodes.get(&key).is_some_and(Node::is_dir) {
            return Err(conflict(&path, "is a directory"));
        }
        ensure_dirs(&mut nodes, &key.0)?;
        let node = Node::File {
            data: buf.freeze(),
            modified: SystemTime::now(),
        };
        let entry = node.entry(path);
        nodes.insert(key, node);
        Ok(entry)
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Err(conflict("/", "is a directory"));
        }
        let mut nodes = self.nodes.write().map_err(|_| poisoned())?;
        let key = split(&path);
        match nodes.get(&key) {
            Some(Node::File { .. }) => {
                nodes.remove(&key);
                Ok(())
            }
            Some(Node::Dir { .. }) => Err(conflict(&path, "is a directory")),
            None => Err(StorageError::not_found(&path)),
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let from = normalize_path(from)?;
        let to = normalize_path(to)?;
        let mut nodes = self.nodes.write().map_err(|_| poisoned())?;
        let data = match nodes.get(&split(&from)) {
            Some(Node::File { data, .. }) => data.clone(),
            Some(Node::Dir { .. }) => return Err(conflict(&from, "is a directory")),
            None if from.is_empty() => return Err(conflict("/", "is a directory")),
            None => return Err(StorageError::not_found(&from)),
        };
        if to.is_empty() || nodes.get(&split(&to)).is_some_and(Node::is_dir) {
            return Err(conflict(&to, "is a directory"));
        }
        let key = split(&to);
        ensure_dirs(&mut nodes, &key.0)?;
        nodes.insert(
            key,
            Node::File {
                data,
                modified: SystemTime::now(),
            },
        );
        Ok(())
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let from = normalize_path(from)?;
        let to = normalize_path(to)?;
        if from.is_empty() {
            return Err(StorageError::new(
                ErrorKind::Permission,
                "cannot rename the root directory",
            ));
        }
        if to.is_empty() {
            return Err(conflict("/", "is a directory"));
        }
        let mut nodes = self.nodes.write().map_err(|_| poisoned())?;
        let from_key = split(&from);
        let Some(node) = nodes.get(&from_key).cloned() else {
            return Err(StorageError::not_found(&from));
        };
        if from == to {
            return Ok(());
        }
        if to.starts_with(&format!("{from}/")) {
            return Err(conflict(&to, "cannot move a directory into itself"));
        }
        let to_key = split(&to);
        match (nodes.get(&to_key), node.is_dir()) {
            (Some(existing), false) if existing.is_dir() => {
                return Err(conflict(&to, "is a directory"))
            }
            (Some(existing), true) if !existing.is_dir() => {
                return Err(conflict(&to, "not a directory"))
            }
            (Some(_), true) if has_children(&nodes, &to) => {
                return Err(conflict(&to, "directory not empty"))
            }
            _ => {}
        }
        ensure_dirs(&mut nodes, &to_key.0)?;
        if node.is_dir() {
            for (parent, name) in descendants(&nodes, &from) {
                let moved = nodes
                    .remove(&(parent.clone(), name.clone()))
                    .expect("descendant listed under the same lock");
                let new_parent = format!("{to}{}", &parent[from.len()..]);
                nodes.insert((new_parent, name), moved);
            }
        }
        nodes.remove(&from_key);
        nodes.insert(to_key, node);
        Ok(())
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        let mut nodes = self.nodes.write().map_err(|_| poisoned())?;
        ensure_dirs(&mut nodes, &path)
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Err(StorageError::new(
                ErrorKind::Permission,
                "cannot remove the root directory",
            ));
        }
        let mut nodes = self.nodes.write().map_err(|_| poisoned())?;
        let key = split(&path);
        match nodes.get(&key) {
            Some(Node::Dir { .. }) if has_children(&nodes, &path) => {
                Err(conflict(&path, "directory not empty"))
            }
            Some(Node::Dir { .. }) => {
                nodes.remove(&key);
                Ok(())
            }
            Some(Node::File { .. }) => Err(conflict(&path, "not a directory")),
            None => Err(StorageError::not_found(&path)),
        }
    }

    /// Reports the bytes held (`used`); total and free are unknown.
    async fn usage(&self) -> Result<Usage> {
        let nodes = self.nodes.read().map_err(|_| poisoned())?;
        let used = nodes
            .values()
            .map(|n| match n {
                Node::File { data, .. } => data.len() as u64,
                Node::Dir { .. } => 0,
            })
            .sum();
        Ok(Usage {
            total: None,
            used: Some(used),
            free: None,
        })
    }
}
