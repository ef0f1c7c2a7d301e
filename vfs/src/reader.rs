//! Streaming reads without the disk cache: ranged reads from the store with
//! sequential read-ahead.
//!
//! A reader keeps a window of *parts* (ranged reads spawned on the runtime,
//! each kept as the pieces the store gave, not copied together). The first read of a file
//! fetches one small part; every read that continues where the window goes
//! (or starts a little past its end: the kernel's parallel read-ahead
//! requests arrive out of order) counts as sequential, and sequential
//! readers keep up to
//! [`MAX_AHEAD`] parts in flight ahead of them, each twice the size of the
//! previous up to [`MAX_PART`]. A read outside the window drops it and starts
//! over small. Reads are answered with slices of the pieces (no copy unless
//! a read spans two pieces). Memory for read-ahead comes from a budget
//! shared by all readers of the mount; without budget a reader only fetches
//! what it is asked for.

use crate::error::VfsError;
use crate::inode::Node;
use berth_storage::Storage;
use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

/// Size of the first part of a reader.
const MIN_PART: u64 = 512 * 1024;
/// Largest part.
pub(crate) const MAX_PART: u64 = 16 * 1024 * 1024;
/// Most parts in flight ahead of a sequential reader.
const MAX_AHEAD: usize = 8;
/// Parts that end this far before a read are kept for reads arriving out of
/// order (the kernel issues read-ahead requests in parallel).
const KEEP_BEHIND: u64 = 4 * 1024 * 1024;
/// A read starting this far past the window's end still continues it (the
/// gap is fetched with it): for the same reason, a request can overtake the
/// one before it.
pub(crate) const REORDER_SLACK: u64 = 4 * 1024 * 1024;
/// Read-ahead budget of one mount, in KiB permits.
pub(crate) const BUDGET_KIB: usize = 512 * 1024;

type PartFuture = Shared<BoxFuture<'static, Result<Pieces, VfsError>>>;

/// A part's bytes as the store gave them, in order, each with its offset in
/// the part: concatenating them would copy every byte read once more (and
/// up to [`MAX_PART`] of fresh memory per part).
#[derive(Debug, Clone, Default)]
struct Pieces(Arc<Vec<(u64, Bytes)>>);

impl Pieces {
    fn new(pieces: Vec<Bytes>) -> Pieces {
        let mut at = 0u64;
        let placed = pieces
            .into_iter()
            .map(|piece| {
                let start = at;
                at += piece.len() as u64;
                (start, piece)
            })
            .collect();
        Pieces(Arc::new(placed))
    }

    fn len(&self) -> u64 {
        self.0
            .last()
            .map_or(0, |(at, piece)| at + piece.len() as u64)
    }

    /// Appends bytes `[from, to)` of the part to `out` (the first piece
    /// found by binary search: a part from S3 holds hundreds of pieces).
    fn extend_into(&self, from: u64, to: u64, out: &mut Vec<Bytes>) {
        let first = self
            .0
            .partition_point(|(at, piece)| at + piece.len() as u64 <= from);
        for (at, piece) in &self.0[first..] {
            if *at >= to {
                break;
            }
            let lo = from.saturating_sub(*at) as usize;
            let hi = (to - at).min(piece.len() as u64) as usize;
            if lo < hi {
                out.push(piece.slice(lo..hi));
            }
        }
    }
}

#[derive(Debug)]
struct Part {
    start: u64,
    len: u64,
    data: PartFuture,
    abort: AbortHandle,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Part {
    fn end(&self) -> u64 {
        self.start + self.len
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

/// The read state of one open handle.
#[derive(Debug)]
pub(crate) struct Reader {
    node: Arc<Node>,
    storage: Arc<dyn Storage>,
    budget: Arc<Semaphore>,
    parts: VecDeque<Part>,
    next_len: u64,
    sequential: usize,
    /// Size of the file when opened (parts are not requested past it).
    size: u64,
    /// The file was read through the disk cache meanwhile ([`Reader::forget`]):
    /// take its size again before the next read.
    resize: bool,
}

impl Reader {
    pub(crate) fn new(
        node: Arc<Node>,
        storage: Arc<dyn Storage>,
        budget: Arc<Semaphore>,
        size: u64,
    ) -> Self {
        Reader {
            node,
            storage,
            budget,
            parts: VecDeque::new(),
            next_len: MIN_PART,
            sequential: 0,
            size,
            resize: false,
        }
    }

    /// Drops what was read ahead, while the file's content is read through
    /// the disk cache (a writer put it there): when this reader is used
    /// again, the store may hold another version, of another size.
    pub(crate) fn forget(&mut self) {
        self.parts.clear();
        self.sequential = 0;
        self.resize = true;
    }

    fn spawn_part(&mut self, start: u64, len: u64, permit: Option<OwnedSemaphorePermit>) {
        let storage = self.storage.clone();
        let path = self.node.path();
        let task = tokio::spawn(async move {
            let mut body = storage.read(&path, Some((start, len))).await?;
            let (mut pieces, mut got) = (Vec::new(), 0u64);
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                let take = chunk.len().min((len - got) as usize);
                got += take as u64;
                if take > 0 {
                    pieces.push(chunk.slice(..take));
                }
                if got >= len {
                    break;
                }
            }
            Ok::<_, VfsError>(Pieces::new(pieces))
        });
        let abort = task.abort_handle();
        let data = async move {
            task.await
                .map_err(|e| VfsError::Cache(format!("read task failed: {e}")))?
        }
        .boxed()
        .shared();
        self.parts.push_back(Part {
            start,
            len,
            data,
            abort,
            _permit: permit,
        });
    }

    /// Reads up to `len` bytes at `offset`; short only at the end of the file.
    pub(crate) async fn read(&mut self, offset: u64, len: u64) -> Result<Bytes, VfsError> {
        if std::mem::take(&mut self.resize) {
            self.size = self.node.meta().size;
        }
        let end = offset.saturating_add(len);
        let window_end = self.parts.back().map_or(0, Part::end);
        let in_window = self
            .parts
            .front()
            .is_some_and(|f| f.start <= offset && offset < window_end + REORDER_SLACK);
        if in_window {
            self.sequential += 1;
            while self
                .parts
                .front()
                .is_some_and(|p| p.end() + KEEP_BEHIND <= offset)
            {
                self.parts.pop_front();
            }
        } else {
            self.parts.clear();
            self.sequential = 0;
            // Small files come in one part; otherwise start small.
            let first = if self.size <= 2 * MIN_PART {
                self.size.max(len)
            } else {
                len.max(MIN_PART)
            };
            self.spawn_part(offset, first, None);
            self.next_len = (first * 2).clamp(MIN_PART, MAX_PART);
        }
        // Cover the request itself (no budget needed), then read ahead.
        let covered = self.parts.back().map_or(offset, Part::end);
        if covered < end {
            let part = (end - covered).max(self.next_len.min(self.size.saturating_sub(covered)));
            self.spawn_part(covered, part, None);
            self.next_len = (self.next_len * 2).min(MAX_PART);
        }
        if self.sequential > 0 {
            let ahead = self.sequential.min(MAX_AHEAD);
            loop {
                let at = self.parts.back().map_or(offset, Part::end);
                let queued = self.parts.iter().filter(|p| p.start >= end).count();
                if queued >= ahead || at >= self.size {
                    break;
                }
                let part = self.next_len.min(self.size - at);
                let kib = part.div_ceil(1024) as u32;
                let Ok(permit) = self.budget.clone().try_acquire_many_owned(kib) else {
                    break;
                };
                self.spawn_part(at, part, Some(permit));
                self.next_len = (self.next_len * 2).min(MAX_PART);
            }
        }
        self.collect(offset, end).await
    }

    async fn collect(&self, offset: u64, end: u64) -> Result<Bytes, VfsError> {
        let mut slices = Vec::new();
        for part in &self.parts {
            if part.end() <= offset || part.start >= end {
                continue;
            }
            let data = part.data.clone().await?;
            let from = offset.max(part.start) - part.start;
            let to = end.min(part.end()) - part.start;
            data.extend_into(from, to, &mut slices);
            if data.len() < part.len {
                break; // end of file
            }
        }
        Ok(match slices.len() {
            0 => Bytes::new(),
            1 => slices.pop().expect("one slice"),
            _ => {
                let total = slices.iter().map(Bytes::len).sum();
                let mut buf = BytesMut::with_capacity(total);
                for slice in &slices {
                    buf.extend_from_slice(slice);
                }
                buf.freeze()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_give_any_range_without_copying_within_a_piece() {
        let whole: Vec<u8> = (0..100u8).collect();
        let pieces = Pieces::new(vec![
            Bytes::copy_from_slice(&whole[..10]),
            Bytes::copy_from_slice(&whole[10..60]),
            Bytes::copy_from_slice(&whole[60..]),
        ]);
        assert_eq!(pieces.len(), 100);
        for (from, to) in [
            (0, 100),
            (0, 10),
            (5, 15),
            (10, 60),
            (59, 61),
            (95, 140),
            (100, 120),
        ] {
            let mut out = Vec::new();
            pieces.extend_into(from, to, &mut out);
            let got: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
            let end = to.min(100) as usize;
            assert_eq!(got, whole[(from as usize).min(end)..end], "{from}..{to}");
            assert!(out.iter().all(|b| !b.is_empty()), "{from}..{to}");
        }
        let mut out = Vec::new();
        pieces.extend_into(12, 20, &mut out);
        assert_eq!(out.len(), 1, "one piece, one slice");
        assert_eq!(
            out[0].as_ptr(),
            pieces.0[1].1[2..].as_ptr(),
            "a slice, not a copy"
        );
    }
}
