//! Streaming writes: a body up to `upload_cutoff` is sent in one Put Blob;
//! a longer one is staged as `chunk_size` blocks with `upload_concurrency`
//! in flight and committed as a block list. A body that fails midway leaves
//! only uncommitted blocks, which Azure discards: the old blob stays.

use crate::storage::AzureStorage;
use azure_core::Uuid;
use azure_storage_blob::models::{
    BlockBlobClientCommitBlockListOptions, BlockBlobClientUploadOptions, BlockLookupList,
};
use berth_storage::{ByteStream, Entry, EntryKind, ErrorKind, Result, StorageError};
use bytes::{Bytes, BytesMut};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use md5::{Digest, Md5};
use std::num::NonZero;
use std::time::SystemTime;

/// Azure's limit of blocks in one blob.
const MAX_BLOCKS: usize = 50_000;

/// A block id: the upload's random id and the block index, 20 bytes, the
/// same length for every block of a blob as Azure requires.
fn block_id(upload: &Uuid, index: usize) -> Vec<u8> {
    let mut id = upload.as_bytes().to_vec();
    id.extend_from_slice(&(index as u32).to_be_bytes());
    id
}

impl AzureStorage {
    /// Writes `body` to `blob` in `container` (the path checks are done).
    pub(crate) async fn upload(
        &self,
        path: &str,
        container: &str,
        blob: &str,
        mut body: ByteStream,
    ) -> Result<Entry> {
        let mut md5 = (!self.options.disable_checksum).then(Md5::new);
        let cutoff = self.options.upload_cutoff as usize;
        let mut buf = BytesMut::new();
        let mut ended = false;
        while buf.len() <= cutoff {
            match body.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk?),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        let client = self.blob_client(container, blob).block_blob_client();
        let (size, modified) = if ended {
            let data = buf.freeze();
            if let Some(h) = md5.as_mut() {
                h.update(&data);
            }
            let options = BlockBlobClientUploadOptions {
                tier: self.options.access_tier.clone(),
                blob_content_md5: md5.map(|h| h.finalize().to_vec()),
                parallel: NonZero::new(1),
                partition_size: NonZero::new((data.len() as u64).max(1)),
                ..Default::default()
            };
            let result = self
                .replacing(container, blob, path, || {
                    client.upload(data.clone().into(), Some(options.clone()))
                })
                .await?;
            (data.len() as u64, result.last_modified)
        } else {
            self.stage_and_commit(path, container, blob, buf, body, md5)
                .await?
        };
        Ok(Entry {
            path: path.to_string(),
            kind: EntryKind::File,
            size,
            modified: Some(
                modified
                    .map(SystemTime::from)
                    .unwrap_or_else(SystemTime::now),
            ),
        })
    }

    /// Stages the body as blocks and commits them; returns the size and the
    /// time of the commit.
    async fn stage_and_commit(
        &self,
        path: &str,
        container: &str,
        blob: &str,
        mut buf: BytesMut,
        mut body: ByteStream,
        mut md5: Option<Md5>,
    ) -> Result<(u64, Option<azure_core::time::OffsetDateTime>)> {
        let client = self.blob_client(container, blob).block_blob_client();
        let chunk = self.options.chunk_size as usize;
        let concurrency = self.options.upload_concurrency;
        let upload = Uuid::new_v4();
        let mut ids: Vec<Vec<u8>> = Vec::new();
        let mut in_flight = FuturesUnordered::new();
        let mut size = 0u64;
        let mut ended = false;
        loop {
            while buf.len() >= chunk || (ended && !buf.is_empty()) {
                let piece: Bytes = buf.split_to(chunk.min(buf.len())).freeze();
                if let Some(h) = md5.as_mut() {
                    h.update(&piece);
                }
                size += piece.len() as u64;
                if ids.len() == MAX_BLOCKS {
                    return Err(StorageError::new(
                        ErrorKind::Unsupported,
                        format!(
                            "{path}: larger than {MAX_BLOCKS} blocks of chunk_size {chunk} bytes; raise chunk_size"
                        ),
                    ));
                }
                let id = block_id(&upload, ids.len());
                ids.push(id.clone());
                let len = piece.len() as u64;
                if ids.len() == 1 {
                    // The first block creates the container when needed,
                    // before the others fan out.
                    self.in_container(container, path, || {
                        client.stage_block(&id, len, piece.clone().into(), None)
                    })
                    .await?;
                    continue;
                }
                let client = &client;
                in_flight.push(async move {
                    client
                        .stage_block(&id, len, piece.into(), None)
                        .await
                        .map(|_| ())
                });
                while in_flight.len() >= concurrency {
                    if let Some(Err(e)) = in_flight.next().await {
                        return Err(self.fail(e, path));
                    }
                }
            }
            if ended {
                break;
            }
            match body.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk?),
                None => ended = true,
            }
        }
        while let Some(done) = in_flight.next().await {
            done.map_err(|e| self.fail(e, path))?;
        }
        let options = BlockBlobClientCommitBlockListOptions {
            tier: self.options.access_tier.clone(),
            blob_content_md5: md5.map(|h| h.finalize().to_vec()),
            ..Default::default()
        };
        let response = self
            .replacing(container, blob, path, || {
                let list = BlockLookupList {
                    latest: Some(ids.clone()),
                    ..Default::default()
                };
                let options = options.clone();
                let client = &client;
                async move {
                    client
                        .commit_block_list(list.try_into()?, Some(options))
                        .await
                }
            })
            .await?;
        use azure_storage_blob::models::BlockBlobClientCommitBlockListResultHeaders;
        Ok((size, response.last_modified().ok().flatten()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_have_one_length() {
        let upload = Uuid::new_v4();
        let a = block_id(&upload, 0);
        let b = block_id(&upload, 49_999);
        assert_eq!(a.len(), 20);
        assert_eq!(a.len(), b.len());
        assert_ne!(a, b);
        assert_eq!(&a[..16], &b[..16]);
    }
}
