//! `combine`: upstreams shown as the top-level directories of one tree.
//!
//! `upstreams` is a list of `dir=remote:path` entries. The root lists the
//! configured directories (and nothing else); `dir/rest` is `rest` inside that
//! directory's upstream. The root is fixed: creating, removing or renaming
//! anything at the root answers `Permission` (or `Conflict` when the target is
//! one of the configured directories). Moving a file between two upstreams
//! copies it through this process and then deletes the source; moving a
//! directory between two upstreams answers `Unsupported` (move its files
//! instead). Because of that, [`Capability::atomic_rename`] is only claimed
//! for a single upstream.

use crate::{all_caps, conflict, context, denied, label, stream_copy, sum_usage, text};
use async_trait::async_trait;
use berth_storage::catalog::Config;
use berth_storage::remote::parse_combine_upstreams;
use berth_storage::{
    join_path, normalize_path, ByteStream, Capability, Entry, EntryKind, ErrorKind, ListPage,
    Resolve, Result, Storage, StorageError, Usage,
};
use std::sync::Arc;
use std::time::SystemTime;

/// Page size of the root listing when `list` is called with `limit == 0`.
const DEFAULT_PAGE: usize = 1000;

/// One configured top-level directory.
#[derive(Debug)]
struct Member {
    dir: String,
    remote: String,
    storage: Arc<dyn Storage>,
}

/// Several upstreams under one root, one directory each.
#[derive(Debug)]
pub struct Combine {
    /// Sorted by directory name (byte order), as listings are.
    members: Vec<Member>,
}

/// Where a path of the combined tree lives.
enum Route<'a> {
    /// The root itself.
    Root,
    /// A configured directory itself.
    Top(&'a Member),
    /// `rest` (non-empty) inside a configured directory's upstream.
    Inside(&'a Member, String),
    /// A name at the root that is not a configured directory.
    Unknown(String),
}

/// Opens every upstream of the config; a failure names the directory.
pub async fn build(config: &Config, resolve: &dyn Resolve) -> Result<Arc<dyn Storage>> {
    let parsed = parse_combine_upstreams("upstreams", text(config, "upstreams"))
        .map_err(StorageError::invalid_config)?;
    let mut members = Vec::with_capacity(parsed.len());
    for up in parsed {
        let remote = label(&up.remote);
        let storage = resolve
            .open(&up.remote)
            .await
            .map_err(|e| context(&format!("combine upstream '{}' ({remote})", up.dir), e))?;
        members.push(Member {
            dir: up.dir,
            remote,
            storage,
        });
    }
    Ok(Arc::new(Combine::new(members)))
}

impl Combine {
    fn new(mut members: Vec<Member>) -> Self {
        members.sort_by(|a, b| a.dir.cmp(&b.dir));
        Combine { members }
    }

    fn route(&self, path: &str) -> Result<Route<'_>> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Ok(Route::Root);
        }
        let (top, rest) = path.split_once('/').unwrap_or((&path, ""));
        Ok(match self.members.iter().find(|m| m.dir == top) {
            Some(m) if rest.is_empty() => Route::Top(m),
            Some(m) => Route::Inside(m, rest.to_string()),
            None => Route::Unknown(path.clone()),
        })
    }

    fn names(&self) -> String {
        self.members
            .iter()
            .map(|m| m.dir.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `Permission` for creating `path` at the root.
    fn fixed_root(&self, path: &str) -> StorageError {
        denied(format!(
            "{path}: the root of a combine backend holds only its configured directories ({})",
            self.names()
        ))
    }

    /// The entry of a configured directory (its upstream root's mtime when
    /// the upstream knows one).
    async fn top_entry(m: &Member) -> Entry {
        let modified = m.storage.stat("").await.ok().and_then(|e| e.modified);
        Entry {
            path: m.dir.clone(),
            kind: EntryKind::Dir,
            size: 0,
            modified,
        }
    }

    fn outer(m: &Member, mut entry: Entry) -> Entry {
        entry.path = join_path(&m.dir, &entry.path);
        entry
    }

    fn root_page(&self, cursor: Option<String>, limit: usize) -> ListPage {
        let limit = if limit == 0 { DEFAULT_PAGE } else { limit };
        let mut rest = self
            .members
            .iter()
            .filter(|m| cursor.as_deref().is_none_or(|c| m.dir.as_str() > c));
        let entries: Vec<Entry> = rest
            .by_ref()
            .take(limit)
            .map(|m| Entry {
                path: m.dir.clone(),
                kind: EntryKind::Dir,
                size: 0,
                modified: None,
            })
            .collect();
        let next = match rest.next() {
            Some(_) => entries.last().map(|e| e.path.clone()),
            None => None,
        };
        ListPage { entries, next }
    }

    /// Moves `from` of `a` to `to` of `b` (two different upstreams).
    async fn move_across(&self, a: &Member, from: &str, b: &Member, to: &str) -> Result<()> {
        let source = a.storage.stat(from).await?;
        if source.kind == EntryKind::Dir {
            return Err(StorageError::unsupported(format!(
                "{}/{from}: moving a directory from '{}' to '{}' crosses two combined \
                 upstreams; move its files instead",
                a.dir, a.dir, b.dir
            )));
        }
        if let Ok(target) = b.storage.stat(to).await {
            if target.kind == EntryKind::Dir {
                return Err(conflict(&join_path(&b.dir, to), "is a directory"));
            }
        }
        stream_copy(a.storage.as_ref(), from, b.storage.as_ref(), to).await?;
        a.storage.delete(from).await
    }
}

#[async_trait]
impl Storage for Combine {
    /// Derived from the upstreams' capabilities at each call (they follow
    /// their backends, which may be reconnected with other settings).
    fn capability(&self) -> Capability {
        let caps: Vec<Capability> = self
            .members
            .iter()
            .map(|m| m.storage.capability())
            .collect();
        let mut capability = all_caps(&caps);
        // A move between two upstreams is a copy and a delete.
        capability.atomic_rename &= self.members.len() == 1;
        capability
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        match self.route(path)? {
            Route::Root => Ok(Entry {
                path: String::new(),
                kind: EntryKind::Dir,
                size: 0,
                modified: None,
            }),
            Route::Top(m) => Ok(Self::top_entry(m).await),
            Route::Inside(m, rest) => Ok(Self::outer(m, m.storage.stat(&rest).await?)),
            Route::Unknown(p) => Err(StorageError::not_found(&p)),
        }
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        let (m, rest) = match self.route(dir)? {
            Route::Root => return Ok(self.root_page(cursor, limit)),
            Route::Top(m) => (m, String::new()),
            Route::Inside(m, rest) => (m, rest),
            Route::Unknown(p) => return Err(StorageError::not_found(&p)),
        };
        let page = m.storage.list(&rest, cursor, limit).await?;
        Ok(ListPage {
            entries: page
                .entries
                .into_iter()
                .map(|e| Self::outer(m, e))
                .collect(),
            next: page.next,
        })
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        match self.route(path)? {
            Route::Root => Err(conflict("", "is a directory")),
            Route::Top(m) => Err(conflict(&m.dir, "is a directory")),
            Route::Inside(m, rest) => m.storage.read(&rest, range).await,
            Route::Unknown(p) => Err(StorageError::not_found(&p)),
        }
    }

    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
        match self.route(path)? {
            Route::Root => Err(conflict("", "is a directory")),
            Route::Top(m) => Err(conflict(&m.dir, "is a directory")),
            Route::Inside(m, rest) => Ok(Self::outer(m, m.storage.write(&rest, body).await?)),
            Route::Unknown(p) => Err(self.fixed_root(&p)),
        }
    }

    async fn delete(&self, path: &str) -> Result<()> {
        match self.route(path)? {
            Route::Root => Err(conflict("", "is a directory")),
            Route::Top(m) => Err(conflict(&m.dir, "is a directory")),
            Route::Inside(m, rest) => m.storage.delete(&rest).await,
            Route::Unknown(p) => Err(StorageError::not_found(&p)),
        }
    }

    /// Within one upstream this is the upstream's copy; between two it
    /// streams the file through this process.
    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        if !self.capability().copy {
            return Err(StorageError::unsupported(
                "an upstream of this combine backend cannot copy",
            ));
        }
        let (a, from) = match self.route(from)? {
            Route::Root => return Err(conflict("", "is a directory")),
            Route::Top(m) => return Err(conflict(&m.dir, "is a directory")),
            Route::Inside(m, rest) => (m, rest),
            Route::Unknown(p) => return Err(StorageError::not_found(&p)),
        };
        match self.route(to)? {
            Route::Root => Err(conflict("", "is a directory")),
            Route::Top(m) => Err(conflict(&m.dir, "is a directory")),
            Route::Unknown(p) => {
                a.storage.stat(&from).await?;
                Err(self.fixed_root(&p))
            }
            Route::Inside(b, to) if std::ptr::eq(a, b) => a.storage.copy(&from, &to).await,
            Route::Inside(b, to) => {
                if b.storage
                    .stat(&to)
                    .await
                    .is_ok_and(|e| e.kind == EntryKind::Dir)
                {
                    return Err(conflict(&join_path(&b.dir, &to), "is a directory"));
                }
                stream_copy(a.storage.as_ref(), &from, b.storage.as_ref(), &to)
                    .await
                    .map(|_| ())
            }
        }
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (a, from) = match self.route(from)? {
            Route::Root => return Err(denied("cannot rename the root directory")),
            Route::Top(m) => {
                return Err(denied(format!(
                    "{}: a configured directory of a combine backend cannot be renamed",
                    m.dir
                )))
            }
            Route::Inside(m, rest) => (m, rest),
            Route::Unknown(p) => return Err(StorageError::not_found(&p)),
        };
        match self.route(to)? {
            Route::Root => Err(conflict("", "is a directory")),
            Route::Top(m) => {
                a.storage.stat(&from).await?;
                Err(conflict(&m.dir, "is a configured directory"))
            }
            Route::Unknown(p) => {
                a.storage.stat(&from).await?;
                Err(self.fixed_root(&p))
            }
            Route::Inside(b, to) if std::ptr::eq(a, b) => a.storage.rename(&from, &to).await,
            Route::Inside(b, to) => self.move_across(a, &from, b, &to).await,
        }
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        match self.route(path)? {
            Route::Root | Route::Top(_) => Ok(()),
            Route::Inside(m, rest) => m.storage.mkdir(&rest).await,
            Route::Unknown(p) => Err(self.fixed_root(&p)),
        }
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        match self.route(path)? {
            Route::Root => Err(denied("cannot remove the root directory")),
            Route::Top(m) => Err(denied(format!(
                "{}: a configured directory of a combine backend cannot be removed",
                m.dir
            ))),
            Route::Inside(m, rest) => m.storage.rmdir(&rest).await,
            Route::Unknown(p) => Err(StorageError::not_found(&p)),
        }
    }

    /// The sum over the upstreams; a figure is known only when every upstream
    /// knows it, and `Unsupported` when no upstream reports anything.
    async fn usage(&self) -> Result<Usage> {
        let results =
            futures::future::join_all(self.members.iter().map(|m| m.storage.usage())).await;
        let mut parts = Vec::with_capacity(results.len());
        for (m, result) in self.members.iter().zip(results) {
            match result {
                Ok(u) => parts.push(u),
                Err(e) if e.kind == ErrorKind::Unsupported => parts.push(Usage::default()),
                Err(e) => return Err(context(&format!("combine upstream '{}'", m.dir), e)),
            }
        }
        if parts.iter().all(|u| *u == Usage::default()) {
            return Err(StorageError::unsupported(
                "no upstream of this combine backend reports its usage",
            ));
        }
        Ok(sum_usage(&parts))
    }

    async fn set_modified(&self, path: &str, time: SystemTime) -> Result<()> {
        match self.route(path)? {
            Route::Root => Err(StorageError::unsupported(
                "the root has no modification time",
            )),
            Route::Top(m) => Err(denied(format!(
                "{}: a configured directory of a combine backend cannot be changed",
                m.dir
            ))),
            Route::Inside(m, rest) => m.storage.set_modified(&rest, time).await,
            Route::Unknown(p) => Err(StorageError::not_found(&p)),
        }
    }

    /// Probes every upstream; a failure names the directory and its remote.
    async fn probe(&self) -> Result<()> {
        let results =
            futures::future::join_all(self.members.iter().map(|m| m.storage.probe())).await;
        for (m, result) in self.members.iter().zip(results) {
            result
                .map_err(|e| context(&format!("combine upstream '{}' ({})", m.dir, m.remote), e))?;
        }
        Ok(())
    }
}
