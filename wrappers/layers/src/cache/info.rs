//! Cached stats and listing pages (`info_age`), dropped at once when the
//! cache itself changes the paths they describe.

use berth_storage::{Entry, ListPage};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Past this many cached stats, expired ones are purged on insert (and
/// everything if that is not enough).
const MAX_STATS: usize = 100_000;

/// Key of a cached listing page inside its directory.
type PageKey = (Option<String>, usize);

/// Stats and listing pages younger than `age`.
#[derive(Debug)]
pub struct Info {
    age: Duration,
    stats: HashMap<String, (Entry, Instant)>,
    lists: HashMap<String, HashMap<PageKey, (ListPage, Instant)>>,
}

/// Whether `path` is `root` or below it (`""` is the root of everything).
fn within(path: &str, root: &str) -> bool {
    root.is_empty()
        || path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl Info {
    /// Caches for `age` (zero caches nothing).
    pub fn new(age: Duration) -> Info {
        Info {
            age,
            stats: HashMap::new(),
            lists: HashMap::new(),
        }
    }

    fn fresh(&self, at: Instant) -> bool {
        at.elapsed() < self.age
    }

    /// The cached stat of `path`.
    pub fn stat(&self, path: &str) -> Option<Entry> {
        let (entry, at) = self.stats.get(path)?;
        self.fresh(*at).then(|| entry.clone())
    }

    /// Caches the stat of `path`.
    pub fn put_stat(&mut self, path: &str, entry: Entry) {
        if self.age.is_zero() {
            return;
        }
        if self.stats.len() >= MAX_STATS {
            let age = self.age;
            self.stats.retain(|_, (_, at)| at.elapsed() < age);
            if self.stats.len() >= MAX_STATS {
                self.stats.clear();
            }
        }
        self.stats.insert(path.to_string(), (entry, Instant::now()));
    }

    /// The cached page of `dir` for this cursor and limit.
    pub fn page(&self, dir: &str, cursor: &Option<String>, limit: usize) -> Option<ListPage> {
        let (page, at) = self.lists.get(dir)?.get(&(cursor.clone(), limit))?;
        self.fresh(*at).then(|| page.clone())
    }

    /// Caches a page of `dir`, and the stats of its entries.
    pub fn put_page(&mut self, dir: &str, cursor: Option<String>, limit: usize, page: &ListPage) {
        if self.age.is_zero() {
            return;
        }
        for entry in &page.entries {
            self.put_stat(&entry.path, entry.clone());
        }
        self.lists
            .entry(dir.to_string())
            .or_default()
            .insert((cursor, limit), (page.clone(), Instant::now()));
    }

    /// Drops what a change of `path` (and, for a directory, of everything
    /// below it) makes stale: its stats, those of its ancestors, and the
    /// listings of all of them.
    pub fn invalidate(&mut self, path: &str) {
        self.stats.retain(|p, _| !within(p, path));
        self.lists.retain(|d, _| !within(d, path));
        let mut at = path;
        while let Some((parent, _)) = at.rsplit_once('/') {
            self.stats.remove(parent);
            self.lists.remove(parent);
            at = parent;
        }
        self.lists.remove("");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_storage::EntryKind;

    fn file(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            size: 1,
            modified: None,
        }
    }

    #[test]
    fn invalidation_covers_ancestors_and_subtree() {
        let mut info = Info::new(Duration::from_secs(60));
        for p in ["a", "a/b", "a/b/c", "a/b/c/d", "a/bx", "z"] {
            info.put_stat(p, file(p));
        }
        for d in ["", "a", "a/b", "a/b/c", "a/bx", "z"] {
            info.put_page(d, None, 0, &ListPage::default());
        }
        info.invalidate("a/b");
        for gone in ["a", "a/b", "a/b/c", "a/b/c/d"] {
            assert!(info.stat(gone).is_none(), "{gone}");
        }
        for kept in ["a/bx", "z"] {
            assert!(info.stat(kept).is_some(), "{kept}");
            assert!(info.page(kept, &None, 0).is_some(), "{kept}");
        }
        for gone in ["", "a", "a/b", "a/b/c"] {
            assert!(info.page(gone, &None, 0).is_none(), "{gone}");
        }
    }

    #[test]
    fn zero_age_keeps_nothing() {
        let mut info = Info::new(Duration::ZERO);
        info.put_stat("a", file("a"));
        info.put_page("", None, 0, &ListPage::default());
        assert!(info.stat("a").is_none());
        assert!(info.page("", &None, 0).is_none());
    }
}
