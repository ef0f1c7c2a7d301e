//! Cutting one streamed body into chunk-sized bodies, one after the other,
//! without holding a chunk in memory; the whole file is hashed on the way.

use crate::digest::{HashType, MultiHasher};
use berth_storage::{ByteStream, Result, StorageError};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::Mutex;

/// The body being cut, shared by the chunk streams handed to the upstream.
struct State {
    body: ByteStream,
    /// Bytes taken from `body` but not handed out yet.
    pending: VecDeque<Bytes>,
    ended: bool,
    error: Option<StorageError>,
    handed: u64,
    hasher: Option<MultiHasher>,
}

impl State {
    /// The next non-empty piece: pending bytes first, then the body.
    async fn next_piece(&mut self) -> Option<Result<Bytes>> {
        if let Some(piece) = self.pending.pop_front() {
            return Some(Ok(piece));
        }
        while !self.ended {
            match self.body.next().await {
                Some(Ok(piece)) if piece.is_empty() => {}
                Some(Ok(piece)) => return Some(Ok(piece)),
                Some(Err(e)) => {
                    self.ended = true;
                    self.error = Some(e.clone());
                    return Some(Err(e));
                }
                None => self.ended = true,
            }
        }
        None
    }
}

/// Splits a body into consecutive parts.
#[derive(Clone)]
pub struct Splitter {
    state: Arc<Mutex<State>>,
}

impl Splitter {
    /// Cuts `body`, hashing every byte handed out with `hash` (if any).
    pub fn new(body: ByteStream, hash: Option<HashType>) -> Splitter {
        Splitter {
            state: Arc::new(Mutex::new(State {
                body,
                pending: VecDeque::new(),
                ended: false,
                error: None,
                handed: 0,
                hasher: hash.map(|t| MultiHasher::new(&[t])),
            })),
        }
    }

    /// Reads ahead until more than `limit` bytes are buffered or the body
    /// ends. Returns (a copy of) the whole body when it ended within `limit`
    /// bytes, else `None`; either way the bytes read stay queued for
    /// [`Self::part`]. A failing body fails here.
    pub async fn small_body(&self, limit: u64) -> Result<Option<Bytes>> {
        let mut st = self.state.lock().await;
        let mut buffered = BytesMut::new();
        while buffered.len() as u64 <= limit {
            match st.next_piece().await {
                Some(Ok(piece)) => buffered.extend_from_slice(&piece),
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        let buffered = buffered.freeze();
        let whole = st.ended && st.pending.is_empty() && buffered.len() as u64 <= limit;
        if !buffered.is_empty() {
            st.pending.push_front(buffered.clone());
        }
        Ok(whole.then_some(buffered))
    }

    /// The next part: a stream of at most `size` bytes of the body.
    pub fn part(&self, size: u64) -> ByteStream {
        futures::stream::unfold((self.state.clone(), size), |(state, left)| async move {
            if left == 0 {
                return None;
            }
            let mut st = state.lock().await;
            let mut piece = match st.next_piece().await? {
                Ok(piece) => piece,
                Err(e) => {
                    drop(st);
                    return Some((Err(e), (state, 0)));
                }
            };
            if piece.len() as u64 > left {
                let rest = piece.split_off(left as usize);
                st.pending.push_front(rest);
            }
            st.handed += piece.len() as u64;
            if let Some(h) = &mut st.hasher {
                h.update(&piece);
            }
            drop(st);
            let left = left - piece.len() as u64;
            Some((Ok(piece), (state, left)))
        })
        .boxed()
    }

    /// Whether the body has no more bytes (reads ahead one piece to know).
    pub async fn exhausted(&self) -> bool {
        let mut st = self.state.lock().await;
        match st.next_piece().await {
            Some(Ok(piece)) => {
                st.pending.push_front(piece);
                false
            }
            Some(Err(_)) | None => true,
        }
    }

    /// The body's error, if it failed.
    pub async fn error(&self) -> Option<StorageError> {
        self.state.lock().await.error.clone()
    }

    /// Bytes handed out in parts so far.
    pub async fn handed(&self) -> u64 {
        self.state.lock().await.handed
    }

    /// The hex digest of everything handed out (when hashing).
    pub async fn digest(&self) -> Option<String> {
        let st = self.state.lock().await;
        let hasher = st.hasher.clone()?;
        hasher.finish().pop().map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_storage::{collect, ErrorKind};

    fn body(pieces: &[&[u8]]) -> ByteStream {
        let items: Vec<Result<Bytes>> = pieces
            .iter()
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .collect();
        futures::stream::iter(items).boxed()
    }

    #[tokio::test]
    async fn small_bodies_come_whole() {
        let s = Splitter::new(body(&[b"ab", b"", b"cd"]), None);
        assert_eq!(s.small_body(4).await.unwrap().unwrap(), &b"abcd"[..]);
        let s = Splitter::new(body(&[]), None);
        assert_eq!(s.small_body(4).await.unwrap().unwrap(), &b""[..]);
    }

    #[tokio::test]
    async fn parts_cut_at_exact_sizes() {
        let s = Splitter::new(body(&[b"abc", b"defgh", b"ij"]), Some(HashType::Md5));
        assert!(s.small_body(3).await.unwrap().is_none());
        let mut parts = Vec::new();
        loop {
            parts.push(collect(s.part(4)).await.unwrap());
            if s.exhausted().await {
                break;
            }
        }
        assert_eq!(
            parts,
            vec![b"abcd".to_vec(), b"efgh".to_vec(), b"ij".to_vec()]
        );
        assert_eq!(s.handed().await, 10);
        // md5("abcdefghij")
        assert_eq!(
            s.digest().await.unwrap(),
            "a925576942e94b2ef57a066101b48876"
        );
        // A body ending exactly on a boundary makes no empty part.
        let s = Splitter::new(body(&[b"abcdefgh"]), None);
        assert_eq!(collect(s.part(4)).await.unwrap(), b"abcd");
        assert!(!s.exhausted().await);
        assert_eq!(collect(s.part(4)).await.unwrap(), b"efgh");
        assert!(s.exhausted().await);
    }

    #[tokio::test]
    async fn failures_surface() {
        let items = vec![
            Ok(Bytes::from_static(b"abcdef")),
            Err(StorageError::new(ErrorKind::Transient, "boom")),
        ];
        let s = Splitter::new(futures::stream::iter(items).boxed(), None);
        assert!(s.small_body(3).await.unwrap().is_none());
        assert_eq!(collect(s.part(4)).await.unwrap(), b"abcd");
        assert!(collect(s.part(4)).await.is_err());
        assert!(s.exhausted().await);
        assert_eq!(s.error().await.unwrap().message, "boom");
        let items = vec![
            Ok(Bytes::from_static(b"ab")),
            Err(StorageError::new(ErrorKind::Transient, "early")),
        ];
        let s = Splitter::new(futures::stream::iter(items).boxed(), None);
        assert!(s.small_body(10).await.is_err());
    }
}
