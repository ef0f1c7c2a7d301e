//! The inode table: stable numbers for paths while they are known, cached
//! attributes and directory listings, and the set of paths that exist through
//! the mount before (or without) reaching the store.
//!
//! Locking: the table is one `RwLock` taken briefly by metadata operations;
//! each node has its own mutex for its attributes. Lock order is table, then
//! node, then cache item; the data path (reads and writes on an open handle)
//! only takes the node and item locks.

use crate::cache::CacheItem;
use berth_storage::{Entry, EntryKind};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// Inode number of the mount's root directory.
pub const ROOT_INO: u64 = 1;

/// Kind of a filesystem object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

impl From<EntryKind> for FileKind {
    fn from(kind: EntryKind) -> Self {
        match kind {
            EntryKind::File => FileKind::File,
            EntryKind::Dir => FileKind::Dir,
        }
    }
}

/// Attributes of an inode as the kernel sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// File or directory.
    pub kind: FileKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Last modification time.
    pub mtime: SystemTime,
}

/// What a listing knows about one child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChildMeta {
    pub kind: FileKind,
    pub size: u64,
    pub mtime: Option<SystemTime>,
}

impl ChildMeta {
    pub(crate) fn of(entry: &Entry) -> Self {
        ChildMeta {
            kind: entry.kind.into(),
            size: entry.size,
            mtime: entry.modified,
        }
    }
}

/// A cached directory listing.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    pub at: Instant,
    pub entries: BTreeMap<String, ChildMeta>,
}

/// Mutable state of a node.
#[derive(Debug)]
pub(crate) struct Meta {
    /// Full storage path (`""` for the root).
    pub path: String,
    pub size: u64,
    pub mtime: Option<SystemTime>,
    /// When the read of size/mtime from the store began (or the store
    /// confirmed an upload).
    pub fetched: Option<Instant>,
    /// Size and mtime are maintained locally (a writer is open or a cache
    /// item is attached) and are never refreshed from the store.
    pub local_attrs: bool,
    /// Kernel lookup count.
    pub nlookup: u64,
    /// Open handles.
    pub open: u32,
    /// Streaming writers open (off/minimal).
    pub writers: u32,
    /// Removed from the namespace (unlinked or replaced).
    pub unlinked: bool,
    /// Directories: the cached listing and a counter of changes made
    /// through the mount, so a listing fetched across a change is not kept.
    pub listing: Option<Listing>,
    pub dir_gen: u64,
    /// The disk cache item holding this file's data, if any.
    pub cache: Option<Arc<CacheItem>>,
    /// Size and mtime of the data the kernel may hold in its page cache
    /// since the last read-only open; `None` once the file was opened for
    /// writing or truncated through the mount.
    pub kernel_data: Option<(u64, SystemTime)>,
}

/// One inode.
#[derive(Debug)]
pub(crate) struct Node {
    pub ino: u64,
    pub kind: FileKind,
    meta: Mutex<Meta>,
}

impl Node {
    pub(crate) fn meta(&self) -> MutexGuard<'_, Meta> {
        self.meta.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn path(&self) -> String {
        self.meta().path.clone()
    }

    /// Attributes, with `default_time` when the store keeps no mtime.
    pub(crate) fn attr(&self, default_time: SystemTime) -> Attr {
        let m = self.meta();
        self.attr_of(&m, default_time)
    }

    pub(crate) fn attr_of(&self, m: &Meta, default_time: SystemTime) -> Attr {
        Attr {
            ino: self.ino,
            kind: self.kind,
            size: if self.kind == FileKind::Dir {
                0
            } else {
                m.size
            },
            mtime: m.mtime.unwrap_or(default_time),
        }
    }
}

impl Meta {
    /// Takes the size and mtime the store reported in a read that began at
    /// `at`, unless they are kept locally or something newer is known: a
    /// listing that began before an upload finished must not undo it.
    pub(crate) fn take_stored(&mut self, size: u64, mtime: Option<SystemTime>, at: Instant) {
        if self.local_attrs || self.fetched.is_some_and(|f| f > at) {
            return;
        }
        self.size = size;
        self.mtime = mtime;
        self.fetched = Some(at);
    }

    /// Whether the attributes can be answered without the store.
    pub(crate) fn attrs_fresh(&self, ttl: Duration) -> bool {
        self.local_attrs || self.fetched.is_some_and(|t| t.elapsed() < ttl)
    }

    /// The listing, if younger than `ttl`.
    pub(crate) fn fresh_listing(&self, ttl: Duration) -> Option<&Listing> {
        self.listing.as_ref().filter(|l| l.at.elapsed() < ttl)
    }

    /// Records a change of this directory's children made through the mount.
    /// A cached listing is kept and updated by `edit`; `None` removes `name`.
    pub(crate) fn edit_child(&mut self, name: &str, child: Option<ChildMeta>) {
        self.dir_gen += 1;
        if let Some(l) = self.listing.as_mut() {
            match child {
                Some(c) => {
                    l.entries.insert(name.to_string(), c);
                }
                None => {
                    l.entries.remove(name);
                }
            }
        }
    }
}

/// The inode table.
#[derive(Debug)]
pub(crate) struct Table {
    nodes: HashMap<u64, Arc<Node>>,
    by_path: BTreeMap<String, u64>,
    /// Paths that exist through the mount but may be missing on the store:
    /// new files not uploaded yet and directories created through the mount.
    local: BTreeSet<String>,
    next_ino: u64,
}

/// The last component of a path.
pub(crate) fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The parent of a path (`""` for top-level names).
pub(crate) fn parent_path(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

/// `dir/` for a directory, `""` for the root: the prefix of its descendants.
pub(crate) fn dir_prefix(dir: &str) -> String {
    if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    }
}

/// `path` moved from under `from` to under `to` (`path` is `from` or below).
fn moved(path: &str, from: &str, to: &str) -> String {
    format!("{to}{}", &path[from.len()..])
}

impl Table {
    /// A table holding the root.
    pub(crate) fn new() -> Self {
        let root = Arc::new(Node {
            ino: ROOT_INO,
            kind: FileKind::Dir,
            meta: Mutex::new(Meta::new(String::new(), 0, None)),
        });
        let mut nodes = HashMap::new();
        nodes.insert(ROOT_INO, root);
        let mut by_path = BTreeMap::new();
        by_path.insert(String::new(), ROOT_INO);
        Table {
            nodes,
            by_path,
            local: BTreeSet::new(),
            next_ino: ROOT_INO + 1,
        }
    }

    pub(crate) fn get(&self, ino: u64) -> Option<Arc<Node>> {
        self.nodes.get(&ino).cloned()
    }

    pub(crate) fn by_path(&self, path: &str) -> Option<Arc<Node>> {
        self.by_path.get(path).and_then(|i| self.get(*i))
    }

    /// The node for `path` with `kind`, created if unknown. A known node of
    /// another kind is unlinked and replaced. Attributes from the store
    /// (`meta`, fetched at `at`) refresh nodes that are not maintained locally.
    pub(crate) fn upsert(
        &mut self,
        path: &str,
        kind: FileKind,
        meta: Option<(u64, Option<SystemTime>)>,
        at: Instant,
    ) -> Arc<Node> {
        if let Some(node) = self.by_path(path) {
            if node.kind == kind {
                if let Some((size, mtime)) = meta {
                    node.meta().take_stored(size, mtime, at);
                }
                return node;
            }
            self.unlink_path(path);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let (size, mtime) = meta.unwrap_or((0, None));
        let mut m = Meta::new(path.to_string(), size, mtime);
        if meta.is_some() {
            m.fetched = Some(at);
        }
        let node = Arc::new(Node {
            ino,
            kind,
            meta: Mutex::new(m),
        });
        self.nodes.insert(ino, node.clone());
        self.by_path.insert(path.to_string(), ino);
        node
    }

    /// Removes `path` (and everything known below it) from the namespace.
    /// The nodes stay reachable by inode number until forgotten and closed.
    pub(crate) fn unlink_path(&mut self, path: &str) {
        let prefix = dir_prefix(path);
        let mut gone: Vec<String> = vec![path.to_string()];
        if !path.is_empty() {
            gone.extend(
                self.by_path
                    .range(prefix.clone()..)
                    .take_while(|(p, _)| p.starts_with(&prefix))
                    .map(|(p, _)| p.clone()),
            );
        }
        for p in gone {
            if let Some(ino) = self.by_path.remove(&p) {
                if let Some(node) = self.nodes.get(&ino).cloned() {
                    node.meta().unlinked = true;
                    self.reap(&node);
                }
            }
            self.local.remove(&p);
        }
        let locals: Vec<String> = self
            .local
            .range(prefix.clone()..)
            .take_while(|p| p.starts_with(&prefix))
            .cloned()
            .collect();
        for p in locals {
            self.local.remove(&p);
        }
    }

    /// Moves `from` (and everything below it) to `to`, replacing whatever
    /// was known at `to`.
    pub(crate) fn rename_path(&mut self, from: &str, to: &str) {
        self.unlink_path(to);
        let prefix = dir_prefix(from);
        let mut keys: Vec<String> = vec![from.to_string()];
        keys.extend(
            self.by_path
                .range(prefix.clone()..)
                .take_while(|(p, _)| p.starts_with(&prefix))
                .map(|(p, _)| p.clone()),
        );
        for old in keys {
            if let Some(ino) = self.by_path.remove(&old) {
                let new = moved(&old, from, to);
                if let Some(node) = self.nodes.get(&ino) {
                    node.meta().path = new.clone();
                }
                self.by_path.insert(new, ino);
            }
        }
        let mut locals: Vec<String> = self
            .local
            .range(prefix.clone()..)
            .take_while(|p| p.starts_with(&prefix))
            .cloned()
            .collect();
        if self.local.contains(from) {
            locals.push(from.to_string());
        }
        for old in locals {
            self.local.remove(&old);
            self.local.insert(moved(&old, from, to));
        }
    }

    /// Marks `path` as existing through the mount (or not).
    pub(crate) fn set_local(&mut self, path: &str, local: bool) {
        if local {
            self.local.insert(path.to_string());
        } else {
            self.local.remove(path);
        }
    }

    /// Whether `path` exists through the mount, as itself or as the parent
    /// directory of a local path.
    pub(crate) fn local_kind(&self, path: &str) -> Option<FileKind> {
        if self.local.contains(path) {
            return Some(self.by_path(path).map_or(FileKind::Dir, |n| n.kind));
        }
        let prefix = dir_prefix(path);
        self.local
            .range(prefix.clone()..)
            .next()
            .filter(|p| p.starts_with(&prefix))
            .map(|_| FileKind::Dir)
    }

    /// Direct children of `dir` that exist through the mount, with their kind.
    pub(crate) fn local_children(&self, dir: &str) -> Vec<(String, FileKind)> {
        let prefix = dir_prefix(dir);
        let mut out: Vec<(String, FileKind)> = Vec::new();
        for p in self
            .local
            .range(prefix.clone()..)
            .take_while(|p| p.starts_with(&prefix))
        {
            let rest = &p[prefix.len()..];
            let child = match rest.split_once('/') {
                Some((first, _)) => (first.to_string(), FileKind::Dir),
                None => (
                    rest.to_string(),
                    self.by_path(p).map_or(FileKind::Dir, |n| n.kind),
                ),
            };
            if out.last().map(|(n, _)| n) != Some(&child.0) {
                out.push(child);
            }
        }
        out
    }

    /// Whether any node or local path is known below `dir`.
    pub(crate) fn has_known_children(&self, dir: &str) -> bool {
        let prefix = dir_prefix(dir);
        self.by_path
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(p, _)| p.starts_with(&prefix))
    }

    /// Drops `n` kernel lookups of `ino`, removing the node when nothing
    /// refers to it any more.
    pub(crate) fn forget(&mut self, ino: u64, n: u64) {
        if let Some(node) = self.nodes.get(&ino).cloned() {
            {
                let mut m = node.meta();
                m.nlookup = m.nlookup.saturating_sub(n);
            }
            self.reap(&node);
        }
    }

    /// Drops every kernel lookup (the session ended: the kernel forgot all).
    pub(crate) fn forget_all(&mut self) {
        let mut nodes: Vec<(String, Arc<Node>)> =
            self.nodes.values().map(|n| (n.path(), n.clone())).collect();
        for (_, node) in &nodes {
            node.meta().nlookup = 0;
        }
        // Children before their parents (a descendant sorts after its parent).
        nodes.sort_by(|a, b| b.0.cmp(&a.0));
        for (_, node) in &nodes {
            self.reap(node);
        }
    }

    /// Removes `node` if it is unreferenced: no lookups, no open handles, no
    /// cache item, not local, and no known children.
    pub(crate) fn reap(&mut self, node: &Arc<Node>) {
        if node.ino == ROOT_INO {
            return;
        }
        let path = {
            let m = node.meta();
            if m.nlookup > 0 || m.open > 0 || m.cache.is_some() {
                return;
            }
            if m.unlinked {
                None
            } else {
                Some(m.path.clone())
            }
        };
        if let Some(path) = path {
            if self.local.contains(&path)
                || (node.kind == FileKind::Dir && self.has_known_children(&path))
            {
                return;
            }
            if self.by_path.get(&path) == Some(&node.ino) {
                self.by_path.remove(&path);
            }
        }
        self.nodes.remove(&node.ino);
    }

    /// Number of inodes known (for tests and statistics).
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }
}

impl Meta {
    fn new(path: String, size: u64, mtime: Option<SystemTime>) -> Self {
        Meta {
            path,
            size,
            mtime,
            fetched: None,
            local_attrs: false,
            nlookup: 0,
            open: 0,
            writers: 0,
            unlinked: false,
            listing: None,
            dir_gen: 0,
            cache: None,
            kernel_data: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_numbers_and_renames() {
        let mut t = Table::new();
        let now = Instant::now();
        let a = t.upsert("a", FileKind::Dir, None, now);
        let b = t.upsert("a/b", FileKind::File, Some((3, None)), now);
        assert_eq!(t.upsert("a/b", FileKind::File, None, now).ino, b.ino);
        t.rename_path("a", "c");
        assert_eq!(t.by_path("c").unwrap().ino, a.ino);
        assert_eq!(t.by_path("c/b").unwrap().ino, b.ino);
        assert_eq!(b.path(), "c/b");
        assert!(t.by_path("a/b").is_none());
        // A kind change gives a new number.
        let d = t.upsert("c/b", FileKind::Dir, None, now);
        assert_ne!(d.ino, b.ino);
        assert!(b.meta().unlinked);
    }

    #[test]
    fn a_listing_older_than_what_is_known_does_not_undo_it() {
        let mut t = Table::new();
        let listed = Instant::now();
        let f = t.upsert("f", FileKind::File, Some((0, None)), listed);
        // An upload finished after the listing began: the store confirmed 3.
        let uploaded = listed + Duration::from_millis(5);
        f.meta().take_stored(3, None, uploaded);
        // The listing's own answer (the file before its upload) comes late.
        t.upsert("f", FileKind::File, Some((0, None)), listed);
        assert_eq!(f.meta().size, 3);
        // A listing begun after the upload is taken.
        t.upsert(
            "f",
            FileKind::File,
            Some((7, None)),
            uploaded + Duration::from_millis(1),
        );
        assert_eq!(f.meta().size, 7);
        // Attributes kept locally are never replaced from the store.
        f.meta().local_attrs = true;
        t.upsert(
            "f",
            FileKind::File,
            Some((9, None)),
            Instant::now() + Duration::from_secs(1),
        );
        assert_eq!(f.meta().size, 7);
    }

    #[test]
    fn local_children_and_kinds() {
        let mut t = Table::new();
        let now = Instant::now();
        t.upsert("x/new.txt", FileKind::File, None, now);
        t.set_local("x/new.txt", true);
        t.set_local("x/y/z", true);
        assert_eq!(t.local_kind("x"), Some(FileKind::Dir));
        assert_eq!(t.local_kind("x/new.txt"), Some(FileKind::File));
        assert_eq!(t.local_kind("q"), None);
        assert_eq!(
            t.local_children("x"),
            vec![
                ("new.txt".to_string(), FileKind::File),
                ("y".to_string(), FileKind::Dir)
            ]
        );
        assert_eq!(t.local_children(""), vec![("x".to_string(), FileKind::Dir)]);
        t.rename_path("x", "w");
        assert_eq!(t.local_kind("w/y/z"), Some(FileKind::Dir));
        t.unlink_path("w");
        assert_eq!(t.local_kind("w"), None);
    }

    #[test]
    fn forget_reaps_unreferenced_nodes() {
        let mut t = Table::new();
        let now = Instant::now();
        let n = t.upsert("f", FileKind::File, None, now);
        n.meta().nlookup = 2;
        t.forget(n.ino, 1);
        assert!(t.get(n.ino).is_some());
        t.forget(n.ino, 1);
        assert!(t.get(n.ino).is_none());
        assert!(t.by_path("f").is_none());
        assert_eq!(t.len(), 1);
        // The end of a session forgets everything the kernel knew.
        let d = t.upsert("d", FileKind::Dir, None, now);
        let f = t.upsert("d/f", FileKind::File, None, now);
        d.meta().nlookup = 1;
        f.meta().nlookup = 3;
        t.forget_all();
        assert!(t.get(f.ino).is_none());
        assert_eq!(t.len(), 1);
    }
}
