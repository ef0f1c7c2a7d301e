//! Listings: buckets at the root, and one directory level (delimiter `/`)
//! inside a bucket, in pages sorted by name with the last name as cursor.
//!
//! S3 returns keys in byte order, where a directory `a` sorts as `a/`, after
//! `a.txt` and `a-1` (bytes below `/`), while names sort `a` first. A page
//! is therefore collected in key order (one entry more than asked, to know
//! whether more follow), and a directory that sorts before an entry of the
//! page by name but after the last key S3 returned is looked up directly
//! (one `ListObjects` with `prefix=dir/`, needed only for names with a byte
//! below `/` right after a shorter name). The cursor `c` resumes with
//! `start-after=<prefix>c`; entries named `c` or less are skipped.

use crate::backend::{dir_entry, file_entry, S3Storage};
use crate::keys::{check_bucket_name, url_decode, Loc};
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::EncodingType;
use berth_storage::{join_path, Entry, EntryKind, ErrorKind, ListPage, Result, StorageError};
use std::collections::BTreeSet;

/// Where a raw listing starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    /// At the first key of the prefix.
    Beginning,
    /// After this key.
    After(String),
    /// Where the previous raw page stopped.
    Resume(Resume),
}

/// How to continue a truncated raw listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resume {
    /// ListObjectsV2 continuation token.
    Token(String),
    /// ListObjects (v1) marker: the last key returned.
    Marker(String),
}

/// One key or common prefix of a raw listing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawItem {
    /// An object.
    Object {
        key: String,
        size: i64,
        modified: Option<DateTime>,
    },
    /// A common prefix (ends with the delimiter).
    Prefix(String),
}

impl RawItem {
    /// The key or prefix, as S3 sorts it.
    pub fn key(&self) -> &str {
        match self {
            RawItem::Object { key, .. } | RawItem::Prefix(key) => key,
        }
    }
}

/// One ListObjects response, objects and prefixes merged in key order.
#[derive(Debug, Default)]
pub(crate) struct RawPage {
    pub items: Vec<RawItem>,
    /// Set when S3 has more.
    pub resume: Option<Resume>,
}

/// Names `p` such that a directory `p` sorts before `name` by name but after
/// it by key: the proper prefixes of `name` followed by a byte below `/`.
pub(crate) fn hidden_dir_candidates(name: &str) -> impl Iterator<Item = &str> {
    name.bytes()
        .enumerate()
        .filter(|&(i, b)| i > 0 && b < b'/')
        .map(move |(i, _)| &name[..i])
}

/// Sorts entries by name (a file before a directory of the same name) and
/// drops exact duplicates.
fn sort_entries(entries: &mut Vec<Entry>) {
    entries.sort_by(|a, b| {
        a.name()
            .cmp(b.name())
            .then_with(|| (a.kind == EntryKind::Dir).cmp(&(b.kind == EntryKind::Dir)))
    });
    entries.dedup_by(|a, b| a.name() == b.name() && a.kind == b.kind);
}

impl S3Storage {
    /// One ListObjects (v1 or v2 per `list_version`) call.
    pub(crate) async fn list_raw(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start: Start,
        max_keys: i32,
    ) -> Result<RawPage> {
        let encoded = self.opts.list_url_encode;
        let encoding = encoded.then_some(EncodingType::Url);
        let decode = |raw: &str| -> Result<String> {
            if !encoded {
                return Ok(raw.to_string());
            }
            url_decode(raw).ok_or_else(|| {
                StorageError::new(
                    ErrorKind::Other,
                    format!(
                        "S3 sent a malformed URL-encoded key '{raw}' (set list_url_encode=false?)"
                    ),
                )
            })
        };
        let object = |o: &aws_sdk_s3::types::Object| -> Result<RawItem> {
            Ok(RawItem::Object {
                key: decode(o.key().unwrap_or_default())?,
                size: o.size().unwrap_or(0),
                modified: o.last_modified().copied(),
            })
        };
        let prefix_of =
            |p: &aws_sdk_s3::types::CommonPrefix| decode(p.prefix().unwrap_or_default());
        if self.opts.list_version == 1 {
            let marker = match start {
                Start::Beginning => None,
                Start::After(key) | Start::Resume(Resume::Marker(key) | Resume::Token(key)) => {
                    Some(key)
                }
            };
            let out = self
                .client
                .list_objects()
                .bucket(bucket)
                .prefix(prefix)
                .set_delimiter(delimiter.map(str::to_string))
                .set_marker(marker)
                .max_keys(max_keys)
                .set_encoding_type(encoding)
                .send()
                .await
                .map_err(self.fail(bucket))?;
            let next = match out.next_marker().filter(|m| !m.is_empty()) {
                Some(marker) => Some(Resume::Marker(decode(marker)?)),
                None => None,
            };
            return finish(
                out.contents().iter().map(object).collect::<Result<_>>()?,
                out.common_prefixes()
                    .iter()
                    .map(prefix_of)
                    .collect::<Result<_>>()?,
                out.is_truncated().unwrap_or(false),
                next,
                true,
            );
        }
        let (after, token) = match start {
            Start::Beginning => (None, None),
            Start::After(key) | Start::Resume(Resume::Marker(key)) => (Some(key), None),
            Start::Resume(Resume::Token(token)) => (None, Some(token)),
        };
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_string))
            .set_start_after(after)
            .set_continuation_token(token)
            .max_keys(max_keys)
            .set_encoding_type(encoding)
            .send()
            .await
            .map_err(self.fail(bucket))?;
        finish(
            out.contents().iter().map(object).collect::<Result<_>>()?,
            out.common_prefixes()
                .iter()
                .map(prefix_of)
                .collect::<Result<_>>()?,
            out.is_truncated().unwrap_or(false),
            out.next_continuation_token()
                .filter(|t| !t.is_empty())
                .map(|t| Resume::Token(t.to_string())),
            false,
        )
    }

    /// The buckets, as one sorted page after `cursor`.
    pub(crate) async fn list_buckets(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ListPage> {
        let limit = if limit == 0 {
            self.opts.list_chunk as usize
        } else {
            limit
        };
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_buckets()
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(self.fail(""))?;
            names.extend(
                out.buckets()
                    .iter()
                    .filter_map(|b| b.name().map(str::to_string)),
            );
            match out.continuation_token().filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next.to_string()),
                None => break,
            }
        }
        names.sort();
        names.dedup();
        let mut names: Vec<String> = names
            .into_iter()
            .filter(|n| cursor.as_ref().is_none_or(|c| n > c))
            .collect();
        let next = if names.len() > limit {
            names.truncate(limit);
            names.last().cloned()
        } else {
            None
        };
        Ok(ListPage {
            entries: names.into_iter().map(dir_entry).collect(),
            next,
        })
    }

    /// One page of the directory `loc` (a bucket or a prefix in it).
    pub(crate) async fn list_dir(
        &self,
        loc: &Loc,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ListPage> {
        check_bucket_name(&loc.bucket)?;
        let limit = if limit == 0 {
            self.opts.list_chunk as usize
        } else {
            limit
        };
        let prefix = loc.dir_prefix();
        let after = |name: &str| cursor.as_deref().is_none_or(|c| name > c);
        let mut found: Vec<Entry> = Vec::new();
        let mut start = match &cursor {
            Some(c) => Start::After(format!("{prefix}{c}")),
            None => Start::Beginning,
        };
        let mut last_key = String::new();
        let mut saw_marker = false;
        let ended = loop {
            let want = (limit.saturating_add(1) - found.len()).min(self.opts.list_chunk as usize);
            let page = self
                .list_raw(
                    &loc.bucket,
                    &prefix,
                    Some("/"),
                    start,
                    i32::try_from(want).unwrap_or(i32::MAX),
                )
                .await?;
            for item in page.items {
                last_key = item.key().to_string();
                if item.key() == prefix {
                    saw_marker = true;
                    continue;
                }
                let Some(rest) = item.key().strip_prefix(&prefix) else {
                    continue;
                };
                let (name, entry) = match &item {
                    RawItem::Prefix(_) => {
                        let name = rest.trim_end_matches('/');
                        (name, dir_entry(join_path(&loc.path(), name)))
                    }
                    RawItem::Object { size, modified, .. } => (
                        rest,
                        file_entry(join_path(&loc.path(), rest), *size, modified.as_ref()),
                    ),
                };
                if name.is_empty() || name.contains('/') || !after(name) {
                    continue;
                }
                found.push(entry);
            }
            match page.resume {
                None => break true,
                Some(_) if found.len() > limit => break false,
                Some(resume) => start = Start::Resume(resume),
            }
        };
        sort_entries(&mut found);

        // Directories that sort before an entry of this page by name but
        // that S3 would only return later.
        if !ended {
            let seen: BTreeSet<String> = found
                .iter()
                .filter(|e| e.kind == EntryKind::Dir)
                .map(|e| e.name().to_string())
                .collect();
            let candidates: BTreeSet<String> = found
                .iter()
                .take(limit)
                .flat_map(|e| hidden_dir_candidates(e.name()))
                .filter(|p| after(p) && !seen.contains(*p))
                .filter(|p| format!("{prefix}{p}/") > last_key)
                .map(str::to_string)
                .collect();
            for name in candidates {
                let state = self
                    .dir_state(&loc.bucket, &format!("{prefix}{name}/"))
                    .await?;
                if state.exists() {
                    found.push(dir_entry(join_path(&loc.path(), &name)));
                }
            }
            sort_entries(&mut found);
        }

        if cursor.is_none() && found.is_empty() && !saw_marker && !loc.key.is_empty() {
            if self.head_object(&loc.bucket, &loc.key).await?.is_some() {
                return Err(crate::backend::conflict(&loc.path(), "not a directory"));
            }
            if self.opts.directory_markers {
                return Err(StorageError::not_found(&loc.path()));
            }
        }
        let next = if found.len() > limit || !ended {
            found.truncate(limit);
            found.last().map(|e| e.name().to_string())
        } else {
            None
        };
        Ok(ListPage {
            entries: found,
            next,
        })
    }
}

/// Merges objects and prefixes (each in key order) and works out how to
/// resume; `v1` resumes from the last key when S3 gave no `NextMarker`.
fn finish(
    objects: Vec<RawItem>,
    prefixes: Vec<String>,
    truncated: bool,
    next: Option<Resume>,
    v1: bool,
) -> Result<RawPage> {
    let mut items = objects;
    items.extend(prefixes.into_iter().map(RawItem::Prefix));
    items.sort_by(|a, b| a.key().cmp(b.key()));
    let resume = if !truncated {
        None
    } else if let Some(next) = next {
        Some(next)
    } else if v1 {
        match items.last() {
            Some(last) => Some(Resume::Marker(last.key().to_string())),
            None => {
                return Err(StorageError::new(
                    ErrorKind::Other,
                    "S3 protocol error: a truncated listing with no keys and no marker",
                ))
            }
        }
    } else {
        return Err(StorageError::new(
            ErrorKind::Other,
            "S3 protocol error: a truncated listing without a continuation token",
        ));
    };
    Ok(RawPage { items, resume })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_directory_candidates() {
        let got: Vec<&str> = hidden_dir_candidates("a b.c-d").collect();
        assert_eq!(got, vec!["a", "a b", "a b.c"]);
        assert_eq!(hidden_dir_candidates("plain_name0").count(), 0);
        assert_eq!(hidden_dir_candidates(".hidden").count(), 0);
        let got: Vec<&str> = hidden_dir_candidates("dïr.txt").collect();
        assert_eq!(got, vec!["dïr"]);
    }

    #[test]
    fn entries_sort_by_name_not_key() {
        let mut entries = vec![
            file_entry("b/a-1".into(), 1, None),
            file_entry("b/a.txt".into(), 1, None),
            dir_entry("b/a".into()),
            file_entry("b/a".into(), 1, None),
            dir_entry("b/a".into()),
        ];
        sort_entries(&mut entries);
        let got: Vec<(&str, EntryKind)> = entries.iter().map(|e| (e.name(), e.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("a", EntryKind::File),
                ("a", EntryKind::Dir),
                ("a-1", EntryKind::File),
                ("a.txt", EntryKind::File),
            ]
        );
    }

    #[test]
    fn raw_pages_merge_and_resume() {
        let object = |key: &str| RawItem::Object {
            key: key.into(),
            size: 1,
            modified: None,
        };
        let page = finish(
            vec![object("p/a.txt"), object("p/b")],
            vec!["p/a/".into()],
            true,
            None,
            true,
        )
        .unwrap();
        let keys: Vec<&str> = page.items.iter().map(RawItem::key).collect();
        assert_eq!(keys, vec!["p/a.txt", "p/a/", "p/b"]);
        assert_eq!(page.resume, Some(Resume::Marker("p/b".into())));
        assert!(finish(vec![], vec![], true, None, false).is_err());
        let done = finish(vec![object("x")], vec![], false, None, false).unwrap();
        assert_eq!(done.resume, None);
    }
}
