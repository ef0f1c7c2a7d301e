//! Upload bodies: a [`ByteStream`] as the SDK's [`StreamingSource`], read
//! ahead far enough to tell small bodies (one request) from large ones
//! (a resumable upload).

use berth_storage::{ByteStream, Result, StorageError};
use bytes::Bytes;
use futures::StreamExt;
use google_cloud_storage::streaming_source::{SizeHint, StreamingSource};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Where the body's own failure is kept, so the write reports it rather
/// than the SDK's wrapper around it.
pub(crate) type FailureSlot = Arc<Mutex<Option<StorageError>>>;

/// An upload body: the chunks read ahead, then the rest of the stream.
pub(crate) struct Body {
    head: VecDeque<Bytes>,
    // A Mutex only to make the stream `Sync`, as the SDK requires; it is
    // reached through `&mut self` and never locked.
    rest: Option<tokio::sync::Mutex<ByteStream>>,
    exact: Option<u64>,
    failure: FailureSlot,
}

impl Body {
    /// Reads `body` until more than `threshold` bytes or its end. A body
    /// that fails within that fails here, before anything is sent.
    pub async fn read_ahead(mut body: ByteStream, threshold: usize) -> Result<Self> {
        let mut head = VecDeque::new();
        let mut len = 0usize;
        while len <= threshold {
            match body.next().await {
                None => {
                    return Ok(Body {
                        head,
                        rest: None,
                        exact: Some(len as u64),
                        failure: FailureSlot::default(),
                    })
                }
                Some(Err(e)) => return Err(e),
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(chunk)) => {
                    len += chunk.len();
                    head.push_back(chunk);
                }
            }
        }
        Ok(Body {
            head,
            rest: Some(tokio::sync::Mutex::new(body)),
            exact: None,
            failure: FailureSlot::default(),
        })
    }

    /// The slot that receives the stream's failure, if it fails later.
    pub fn failure(&self) -> FailureSlot {
        self.failure.clone()
    }
}

impl StreamingSource for Body {
    type Error = StorageError;

    async fn next(&mut self) -> Option<std::result::Result<Bytes, StorageError>> {
        if let Some(chunk) = self.head.pop_front() {
            return Some(Ok(chunk));
        }
        let rest = self.rest.as_mut()?.get_mut();
        loop {
            match rest.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Err(e)) => {
                    if let Ok(mut slot) = self.failure.lock() {
                        *slot = Some(e.clone());
                    }
                    return Some(Err(e));
                }
                other => return other,
            }
        }
    }

    async fn size_hint(&self) -> std::result::Result<SizeHint, StorageError> {
        Ok(match self.exact {
            Some(len) => SizeHint::with_exact(len),
            None => SizeHint::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_storage::ErrorKind;

    fn stream(chunks: Vec<Result<&'static [u8]>>) -> ByteStream {
        futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| c.map(Bytes::from_static))
                .collect::<Vec<_>>(),
        )
        .boxed()
    }

    async fn drain(body: &mut Body) -> std::result::Result<Vec<u8>, StorageError> {
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn small_bodies_have_an_exact_size() {
        let mut body = Body::read_ahead(stream(vec![Ok(b"ab"), Ok(b""), Ok(b"cd")]), 10)
            .await
            .unwrap();
        assert_eq!(body.size_hint().await.unwrap().exact(), Some(4));
        assert_eq!(drain(&mut body).await.unwrap(), b"abcd");
    }

    #[tokio::test]
    async fn large_bodies_stream_the_rest() {
        let mut body = Body::read_ahead(stream(vec![Ok(b"abc"), Ok(b"def"), Ok(b"gh")]), 4)
            .await
            .unwrap();
        assert_eq!(body.size_hint().await.unwrap().upper(), None);
        assert_eq!(drain(&mut body).await.unwrap(), b"abcdefgh");
    }

    #[tokio::test]
    async fn failures_are_kept() {
        let failing = || {
            stream(vec![
                Ok(b"abc"),
                Ok(b"def"),
                Err(StorageError::new(ErrorKind::Transient, "boom")),
            ])
        };
        match Body::read_ahead(failing(), 100).await {
            Err(e) => assert_eq!(e.message, "boom"),
            Ok(_) => panic!("a failing body within the read-ahead must fail"),
        }
        let mut body = Body::read_ahead(failing(), 4).await.unwrap();
        let slot = body.failure();
        assert_eq!(drain(&mut body).await.unwrap_err().message, "boom");
        assert_eq!(slot.lock().unwrap().as_ref().unwrap().message, "boom");
    }
}
