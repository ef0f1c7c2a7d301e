//! Upload bodies: read ahead far enough to tell small bodies (one request
//! through the SDK) from large ones (a resumable upload).

use berth_storage::{ByteStream, Result};
use bytes::Bytes;
use futures::StreamExt;

/// A body after reading ahead.
pub(crate) enum ReadAhead {
    /// The whole body, which ended within the read-ahead.
    Whole(Vec<Bytes>),
    /// The first chunks (more than the threshold) and the rest.
    Partial {
        /// Chunks read so far.
        head: Vec<Bytes>,
        /// The unread rest of the body.
        rest: ByteStream,
    },
}

/// Reads `body` until more than `threshold` bytes or its end. A body that
/// fails within that fails here, before anything is sent.
pub(crate) async fn read_ahead(mut body: ByteStream, threshold: usize) -> Result<ReadAhead> {
    let mut head = Vec::new();
    let mut len = 0usize;
    while len <= threshold {
        match body.next().await {
            None => return Ok(ReadAhead::Whole(head)),
            Some(Err(e)) => return Err(e),
            Some(Ok(chunk)) if chunk.is_empty() => {}
            Some(Ok(chunk)) => {
                len += chunk.len();
                head.push(chunk);
            }
        }
    }
    Ok(ReadAhead::Partial { head, rest: body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_storage::{ErrorKind, StorageError};

    fn stream(chunks: Vec<Result<&'static [u8]>>) -> ByteStream {
        let items: Vec<Result<Bytes>> = chunks
            .into_iter()
            .map(|c| c.map(Bytes::from_static))
            .collect();
        futures::stream::iter(items).boxed()
    }

    #[tokio::test]
    async fn small_bodies_are_whole() {
        match read_ahead(stream(vec![Ok(b"ab"), Ok(b""), Ok(b"cd")]), 10).await {
            Ok(ReadAhead::Whole(chunks)) => assert_eq!(chunks.concat(), b"abcd"),
            _ => panic!("expected the whole body"),
        }
        assert!(matches!(
            read_ahead(stream(vec![]), 0).await,
            Ok(ReadAhead::Whole(c)) if c.is_empty()
        ));
    }

    #[tokio::test]
    async fn large_bodies_keep_the_rest() {
        match read_ahead(stream(vec![Ok(b"abc"), Ok(b"def"), Ok(b"gh")]), 4).await {
            Ok(ReadAhead::Partial { head, rest }) => {
                assert_eq!(head.concat(), b"abcdef");
                let rest: Vec<Bytes> = rest.map(|c| c.unwrap()).collect().await;
                assert_eq!(rest.concat(), b"gh");
            }
            _ => panic!("expected a partial body"),
        }
    }

    #[tokio::test]
    async fn failures_within_the_read_ahead_fail_it() {
        let failing = stream(vec![
            Ok(b"abc"),
            Err(StorageError::new(ErrorKind::Transient, "boom")),
        ]);
        match read_ahead(failing, 100).await {
            Err(e) => assert_eq!(e.message, "boom"),
            Ok(_) => panic!("a failing body must fail"),
        }
    }
}
