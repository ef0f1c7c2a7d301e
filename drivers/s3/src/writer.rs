//! Writes and server-side copies.
//!
//! A body is buffered up to `upload_cutoff`: if it ends there it goes up as
//! one PutObject. Past the cutoff the write becomes a multipart upload of
//! `chunk_size` parts with up to `upload_concurrency` parts in flight (each
//! a task of its own, so parts upload while the body is still being read).
//! Nothing becomes visible before CompleteMultipartUpload; on any failure
//! the upload is aborted (unless `leave_parts_on_error`), so a failed write
//! leaves the previous object (or nothing) in place. Each PutObject and
//! UploadPart carries a Content-MD5 the server checks (unless
//! `disable_checksum`), and their in-memory bodies get a small bounded SDK
//! retry ([`WRITE_ATTEMPTS`](crate::client::WRITE_ATTEMPTS)) since the retry
//! layer does not retry writes.

use crate::backend::{new_object, sse_c, sse_c_source, S3Storage};
use crate::client::{map_sdk_error, write_retry};
use crate::config::S3Options;
use crate::keys::{encode_copy_source, Loc};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::create_multipart_upload::{
    CreateMultipartUploadError, CreateMultipartUploadOutput,
};
use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use aws_smithy_xml::decode::{try_data, Document};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use berth_storage::{ByteStream, Entry, EntryKind, ErrorKind, Result, StorageError};
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// One uploaded part: its number, what CompleteMultipartUpload needs, and
/// the MD5 of its data (for the multipart ETag check).
type PartDone = (i32, CompletedPart, [u8; 16]);

/// The ETag S3 gives a multipart object: MD5 of the parts' MD5s, `-count`.
pub(crate) fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut all = Md5::new();
    for md5 in part_md5s {
        all.update(md5);
    }
    let digest = all.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{}", part_md5s.len())
}

/// The `UploadId` in the XML of a CreateMultipartUpload answer, whatever
/// its root element is called (read with the SDK's own XML decoder).
fn upload_id_in(xml: &[u8]) -> Option<String> {
    let mut doc = Document::try_from(xml).ok()?;
    let mut root = doc.root_element().ok()?;
    while let Some(mut tag) = root.next_tag() {
        if tag.start_el().matches("UploadId") {
            return try_data(&mut tag).ok().map(|id| id.trim().to_string());
        }
    }
    None
}

/// Everything a part-upload task needs, owned.
#[derive(Clone)]
struct PartTarget {
    client: Client,
    opts: Arc<S3Options>,
    bucket: String,
    key: String,
    upload_id: String,
}

impl PartTarget {
    async fn upload(self, number: i32, data: Bytes) -> Result<PartDone> {
        let md5: [u8; 16] = Md5::digest(&data).into();
        let path = berth_storage::join_path(&self.bucket, &self.key);
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .content_length(data.len() as i64)
            .set_content_md5((!self.opts.disable_checksum).then(|| BASE64.encode(md5)))
            .body(SdkBody::from(data));
        let mut request = sse_c!(request, self.opts)
            .customize()
            .config_override(write_retry());
        if self.opts.unsigned_payload {
            request = request.disable_payload_signing();
        }
        let out = request
            .send()
            .await
            .map_err(|e| map_sdk_error(e, &self.opts.endpoint.url, &path))?;
        let part = CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag().map(str::to_string))
            .build();
        Ok((number, part, md5))
    }
}

impl S3Storage {
    /// Uploads the body to `loc` (bucket checked by the caller).
    pub(crate) async fn write_object(&self, loc: &Loc, mut body: ByteStream) -> Result<Entry> {
        let limit = self.opts.single_put_limit();
        let mut buffer = BytesMut::new();
        while let Some(chunk) = body.next().await {
            buffer.extend_from_slice(&chunk?);
            if buffer.len() as u64 > limit {
                if !self.opts.multipart_uploads {
                    return Err(StorageError::new(
                        ErrorKind::Quota,
                        format!(
                            "{}: larger than 5 GiB, which needs a multipart upload (use_multipart_uploads is false)",
                            loc.path()
                        ),
                    ));
                }
                return self.write_multipart(loc, buffer, body).await;
            }
        }
        let data = buffer.freeze();
        let written = data.len() as u64;
        self.put_single(loc, data).await?;
        self.written_entry(loc, written).await
    }

    async fn put_single(&self, loc: &Loc, data: Bytes) -> Result<()> {
        let md5 = (!self.opts.disable_checksum).then(|| BASE64.encode(Md5::digest(&data)));
        let request = self
            .client
            .put_object()
            .bucket(&loc.bucket)
            .key(&loc.key)
            .content_length(data.len() as i64)
            .set_content_md5(md5)
            .body(SdkBody::from(data));
        let mut request = new_object!(request, self.opts)
            .customize()
            .config_override(write_retry());
        if self.opts.unsigned_payload {
            request = request.disable_payload_signing();
        }
        request.send().await.map_err(self.fail(&loc.path()))?;
        Ok(())
    }

    /// The entry of a finished write: read back with HEAD (checking the
    /// size), or built locally with `no_head`.
    async fn written_entry(&self, loc: &Loc, written: u64) -> Result<Entry> {
        if self.opts.no_head {
            return Ok(Entry {
                path: loc.path(),
                kind: EntryKind::File,
                size: written,
                modified: Some(SystemTime::now()),
            });
        }
        let entry = self
            .head_object(&loc.bucket, &loc.key)
            .await?
            .ok_or_else(|| {
                StorageError::new(
                    ErrorKind::Transient,
                    format!("{}: not visible right after the upload", loc.path()),
                )
            })?;
        if entry.size != written {
            return Err(StorageError::new(
                ErrorKind::Other,
                format!(
                    "{}: S3 stored {} bytes but {written} were sent",
                    loc.path(),
                    entry.size
                ),
            ));
        }
        Ok(entry)
    }

    async fn write_multipart(
        &self,
        loc: &Loc,
        buffer: BytesMut,
        body: ByteStream,
    ) -> Result<Entry> {
        let path = loc.path();
        let request = self
            .client
            .create_multipart_upload()
            .bucket(&loc.bucket)
            .key(&loc.key);
        let created = new_object!(request, self.opts)
            .customize()
            .config_override(write_retry())
            .send()
            .await;
        let upload_id = self.upload_id_of(created, &path)?;
        let target = PartTarget {
            client: self.client.clone(),
            opts: self.opts.clone(),
            bucket: loc.bucket.clone(),
            key: loc.key.clone(),
            upload_id: upload_id.clone(),
        };
        let result = async {
            let (parts, md5s, written) = self.upload_parts(&target, buffer, body).await?;
            let done = self
                .client
                .complete_multipart_upload()
                .bucket(&loc.bucket)
                .key(&loc.key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                );
            let done = sse_c!(done, self.opts)
                .customize()
                .config_override(write_retry())
                .send()
                .await
                .map_err(self.fail(&path))?;
            Ok::<_, StorageError>((done.e_tag().map(str::to_string), md5s, written))
        }
        .await;
        let (etag, md5s, written) = match result {
            Ok(done) => done,
            Err(err) => {
                self.abort_upload(&loc.bucket, &loc.key, &upload_id).await;
                return Err(err);
            }
        };
        if self.opts.multipart_etag {
            let want = multipart_etag(&md5s);
            let got = etag.unwrap_or_default().trim_matches('"').to_string();
            if got != want {
                if let Err(e) = self
                    .client
                    .delete_object()
                    .bucket(&loc.bucket)
                    .key(&loc.key)
                    .send()
                    .await
                {
                    tracing::warn!(path, error = %self.fail(&path)(e), "cannot remove a corrupt upload");
                }
                return Err(StorageError::new(
                    ErrorKind::Transient,
                    format!("{path}: multipart upload corrupted (ETag {got}, expected {want}); the object was removed"),
                ));
            }
        }
        self.written_entry(loc, written).await
    }

    /// The id of a multipart upload of `path` that CreateMultipartUpload
    /// answered. gofakes3 (the server of `rclone serve s3`) names the
    /// answer's root element `InitiateMultipartUpload` where S3 says
    /// `InitiateMultipartUploadResult`; the SDK refuses that answer, so the
    /// id is then read from the answer's body.
    fn upload_id_of(
        &self,
        created: std::result::Result<
            CreateMultipartUploadOutput,
            SdkError<CreateMultipartUploadError, HttpResponse>,
        >,
        path: &str,
    ) -> Result<String> {
        let id = match created {
            Ok(created) => created.upload_id().map(str::to_string),
            Err(SdkError::ServiceError(answer)) if answer.raw().status().is_success() => {
                match answer.raw().body().bytes().and_then(upload_id_in) {
                    Some(id) => Some(id),
                    None => return Err(self.fail(path)(SdkError::ServiceError(answer))),
                }
            }
            Err(err) => return Err(self.fail(path)(err)),
        };
        id.filter(|id| !id.is_empty()).ok_or_else(|| {
            StorageError::new(
                ErrorKind::Other,
                format!("S3 started a multipart upload of {path} but gave no UploadId"),
            )
        })
    }

    /// Aborts a failed multipart upload (unless `leave_parts_on_error`), so
    /// its parts stop taking space; a failure to abort is logged.
    async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) {
        if self.opts.leave_parts_on_error {
            return;
        }
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            let path = berth_storage::join_path(bucket, key);
            tracing::warn!(path, error = %self.fail(&path)(e), "cannot abort a failed multipart upload");
        }
    }

    /// Cuts the body into parts and uploads them concurrently; returns the
    /// completed parts in order, their MD5s and the byte count.
    async fn upload_parts(
        &self,
        target: &PartTarget,
        mut buffer: BytesMut,
        mut body: ByteStream,
    ) -> Result<(Vec<CompletedPart>, Vec<[u8; 16]>, u64)> {
        let chunk = self.opts.chunk_size as usize;
        let max_parts = self.opts.max_upload_parts;
        let slots = Arc::new(Semaphore::new(self.opts.upload_concurrency));
        let mut tasks: JoinSet<Result<PartDone>> = JoinSet::new();
        let mut done: Vec<PartDone> = Vec::new();
        let mut written: u64 = 0;
        let mut number: i32 = 0;
        let mut ended = false;
        loop {
            while !ended && buffer.len() < chunk {
                match body.next().await {
                    Some(piece) => buffer.extend_from_slice(&piece?),
                    None => ended = true,
                }
            }
            if buffer.is_empty() && number > 0 {
                break;
            }
            let data = buffer.split_to(buffer.len().min(chunk)).freeze();
            number += 1;
            if i64::from(number) > max_parts {
                return Err(StorageError::new(
                    ErrorKind::Quota,
                    format!(
                        "{}/{}: larger than chunk_size × max_upload_parts ({} × {max_parts} bytes); raise chunk_size",
                        target.bucket, target.key, self.opts.chunk_size
                    ),
                ));
            }
            written += data.len() as u64;
            let permit = slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| StorageError::new(ErrorKind::Other, "upload slots closed"))?;
            let part = target.clone();
            tasks.spawn(async move {
                let result = part.upload(number, data).await;
                drop(permit);
                result
            });
            while let Some(joined) = tasks.try_join_next() {
                done.push(joined_part(joined)?);
            }
            if ended && buffer.is_empty() {
                break;
            }
        }
        while let Some(joined) = tasks.join_next().await {
            done.push(joined_part(joined)?);
        }
        done.sort_by_key(|(n, _, _)| *n);
        let md5s = done.iter().map(|(_, _, md5)| *md5).collect();
        let parts = done.into_iter().map(|(_, part, _)| part).collect();
        Ok((parts, md5s, written))
    }

    /// Server-side copy of a `size`-byte object; multipart (UploadPartCopy
    /// of `copy_cutoff`-sized parts) above `copy_cutoff`.
    pub(crate) async fn copy_object(&self, from: &Loc, to: &Loc, size: i64) -> Result<()> {
        let source = encode_copy_source(&from.bucket, &from.key);
        let path = to.path();
        let size = u64::try_from(size).unwrap_or(0);
        if size <= self.opts.copy_cutoff {
            let request = self
                .client
                .copy_object()
                .bucket(&to.bucket)
                .key(&to.key)
                .copy_source(&source);
            let request = new_object!(request, self.opts);
            sse_c_source!(request, self.opts)
                .send()
                .await
                .map_err(self.fail(&path))?;
            return Ok(());
        }
        let request = self
            .client
            .create_multipart_upload()
            .bucket(&to.bucket)
            .key(&to.key);
        let created = new_object!(request, self.opts).send().await;
        let upload_id = self.upload_id_of(created, &path)?;
        let part_size = self.opts.copy_cutoff;
        let ranges: Vec<(i32, u64, u64)> = (0..size)
            .step_by(part_size as usize)
            .enumerate()
            .map(|(i, start)| (i as i32 + 1, start, (start + part_size).min(size) - 1))
            .collect();
        let result = async {
            let parts: Vec<CompletedPart> =
                futures::stream::iter(ranges.into_iter().map(|(number, first, last)| {
                    let request = self
                        .client
                        .upload_part_copy()
                        .bucket(&to.bucket)
                        .key(&to.key)
                        .upload_id(&upload_id)
                        .part_number(number)
                        .copy_source(&source)
                        .copy_source_range(format!("bytes={first}-{last}"));
                    let request = sse_c_source!(sse_c!(request, self.opts), self.opts);
                    let path = &path;
                    async move {
                        let out = request.send().await.map_err(self.fail(path))?;
                        Ok::<_, StorageError>(
                            CompletedPart::builder()
                                .part_number(number)
                                .set_e_tag(
                                    out.copy_part_result()
                                        .and_then(|r| r.e_tag())
                                        .map(str::to_string),
                                )
                                .build(),
                        )
                    }
                }))
                .buffered(self.opts.upload_concurrency)
                .try_collect()
                .await?;
            let done = self
                .client
                .complete_multipart_upload()
                .bucket(&to.bucket)
                .key(&to.key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                );
            sse_c!(done, self.opts)
                .send()
                .await
                .map_err(self.fail(&path))?;
            Ok::<_, StorageError>(())
        }
        .await;
        if let Err(err) = result {
            self.abort_upload(&to.bucket, &to.key, &upload_id).await;
            return Err(err);
        }
        Ok(())
    }
}

/// The result of a joined part task.
fn joined_part(
    joined: std::result::Result<Result<PartDone>, tokio::task::JoinError>,
) -> Result<PartDone> {
    joined
        .map_err(|e| StorageError::new(ErrorKind::Other, format!("part upload task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_are_read_whatever_the_root_is_called() {
        let gofakes3 = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUpload>\n  <Bucket>b</Bucket>\n  <Key>k</Key>\n  <UploadId>8028-f39a</UploadId>\n</InitiateMultipartUpload>";
        assert_eq!(upload_id_in(gofakes3).as_deref(), Some("8028-f39a"));
        let escaped = b"<InitiateMultipartUploadResult><UploadId>a&amp;b&lt;c</UploadId></InitiateMultipartUploadResult>";
        assert_eq!(upload_id_in(escaped).as_deref(), Some("a&b<c"));
        assert_eq!(upload_id_in(b"<Error><Code>x</Code></Error>"), None);
        assert_eq!(upload_id_in(b"<UploadId>unterminated"), None);
    }

    #[test]
    fn multipart_etag_is_md5_of_md5s() {
        let a: [u8; 16] = Md5::digest(b"part one").into();
        let b: [u8; 16] = Md5::digest(b"part two").into();
        let mut joined = a.to_vec();
        joined.extend_from_slice(&b);
        let want: String = Md5::digest(&joined)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        assert_eq!(multipart_etag(&[a, b]), format!("{want}-2"));
    }
}
