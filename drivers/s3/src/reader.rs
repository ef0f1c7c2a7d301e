//! Reads: one GetObject, with a `Range` header for ranged reads, streamed
//! as it arrives.

use crate::backend::{sse_c, S3Storage};
use crate::keys::Loc;
use berth_storage::{ByteStream, ErrorKind, Result, StorageError};
use futures::StreamExt;

/// The `Range` header value for `length` bytes from `offset` (`length > 0`).
pub(crate) fn range_header(offset: u64, length: u64) -> String {
    match offset.checked_add(length - 1) {
        Some(last) => format!("bytes={offset}-{last}"),
        None => format!("bytes={offset}-"),
    }
}

impl S3Storage {
    /// Streams the object at `loc`, or the `(offset, length)` range of it
    /// (clipped at the end; empty from the end on).
    pub(crate) async fn read_object(
        &self,
        loc: &Loc,
        range: Option<(u64, u64)>,
    ) -> Result<ByteStream> {
        let path = loc.path();
        if let Some((_, 0)) = range {
            // Nothing to fetch, but the object must exist.
            return match self.head_object(&loc.bucket, &loc.key).await? {
                Some(_) => Ok(futures::stream::empty().boxed()),
                None => Err(self.missing_file(loc).await),
            };
        }
        let request = self
            .client
            .get_object()
            .bucket(&loc.bucket)
            .key(&loc.key)
            .set_range(range.map(|(offset, length)| range_header(offset, length)));
        let out = match sse_c!(request, self.opts).send().await {
            Ok(out) => out,
            Err(err) => {
                // 416: the range starts at or past the end of an existing object.
                if err.raw_response().map(|r| r.status().as_u16()) == Some(416) {
                    return Ok(futures::stream::empty().boxed());
                }
                let mapped = self.fail(&path)(err);
                return Err(if mapped.kind == ErrorKind::NotFound {
                    self.missing_file(loc).await
                } else {
                    mapped
                });
            }
        };
        let body = out.body;
        let stream = futures::stream::unfold(Some(body), move |state| {
            let path = path.clone();
            async move {
                let mut body = state?;
                match body.next().await {
                    Some(Ok(bytes)) => Some((Ok(bytes), Some(body))),
                    Some(Err(err)) => Some((
                        Err(StorageError::new(
                            ErrorKind::Transient,
                            format!("S3 download of {path} failed: {err}"),
                        )),
                        None,
                    )),
                    None => None,
                }
            }
        });
        Ok(stream.boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers() {
        assert_eq!(range_header(0, 100), "bytes=0-99");
        assert_eq!(range_header(999_900, 1000), "bytes=999900-1000899");
        assert_eq!(range_header(5, u64::MAX), "bytes=5-");
    }
}
