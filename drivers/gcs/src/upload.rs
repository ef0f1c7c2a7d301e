//! Resumable uploads over the JSON API, for bodies above
//! [`RESUMABLE_THRESHOLD`](crate::RESUMABLE_THRESHOLD).
//!
//! Why not the SDK's: it sends its own `Host` header, holding only the host
//! name of a custom endpoint (gax `host.rs` drops the port), and
//! fake-gcs-server builds the session URL from that header, so the session
//! points at port 80 (`http://127.0.0.1/upload/...`) and every later request
//! fails; any server on a non-default port that echoes `Host` does the same.
//! reqwest sends the port.
//!
//! The body is sent in [`UPLOAD_CHUNK`] pieces, each held in memory until the
//! service confirms it; the last one carries the total size and the CRC32C of
//! the whole body (`x-goog-hash`), which the service checks. A piece that
//! fails transiently is resumed from what the service persisted, at most
//! [`ATTEMPTS`] times. A body that fails, or an upload that gives up,
//! cancels the session: nothing is created or replaced.

use crate::api::{CreateOptions, JsonApi, ObjectMeta};
use crate::backend::{ATTEMPTS, UPLOAD_CHUNK, UPLOAD_TIMEOUT};
use base64::Engine;
use berth_storage::{ByteStream, ErrorKind, Result, StorageError};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::header::{CONTENT_RANGE, LOCATION, RANGE};
use serde_json::json;
use std::time::Duration;

/// What the service said about a piece.
enum Sent {
    /// It persisted bytes `0..n` of the body.
    Persisted(u64),
    /// The object is complete.
    Done(ObjectMeta),
}

/// One upload session.
struct Session<'a> {
    api: &'a JsonApi,
    url: String,
    what: &'a str,
}

/// Uploads `head` then `rest` as `bucket/key` (`path` names it in errors).
pub(crate) async fn resumable(
    api: &JsonApi,
    (bucket, key): (&str, &str),
    path: &str,
    options: &CreateOptions,
    head: Vec<Bytes>,
    rest: ByteStream,
) -> Result<ObjectMeta> {
    let session = Session::start(api, bucket, key, path, options).await?;
    let mut input = futures::stream::iter(head.into_iter().map(Ok))
        .chain(rest)
        .boxed();
    match session.send_all(&mut input).await {
        Ok(meta) => Ok(meta),
        Err(e) => {
            session.cancel().await;
            Err(e)
        }
    }
}

/// `bytes=0-N` in a 308 answer: how much the service has.
fn persisted(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes=0-"))
        .and_then(|end| end.parse::<u64>().ok())
        .map_or(0, |end| end + 1)
}

/// The next piece: up to [`UPLOAD_CHUNK`] bytes, and whether the body ends
/// with it. `carry` holds what was read past the piece.
async fn next_piece(input: &mut ByteStream, carry: &mut Option<Bytes>) -> Result<(Bytes, bool)> {
    let mut buf = BytesMut::with_capacity(UPLOAD_CHUNK);
    while buf.len() < UPLOAD_CHUNK {
        let piece = match carry.take() {
            Some(piece) => piece,
            None => match input.next().await {
                Some(piece) => piece?,
                None => return Ok((buf.freeze(), true)),
            },
        };
        let room = UPLOAD_CHUNK - buf.len();
        if piece.len() > room {
            buf.extend_from_slice(&piece[..room]);
            *carry = Some(piece.slice(room..));
        } else {
            buf.extend_from_slice(&piece);
        }
    }
    // Full: the body ends here only if nothing follows.
    while carry.is_none() {
        match input.next().await {
            Some(piece) => {
                let piece = piece?;
                if !piece.is_empty() {
                    *carry = Some(piece);
                }
            }
            None => return Ok((buf.freeze(), true)),
        }
    }
    Ok((buf.freeze(), false))
}

impl<'a> Session<'a> {
    /// Opens a session (`uploadType=resumable`) with the creation options.
    async fn start(
        api: &'a JsonApi,
        bucket: &str,
        key: &str,
        what: &'a str,
        options: &CreateOptions,
    ) -> Result<Session<'a>> {
        let mut url = api.upload_url(bucket);
        url.query_pairs_mut()
            .append_pair("uploadType", "resumable")
            .append_pair("name", key);
        if !options.object_acl.is_empty() {
            url.query_pairs_mut()
                .append_pair("predefinedAcl", &options.object_acl);
        }
        let mut metadata = json!({ "name": key });
        if !options.storage_class.is_empty() {
            metadata["storageClass"] = json!(options.storage_class);
        }
        let request = api
            .http()
            .post(url)
            .header("x-upload-content-type", "application/octet-stream")
            .json(&metadata);
        let response = api.send_raw(request, what, true).await?;
        if !response.status().is_success() {
            return Err(api.status_error(response, what).await);
        }
        let url = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                StorageError::new(
                    ErrorKind::Other,
                    format!("{what}: the service opened no upload session (no Location)"),
                )
            })?
            .to_string();
        Ok(Session { api, url, what })
    }

    /// Sends the whole body, piece by piece.
    async fn send_all(&self, input: &mut ByteStream) -> Result<ObjectMeta> {
        let mut carry = None;
        let mut offset = 0u64;
        let mut crc = 0u32;
        loop {
            let (piece, last) = next_piece(input, &mut carry).await?;
            crc = crc32c::crc32c_append(crc, &piece);
            let total = last.then_some(offset + piece.len() as u64);
            match self.send_piece(offset, &piece, total, crc).await? {
                Sent::Done(meta) if last => return Ok(meta),
                Sent::Persisted(n) if !last => offset = n,
                _ => {
                    return Err(StorageError::new(
                        ErrorKind::Other,
                        format!(
                            "{}: the upload session ended out of step with the body",
                            self.what
                        ),
                    ))
                }
            }
        }
    }

    /// Sends `piece` (bytes `offset..` of the body; the last one when
    /// `total` is known) until the service has all of it.
    async fn send_piece(
        &self,
        offset: u64,
        piece: &Bytes,
        total: Option<u64>,
        crc: u32,
    ) -> Result<Sent> {
        let end = offset + piece.len() as u64;
        let mut from = 0usize;
        let mut failures = 0u32;
        loop {
            let part = piece.slice(from..);
            let start = offset + from as u64;
            let range = match (part.is_empty(), total) {
                (true, Some(total)) => format!("bytes */{total}"),
                (true, None) => return Ok(Sent::Persisted(end)),
                (false, Some(total)) => format!("bytes {start}-{}/{total}", end - 1),
                (false, None) => format!("bytes {start}-{}/*", end - 1),
            };
            let mut request = self
                .api
                .http()
                .put(&self.url)
                .timeout(UPLOAD_TIMEOUT)
                .header(CONTENT_RANGE, range)
                .body(part);
            if total.is_some() {
                let hash = base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes());
                request = request.header("x-goog-hash", format!("crc32c={hash}"));
            }
            let failed = match self.api.send_raw(request, self.what, false).await {
                Ok(response) => match response.status().as_u16() {
                    200 | 201 if total.is_some() => {
                        return Ok(Sent::Done(self.api.parse(response, self.what).await?))
                    }
                    308 => {
                        let have = persisted(&response);
                        if have < offset {
                            return Err(StorageError::new(
                                ErrorKind::Transient,
                                format!("{}: the upload session lost data", self.what),
                            ));
                        }
                        let have = (have - offset).min(piece.len() as u64) as usize;
                        if total.is_none() && have == piece.len() {
                            return Ok(Sent::Persisted(end));
                        }
                        let finish = total.is_some() && have == piece.len() && from < have;
                        if have > from || finish {
                            from = have;
                            continue;
                        }
                        StorageError::new(
                            ErrorKind::Transient,
                            format!("{}: the upload made no progress", self.what),
                        )
                    }
                    _ => self.api.status_error(response, self.what).await,
                },
                Err(e) => e,
            };
            failures += 1;
            if !failed.is_retryable() || failures >= ATTEMPTS {
                return Err(failed);
            }
            tokio::time::sleep(Duration::from_millis(100 << failures)).await;
            match self.query().await {
                Ok(Sent::Done(meta)) if total.is_some() => return Ok(Sent::Done(meta)),
                Ok(Sent::Persisted(have)) if have >= offset => {
                    from = (have - offset).min(piece.len() as u64) as usize;
                }
                // Still unreachable: try the same bytes again.
                Err(e) if e.is_retryable() => {}
                Ok(_) => return Err(failed),
                Err(e) => return Err(e),
            }
        }
    }

    /// Asks how much the service has (`Content-Range: bytes */*`).
    async fn query(&self) -> Result<Sent> {
        let request = self
            .api
            .http()
            .put(&self.url)
            .header(CONTENT_RANGE, "bytes */*")
            .body(Bytes::new());
        let response = self.api.send_raw(request, self.what, false).await?;
        match response.status().as_u16() {
            200 | 201 => Ok(Sent::Done(self.api.parse(response, self.what).await?)),
            308 => Ok(Sent::Persisted(persisted(&response))),
            _ => Err(self.api.status_error(response, self.what).await),
        }
    }

    /// Abandons the session (best effort: an unfinished session expires
    /// on its own after a week and never becomes an object).
    async fn cancel(&self) {
        let request = self.api.http().delete(&self.url);
        if let Err(e) = self.api.send_raw(request, self.what, false).await {
            tracing::debug!(error = %e, "cancelling an upload session failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pieces_are_full_chunks_and_the_last_is_marked() {
        let data = vec![7u8; UPLOAD_CHUNK * 2 + 5];
        let pieces: Vec<berth_storage::Result<Bytes>> = data
            .chunks(1 << 20)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut input: ByteStream = futures::stream::iter(pieces).boxed();
        let mut carry = None;
        let (a, last_a) = next_piece(&mut input, &mut carry).await.unwrap();
        let (b, last_b) = next_piece(&mut input, &mut carry).await.unwrap();
        let (c, last_c) = next_piece(&mut input, &mut carry).await.unwrap();
        assert_eq!((a.len(), last_a), (UPLOAD_CHUNK, false));
        assert_eq!((b.len(), last_b), (UPLOAD_CHUNK, false));
        assert_eq!((c.len(), last_c), (5, true));
    }

    #[tokio::test]
    async fn an_exact_multiple_ends_on_a_full_piece() {
        let pieces: Vec<berth_storage::Result<Bytes>> =
            vec![Ok(Bytes::from(vec![1u8; UPLOAD_CHUNK])), Ok(Bytes::new())];
        let mut input: ByteStream = futures::stream::iter(pieces).boxed();
        let mut carry = None;
        let (a, last) = next_piece(&mut input, &mut carry).await.unwrap();
        assert_eq!((a.len(), last), (UPLOAD_CHUNK, true));
    }
}
