//! One directory listing assembled from `objects.list` pages.
//!
//! GCS returns names in key order, while a listing is sorted by entry name,
//! and the two differ for directories: directory `a` is the prefix `a/`,
//! which GCS places after `a-b` and `a.txt` (`-` and `.` sort before `/`),
//! yet its entry name `a` sorts before them. So entries are only handed out
//! once no unseen directory can still sort before them: after the last key
//! consumed (the frontier) `f`, an unseen directory can only be named `f` or
//! more, or a prefix `p` of `f` followed in `f` by a byte below `/`. Such
//! candidates are resolved with one small request each
//! ([`Listing::candidate`]) rather than by reading the rest of the directory.
//!
//! The page cursor is the last entry's name; the next call restarts the
//! server listing at `startOffset = prefix + cursor` and drops names at or
//! before the cursor.

use crate::api::ObjectPage;
use berth_storage::{join_path, Entry, EntryKind, ListPage};
use std::collections::{BTreeMap, BTreeSet};

/// Children of one directory collected so far.
#[derive(Debug)]
pub(crate) struct Listing {
    /// The directory's storage path (`bucket/a/b`), for entry paths.
    dir: String,
    /// The key prefix of its children (`a/b/`, or `""` for a bucket root).
    prefix: String,
    cursor: Option<String>,
    entries: BTreeMap<String, Entry>,
    /// Relative name of the furthest key consumed.
    frontier: Option<String>,
    /// Candidate directory names already checked.
    checked: BTreeSet<String>,
    saw_marker: bool,
    complete: bool,
}

impl Listing {
    /// A listing of `dir` whose children's keys start with `prefix`,
    /// resuming after `cursor`.
    pub fn new(dir: String, prefix: String, cursor: Option<String>) -> Self {
        Listing {
            dir,
            prefix,
            cursor,
            entries: BTreeMap::new(),
            frontier: None,
            checked: BTreeSet::new(),
            saw_marker: false,
            complete: false,
        }
    }

    /// The `startOffset` for the server listing.
    pub fn start_offset(&self) -> Option<String> {
        self.cursor.as_ref().map(|c| format!("{}{c}", self.prefix))
    }

    /// Whether nothing at all was found (no entries, no marker).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && !self.saw_marker
    }

    fn after_cursor(&self, name: &str) -> bool {
        self.cursor.as_deref().is_none_or(|c| name > c)
    }

    fn insert_dir(&mut self, name: &str) {
        if name.is_empty() || !self.after_cursor(name) {
            return;
        }
        self.entries.insert(
            name.to_string(),
            Entry {
                path: join_path(&self.dir, name),
                kind: EntryKind::Dir,
                size: 0,
                modified: None,
            },
        );
    }

    /// Adds one server page; `next_page_token == None` completes the listing.
    pub fn add(&mut self, page: ObjectPage) {
        let prefix_len = self.prefix.len();
        let mut furthest: Option<String> = None;
        for item in page.items {
            let Some(name) = item.name.get(prefix_len..) else {
                continue;
            };
            furthest = Some(name.to_string());
            if name.is_empty() {
                self.saw_marker = true;
                continue;
            }
            // A name with an empty component (`a//b`) has no storage path.
            if name.contains('/') || !self.after_cursor(name) {
                continue;
            }
            // A directory of the same name wins (its contents stay reachable).
            if self
                .entries
                .get(name)
                .is_some_and(|e| e.kind == EntryKind::Dir)
            {
                continue;
            }
            let entry = Entry {
                path: join_path(&self.dir, name),
                kind: EntryKind::File,
                size: item.size,
                modified: item.modified(),
            };
            self.entries.insert(name.to_string(), entry);
        }
        let mut last_prefix = None;
        for prefix in page.prefixes {
            if let Some(rel) = prefix.get(prefix_len..) {
                self.insert_dir(rel.strip_suffix('/').unwrap_or(rel));
                last_prefix = Some(rel.to_string());
            }
        }
        // Items bound what the server has consumed; a page of prefixes
        // only (real GCS) has consumed up to its last prefix.
        if let Some(f) = furthest.or(last_prefix) {
            if self.frontier.as_deref().is_none_or(|old| f.as_str() > old) {
                self.frontier = Some(f);
            }
        }
        self.complete = page.next_page_token.is_none();
    }

    /// Unchecked names that could still be unseen directories sorting
    /// before the frontier: prefixes of it followed by a byte below `/`.
    fn candidates(&self) -> impl Iterator<Item = &str> {
        let frontier = self.frontier.as_deref().unwrap_or_default();
        frontier
            .bytes()
            .enumerate()
            .filter(|&(i, b)| i > 0 && b < b'/')
            .map(move |(i, _)| &frontier[..i])
            .filter(|p| {
                self.after_cursor(p)
                    && !self.checked.contains(*p)
                    && !self
                        .entries
                        .get(*p)
                        .is_some_and(|e| e.kind == EntryKind::Dir)
            })
    }

    /// Names below this are final: nothing unseen can sort before them.
    fn bound(&self) -> Option<&str> {
        self.candidates().next().or(self.frontier.as_deref())
    }

    fn final_count(&self) -> usize {
        if self.complete {
            return self.entries.len();
        }
        match self.bound() {
            Some(bound) => self
                .entries
                .keys()
                .take_while(|k| k.as_str() < bound)
                .count(),
            None => 0,
        }
    }

    /// Whether the first `limit` entries are known (or all of them).
    pub fn ready(&self, limit: usize) -> bool {
        self.complete || self.final_count() >= limit
    }

    /// The next name to check for being a directory (`prefix + name + "/"`
    /// has objects), when that would let the listing hand out more entries.
    pub fn candidate(&self) -> Option<String> {
        if self.complete {
            return None;
        }
        self.candidates()
            .next()
            .map(|p| format!("{}{p}/", self.prefix))
    }

    /// Records the answer for [`candidate`](Self::candidate) `key_prefix`.
    pub fn resolve(&mut self, key_prefix: &str, exists: bool) {
        let name = key_prefix
            .get(self.prefix.len()..)
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        if exists {
            self.insert_dir(&name);
        }
        self.checked.insert(name);
    }

    /// The first `limit` entries and the cursor after them.
    pub fn finish(self, limit: usize) -> ListPage {
        let more = self.entries.len() > limit || !self.complete;
        let entries: Vec<Entry> = self.entries.into_values().take(limit).collect();
        let next = if more {
            entries.last().map(|e| e.name().to_string())
        } else {
            None
        };
        ListPage { entries, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ObjectMeta;

    fn page(items: &[&str], prefixes: &[&str], more: bool) -> ObjectPage {
        ObjectPage {
            items: items
                .iter()
                .map(|n| ObjectMeta {
                    name: n.to_string(),
                    size: 1,
                    updated: None,
                })
                .collect(),
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            next_page_token: more.then(|| "t".to_string()),
        }
    }

    fn names(p: &ListPage) -> Vec<&str> {
        p.entries.iter().map(|e| e.name()).collect()
    }

    #[test]
    fn merges_prefixes_in_name_order() {
        let mut l = Listing::new("b/d".into(), "d/".into(), None);
        l.add(page(&["d/", "d/a.txt", "d/a0"], &["d/a/", "d/c/"], false));
        assert!(!l.is_empty() && l.ready(10));
        let p = l.finish(10);
        assert_eq!(names(&p), vec!["a", "a.txt", "a0", "c"]);
        assert_eq!(p.entries[0].path, "b/d/a");
        assert_eq!(p.entries[0].kind, EntryKind::Dir);
        assert_eq!(p.next, None);
    }

    #[test]
    fn waits_for_directories_that_may_sort_earlier() {
        // Page 1 ends at "a.txt": directory "a" (key "a/") could follow.
        let mut l = Listing::new("b".into(), String::new(), None);
        l.add(page(&["a-1", "a.txt"], &[], true));
        assert!(!l.ready(1));
        assert_eq!(l.candidate().as_deref(), Some("a/"));
        l.resolve("a/", true);
        // The frontier "a.txt" had one candidate ("a"): the bound is now
        // "a.txt" itself, so "a" and "a-1" are final.
        assert!(l.ready(1));
        let p = l.finish(1);
        assert_eq!(names(&p), vec!["a"]);
        assert_eq!(p.next.as_deref(), Some("a"));
    }

    #[test]
    fn marker_only_directory_is_not_missing() {
        let mut l = Listing::new("b/d".into(), "d/".into(), None);
        l.add(page(&["d/"], &[], false));
        assert!(!l.is_empty());
        assert!(l.finish(10).entries.is_empty());
        let mut l = Listing::new("b/d".into(), "d/".into(), None);
        l.add(page(&[], &[], false));
        assert!(l.is_empty());
    }

    #[test]
    fn resumes_after_cursor() {
        let mut l = Listing::new("b".into(), String::new(), Some("a".into()));
        assert_eq!(l.start_offset().as_deref(), Some("a"));
        l.add(page(&["a", "a.txt", "b"], &["a/"], false));
        let p = l.finish(10);
        assert_eq!(names(&p), vec!["a.txt", "b"]);
        assert_eq!(p.next, None);
    }

    #[test]
    fn pages_by_limit() {
        let mut l = Listing::new("b".into(), "x/".into(), None);
        l.add(page(&["x/f1", "x/f2", "x/f3"], &[], true));
        assert!(l.ready(2));
        assert!(l.candidate().is_none());
        let p = l.finish(2);
        assert_eq!(names(&p), vec!["f1", "f2"]);
        assert_eq!(p.next.as_deref(), Some("f2"));
    }

    #[test]
    fn missing_candidate_frees_the_bound() {
        let mut l = Listing::new("b".into(), String::new(), None);
        l.add(page(&["img-1", "img-2", "img-3"], &[], true));
        assert!(!l.ready(2));
        assert_eq!(l.candidate().as_deref(), Some("img/"));
        l.resolve("img/", false);
        assert!(l.ready(2));
        assert_eq!(names(&l.finish(2)), vec!["img-1", "img-2"]);
    }
}
