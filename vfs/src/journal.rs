//! The upload journal of a disk cache: one append-only log of which cached
//! files wait to be uploaded, and to which path.
//!
//! Records are appended with one `write` each, so queuing an upload costs no
//! file creation or rename (creates stay cheap under a busy disk):
//!
//! ```text
//! P <id> <mtime-ns or -> <size> <path-bytes>\n<path>\n   item <id> waits to upload to <path>
//! D <id>\n                                                item <id> is done (or dropped)
//! ```
//!
//! The last `P` of an id wins (renames append a new one). A record cut short
//! by a crash ends the replay. On open the log is replayed and rewritten with
//! the live entries only, and it is compacted the same way when it grows.

use crate::error::VfsError;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The log is rewritten when it grows past this size.
const COMPACT_AT: u64 = 4 * 1024 * 1024;

/// A live entry: the item's path, its explicitly set mtime, and its size
/// when journaled (used for empty files, which have no data file).
pub(crate) type Pending = (String, Option<SystemTime>, u64);

#[derive(Debug)]
struct Inner {
    file: File,
    size: u64,
    live: BTreeMap<u64, Pending>,
}

/// The journal file of one cache dir.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    inner: Mutex<Inner>,
}

fn encode_time(t: Option<SystemTime>) -> String {
    match t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) {
        Some(d) => d.as_nanos().to_string(),
        None => "-".into(),
    }
}

fn decode_time(s: &str) -> Option<SystemTime> {
    let nanos: u128 = s.parse().ok()?;
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

fn pending_record(id: u64, (path, mtime, size): &Pending) -> Vec<u8> {
    format!(
        "P {id} {} {size} {}\n{path}\n",
        encode_time(*mtime),
        path.len()
    )
    .into_bytes()
}

/// Replays a log: the live entries, up to the first damaged record.
fn replay(bytes: &[u8]) -> BTreeMap<u64, Pending> {
    let mut live = BTreeMap::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some(nl) = bytes[at..].iter().position(|b| *b == b'\n') else {
            break;
        };
        let Ok(line) = std::str::from_utf8(&bytes[at..at + nl]) else {
            break;
        };
        at += nl + 1;
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["D", id] => match id.parse::<u64>() {
                Ok(id) => {
                    live.remove(&id);
                }
                Err(_) => break,
            },
            ["P", id, time, size, len] => {
                let (Ok(id), Ok(size), Ok(len)) =
                    (id.parse::<u64>(), size.parse::<u64>(), len.parse::<usize>())
                else {
                    break;
                };
                let end = at + len;
                if end >= bytes.len() || bytes[end] != b'\n' {
                    break;
                }
                let Ok(path) = std::str::from_utf8(&bytes[at..end]) else {
                    break;
                };
                live.insert(id, (path.to_string(), decode_time(time), size));
                at = end + 1;
            }
            _ => break,
        }
    }
    live
}

impl Journal {
    /// Opens the journal at `path`, replays it and rewrites it compacted;
    /// returns it with the entries still waiting to upload.
    pub(crate) fn open(path: &Path) -> Result<(Journal, BTreeMap<u64, Pending>), VfsError> {
        let shown = path.display().to_string();
        let live = match fs::read(path) {
            Ok(bytes) => replay(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(VfsError::cache(&shown, e)),
        };
        let (file, size) = Self::rewrite(path, &live)?;
        let journal = Journal {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                file,
                size,
                live: live.clone(),
            }),
        };
        Ok((journal, live))
    }

    /// Writes `live` to a new log that replaces `path`; returns it open for
    /// appending, with its size.
    fn rewrite(path: &Path, live: &BTreeMap<u64, Pending>) -> Result<(File, u64), VfsError> {
        let shown = path.display().to_string();
        let tmp = path.with_extension("tmp");
        let mut body = Vec::new();
        for (id, entry) in live {
            body.extend_from_slice(&pending_record(*id, entry));
        }
        let write = || -> std::io::Result<File> {
            let mut f = File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
            OpenOptions::new().append(true).open(path)
        };
        let file = write().map_err(|e| VfsError::cache(&shown, e))?;
        Ok((file, body.len() as u64))
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append(&self, inner: &mut Inner, record: &[u8]) -> Result<(), VfsError> {
        inner
            .file
            .write_all(record)
            .map_err(|e| VfsError::cache(&self.path.display().to_string(), e))?;
        inner.size += record.len() as u64;
        Ok(())
    }

    /// Records that item `id` waits to be uploaded (`entry`: path, mtime set
    /// explicitly, size).
    pub(crate) fn pending(&self, id: u64, entry: Pending) -> Result<(), VfsError> {
        let mut inner = self.inner();
        self.append(&mut inner, &pending_record(id, &entry))?;
        inner.live.insert(id, entry);
        Ok(())
    }

    /// Records that item `id` no longer waits (uploaded or dropped).
    pub(crate) fn done(&self, id: u64) -> Result<(), VfsError> {
        let mut inner = self.inner();
        if inner.live.remove(&id).is_none() {
            return Ok(());
        }
        self.append(&mut inner, format!("D {id}\n").as_bytes())?;
        if inner.size > COMPACT_AT {
            let (file, size) = Self::rewrite(&self.path, &inner.live)?;
            inner.file = file;
            inner.size = size;
        }
        Ok(())
    }

    /// Makes the log durable on disk.
    pub(crate) fn sync(&self) -> Result<(), VfsError> {
        self.inner()
            .file
            .sync_data()
            .map_err(|e| VfsError::cache(&self.path.display().to_string(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_compacts_and_survives_torn_tails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.log");
        let t = UNIX_EPOCH + Duration::from_nanos(1_600_000_000_123_456_789);
        {
            let (j, live) = Journal::open(&path).unwrap();
            assert!(live.is_empty());
            j.pending(1, ("a/b.txt".into(), None, 5)).unwrap();
            j.pending(2, ("odd\nname".into(), Some(t), 0)).unwrap();
            j.pending(3, ("gone".into(), None, 1)).unwrap();
            j.done(3).unwrap();
            j.pending(1, ("a/renamed.txt".into(), None, 7)).unwrap();
        }
        // A record cut short by a crash ends the replay.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"P 4 - 0 100\nshort").unwrap();
        drop(f);
        let (j, live) = Journal::open(&path).unwrap();
        assert_eq!(live.len(), 2);
        assert_eq!(live[&1], ("a/renamed.txt".to_string(), None, 7));
        assert_eq!(live[&2], ("odd\nname".to_string(), Some(t), 0));
        j.done(1).unwrap();
        j.done(2).unwrap();
        j.sync().unwrap();
        drop(j);
        let (_, live) = Journal::open(&path).unwrap();
        assert!(live.is_empty());
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    }
}
