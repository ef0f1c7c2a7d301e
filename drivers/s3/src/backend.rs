//! [`S3Storage`]: the [`Storage`] implementation. Listing, reading and
//! writing live in `lister.rs`, `reader.rs` and `writer.rs`; this file has
//! the metadata calls (stat, delete, copy, rename, mkdir, rmdir, probe) and
//! the helpers they share.

use crate::client::{build_client, map_sdk_error};
use crate::config::S3Options;
use crate::keys::{check_bucket_name, locate, Loc};
use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{BucketCannedAcl, BucketLocationConstraint, CreateBucketConfiguration};
use aws_sdk_s3::Client;
use berth_storage::{
    ByteStream, Capability, Entry, EntryKind, ErrorKind, ListPage, Result, Storage, StorageError,
    Usage,
};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// How many copies or deletes a directory rename runs at once.
pub(crate) const RENAME_CONCURRENCY: usize = 16;

/// Sets the SSE-C headers (when configured) on an object request builder.
macro_rules! sse_c {
    ($builder:expr, $opts:expr) => {{
        let c = $opts.sse_customer.as_ref();
        $builder
            .set_sse_customer_algorithm(
                c.map(|_| crate::config::SseCustomer::ALGORITHM.to_string()),
            )
            .set_sse_customer_key(c.map(|c| c.key_b64.clone()))
            .set_sse_customer_key_md5(c.map(|c| c.key_md5_b64.clone()))
    }};
}

/// Sets everything a new object gets (SSE, SSE-C, ACL, storage class) on a
/// PutObject / CreateMultipartUpload / CopyObject builder.
macro_rules! new_object {
    ($builder:expr, $opts:expr) => {{
        let (sse, kms) = $opts.sse_headers();
        sse_c!($builder, $opts)
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms)
            .set_acl(
                $opts
                    .acl
                    .as_deref()
                    .map(aws_sdk_s3::types::ObjectCannedAcl::from),
            )
            .set_storage_class(
                $opts
                    .storage_class
                    .as_deref()
                    .map(aws_sdk_s3::types::StorageClass::from),
            )
    }};
}

/// Sets the copy-source SSE-C headers on a CopyObject / UploadPartCopy
/// builder.
macro_rules! sse_c_source {
    ($builder:expr, $opts:expr) => {{
        let c = $opts.sse_customer.as_ref();
        $builder
            .set_copy_source_sse_customer_algorithm(
                c.map(|_| crate::config::SseCustomer::ALGORITHM.to_string()),
            )
            .set_copy_source_sse_customer_key(c.map(|c| c.key_b64.clone()))
            .set_copy_source_sse_customer_key_md5(c.map(|c| c.key_md5_b64.clone()))
    }};
}

pub(crate) use {new_object, sse_c, sse_c_source};

impl S3Options {
    /// The `x-amz-server-side-encryption` and KMS key id values.
    pub(crate) fn sse_headers(
        &self,
    ) -> (
        Option<aws_sdk_s3::types::ServerSideEncryption>,
        Option<String>,
    ) {
        use aws_sdk_s3::types::ServerSideEncryption as S;
        match &self.sse {
            crate::config::Sse::None => (None, None),
            crate::config::Sse::Aes256 => (Some(S::Aes256), None),
            crate::config::Sse::Kms { key_id } => (Some(S::AwsKms), key_id.clone()),
        }
    }
}

/// What a prefix holds: its own marker object and/or anything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DirState {
    /// The `dir/` marker object exists.
    pub marker: bool,
    /// Some other key starts with the prefix.
    pub children: bool,
}

impl DirState {
    /// The directory exists (as a marker or implied by its children).
    pub fn exists(self) -> bool {
        self.marker || self.children
    }
}

/// The native S3 driver. The storage root holds the buckets; `bucket/key`
/// paths address objects.
pub struct S3Storage {
    pub(crate) client: Client,
    pub(crate) opts: Arc<S3Options>,
    /// Buckets known to exist (checked or created), unless `no_check_bucket`.
    buckets: Mutex<HashSet<String>>,
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Storage")
            .field("endpoint", &self.opts.endpoint.url)
            .field("region", &self.opts.region)
            .field("path_style", &self.opts.path_style)
            .field("directory_markers", &self.opts.directory_markers)
            .finish_non_exhaustive()
    }
}

pub(crate) fn conflict(path: &str, what: &str) -> StorageError {
    StorageError::new(ErrorKind::Conflict, format!("{path}: {what}"))
}

/// An S3 time in whole seconds: HEAD answers `Last-Modified` in seconds
/// (an HTTP date) while listings carry milliseconds, and the VFS compares
/// them to tell whether an object changed.
pub(crate) fn to_system_time(time: Option<&DateTime>) -> Option<SystemTime> {
    let secs = u64::try_from(time?.secs()).ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

pub(crate) fn file_entry(path: String, size: i64, modified: Option<&DateTime>) -> Entry {
    Entry {
        path,
        kind: EntryKind::File,
        size: u64::try_from(size).unwrap_or(0),
        modified: to_system_time(modified),
    }
}

pub(crate) fn dir_entry(path: String) -> Entry {
    Entry {
        path,
        kind: EntryKind::Dir,
        size: 0,
        modified: None,
    }
}

impl S3Storage {
    /// A driver over a freshly built client.
    pub(crate) fn new(opts: S3Options) -> Self {
        S3Storage {
            client: build_client(&opts),
            opts: Arc::new(opts),
            buckets: Mutex::new(HashSet::new()),
        }
    }

    /// Maps an SDK failure about `path`.
    pub(crate) fn fail<E>(&self, path: &str) -> impl FnOnce(SdkError<E>) -> StorageError + '_
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let path = path.to_string();
        move |err| map_sdk_error(err, &self.opts.endpoint.url, &path)
    }

    /// Metadata of an object; `None` when there is no such key.
    pub(crate) async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<Entry>> {
        let path = berth_storage::join_path(bucket, key);
        let request = self.client.head_object().bucket(bucket).key(key);
        match sse_c!(request, self.opts).send().await {
            Ok(out) => Ok(Some(file_entry(
                path,
                out.content_length().unwrap_or(0),
                out.last_modified(),
            ))),
            Err(err) => match self.fail(&path)(err) {
                e if e.kind == ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    /// Whether the bucket exists (`NotFound` maps to `false`).
    pub(crate) async fn head_bucket(&self, bucket: &str) -> Result<bool> {
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(err) => match self.fail(bucket)(err) {
                e if e.kind == ErrorKind::NotFound => Ok(false),
                e => Err(e),
            },
        }
    }

    /// What `prefix` (ending in `/`) holds inside `bucket`.
    pub(crate) async fn dir_state(&self, bucket: &str, prefix: &str) -> Result<DirState> {
        let page = self
            .list_raw(
                bucket,
                prefix,
                Some("/"),
                crate::lister::Start::Beginning,
                2,
            )
            .await?;
        let mut state = DirState::default();
        for item in page.items {
            if item.key() == prefix {
                state.marker = true;
            } else {
                state.children = true;
            }
        }
        Ok(state)
    }

    /// Creates the bucket unless it is known to exist or `no_check_bucket`.
    pub(crate) async fn ensure_bucket(&self, bucket: &str) -> Result<()> {
        if self.opts.no_check_bucket || self.known_bucket(bucket) {
            return Ok(());
        }
        match self.head_bucket(bucket).await {
            Ok(true) => {}
            Ok(false) => self.create_bucket(bucket).await?,
            // No permission to HEAD the bucket: assume it exists and let the
            // real request decide.
            Err(e) if e.kind == ErrorKind::Permission => {}
            Err(e) => return Err(e),
        }
        self.remember_bucket(bucket, true);
        Ok(())
    }

    fn known_bucket(&self, bucket: &str) -> bool {
        self.buckets
            .lock()
            .map(|b| b.contains(bucket))
            .unwrap_or(false)
    }

    fn remember_bucket(&self, bucket: &str, exists: bool) {
        if let Ok(mut buckets) = self.buckets.lock() {
            if exists {
                buckets.insert(bucket.to_string());
            } else {
                buckets.remove(bucket);
            }
        }
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let configuration = self.opts.location_constraint.as_deref().map(|lc| {
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(lc))
                .build()
        });
        let result = self
            .client
            .create_bucket()
            .bucket(bucket)
            .set_acl(self.opts.bucket_acl.as_deref().map(BucketCannedAcl::from))
            .set_create_bucket_configuration(configuration)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                let code = err.code().map(str::to_string);
                match code.as_deref() {
                    Some("BucketAlreadyOwnedByYou") => Ok(()),
                    Some("BucketAlreadyExists") if !self.opts.already_exists_is_error => Ok(()),
                    _ => Err(self.fail(bucket)(err)),
                }
            }
        }
    }

    /// Writes the empty `key/` marker object of a directory.
    pub(crate) async fn put_marker(&self, bucket: &str, dir_key: &str) -> Result<()> {
        let marker = format!("{dir_key}/");
        let request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(&marker)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b""));
        new_object!(request, self.opts)
            .send()
            .await
            .map_err(self.fail(&berth_storage::join_path(bucket, &marker)))?;
        Ok(())
    }

    /// With directory markers, keeps the parent of `loc` alive after its
    /// last entry went away by writing the parent's marker.
    pub(crate) async fn keep_parent(&self, loc: &Loc) -> Result<()> {
        if !self.opts.directory_markers {
            return Ok(());
        }
        let Some(parent) = loc.parent_key() else {
            return Ok(());
        };
        if !self
            .dir_state(&loc.bucket, &format!("{parent}/"))
            .await?
            .exists()
        {
            self.put_marker(&loc.bucket, parent).await?;
        }
        Ok(())
    }

    /// With directory markers, refuses to create a file at `loc` when a
    /// directory is there or a parent is a file.
    pub(crate) async fn check_file_target(&self, loc: &Loc) -> Result<()> {
        if !self.opts.directory_markers {
            return Ok(());
        }
        let ancestors = loc.ancestor_keys();
        let prefix = loc.dir_prefix();
        let (state, parents) = futures::join!(
            self.dir_state(&loc.bucket, &prefix),
            futures::future::try_join_all(
                ancestors
                    .iter()
                    .map(|key| self.head_object(&loc.bucket, key))
            )
        );
        if state?.exists() {
            return Err(conflict(&loc.path(), "is a directory"));
        }
        if let Some(file) = parents?.into_iter().flatten().next() {
            return Err(conflict(&file.path, "not a directory"));
        }
        Ok(())
    }

    /// `NotFound`, or `Conflict` when `loc` is a directory (for calls that
    /// need a file).
    pub(crate) async fn missing_file(&self, loc: &Loc) -> StorageError {
        match self.dir_state(&loc.bucket, &loc.dir_prefix()).await {
            Ok(state) if state.exists() => conflict(&loc.path(), "is a directory"),
            Ok(_) => StorageError::not_found(&loc.path()),
            Err(e) => e,
        }
    }

    async fn delete_key(&self, bucket: &str, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(self.fail(&berth_storage::join_path(bucket, key)))?;
        Ok(())
    }

    /// Every key under `prefix` (recursively) with its size.
    async fn all_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, i64)>> {
        use crate::lister::{RawItem, Start};
        let mut keys = Vec::new();
        let mut start = Start::Beginning;
        loop {
            let page = self
                .list_raw(bucket, prefix, None, start, self.opts.list_chunk)
                .await?;
            for item in page.items {
                if let RawItem::Object { key, size, .. } = item {
                    keys.push((key, size));
                }
            }
            match page.resume {
                Some(resume) => start = Start::Resume(resume),
                None => return Ok(keys),
            }
        }
    }

    /// Moves a file (copy, then delete the source).
    async fn move_file(&self, from: &Loc, to: &Loc, size: i64) -> Result<()> {
        self.copy_object(from, to, size).await?;
        self.delete_key(&from.bucket, &from.key).await
    }

    /// Moves every key under directory `from` to directory `to`.
    async fn move_dir(&self, from: &Loc, to: &Loc) -> Result<()> {
        let from_prefix = from.dir_prefix();
        let to_prefix = to.dir_prefix();
        let keys = self.all_keys(&from.bucket, &from_prefix).await?;
        let copies = keys.iter().cloned().map(|(key, size)| {
            let source = Loc {
                bucket: from.bucket.clone(),
                key: key.clone(),
            };
            let target = Loc {
                bucket: to.bucket.clone(),
                key: format!("{to_prefix}{}", &key[from_prefix.len()..]),
            };
            async move { self.copy_object(&source, &target, size).await }
        });
        futures::stream::iter(copies)
            .buffer_unordered(RENAME_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        let deletes = keys.into_iter().map(|(key, _)| {
            let bucket = from.bucket.clone();
            async move { self.delete_key(&bucket, &key).await }
        });
        futures::stream::iter(deletes)
            .buffer_unordered(RENAME_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

/// Splits a path into a location, refusing the root and bare buckets (which
/// are directories) for calls that need an object.
fn object_loc(path: &str) -> Result<Loc> {
    match locate(path)? {
        None => Err(conflict("/", "is a directory")),
        Some(loc) if loc.key.is_empty() => Err(conflict(&loc.bucket, "is a directory (a bucket)")),
        Some(loc) => Ok(loc),
    }
}

#[async_trait]
impl Storage for S3Storage {
    fn capability(&self) -> Capability {
        Capability {
            directories: self.opts.directory_markers,
            ranged_read: true,
            copy: true,
            atomic_rename: false,
            set_mtime: false,
            usage: false,
            append: false,
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        let Some(loc) = locate(path)? else {
            return Ok(dir_entry(String::new()));
        };
        check_bucket_name(&loc.bucket)?;
        if loc.key.is_empty() {
            return if self.head_bucket(&loc.bucket).await? {
                Ok(dir_entry(loc.bucket))
            } else {
                Err(StorageError::new(
                    ErrorKind::NotFound,
                    format!("S3 bucket '{}' does not exist", loc.bucket),
                ))
            };
        }
        // The object and the prefix are asked at once (as mountpoint-s3
        // does): one round trip for directories and for names that do not
        // exist (every create looks its name up first), where asking one
        // after the other took two. An object wins over a prefix of the
        // same name.
        let prefix = loc.dir_prefix();
        let (object, dir) = futures::join!(
            self.head_object(&loc.bucket, &loc.key),
            self.dir_state(&loc.bucket, &prefix)
        );
        match (object, dir) {
            (Ok(Some(entry)), _) => Ok(entry),
            // A listing that shows the directory answers even when the HEAD
            // failed: some servers (s3s-fs) fail a HEAD of a key that is a
            // prefix with a 500 where S3 answers 404.
            (_, Ok(dir)) if dir.exists() => Ok(dir_entry(loc.path())),
            (Err(err), _) | (Ok(None), Err(err)) => Err(err),
            (Ok(None), Ok(_)) => Err(StorageError::not_found(&loc.path())),
        }
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        match locate(dir)? {
            None => self.list_buckets(cursor, limit).await,
            Some(loc) => self.list_dir(&loc, cursor, limit).await,
        }
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        let loc = object_loc(path)?;
        check_bucket_name(&loc.bucket)?;
        self.read_object(&loc, range).await
    }

    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
        let loc = object_loc(path)?;
        self.ensure_bucket(&loc.bucket).await?;
        self.check_file_target(&loc).await?;
        self.write_object(&loc, body).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let loc = object_loc(path)?;
        check_bucket_name(&loc.bucket)?;
        if self.head_object(&loc.bucket, &loc.key).await?.is_none() {
            return Err(self.missing_file(&loc).await);
        }
        self.delete_key(&loc.bucket, &loc.key).await?;
        self.keep_parent(&loc).await
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let from = object_loc(from)?;
        let to = object_loc(to)?;
        check_bucket_name(&from.bucket)?;
        let Some(source) = self.head_object(&from.bucket, &from.key).await? else {
            return Err(self.missing_file(&from).await);
        };
        if from == to {
            return Ok(());
        }
        self.ensure_bucket(&to.bucket).await?;
        self.check_file_target(&to).await?;
        self.copy_object(&from, &to, source.size as i64).await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let from = match locate(from)? {
            None => {
                return Err(StorageError::new(
                    ErrorKind::Permission,
                    "cannot rename the root directory",
                ))
            }
            Some(loc) if loc.key.is_empty() => {
                return Err(StorageError::unsupported(format!(
                    "{}: S3 cannot rename a bucket",
                    loc.bucket
                )))
            }
            Some(loc) => loc,
        };
        let to = match locate(to)? {
            None => return Err(conflict("/", "is a directory")),
            Some(loc) if loc.key.is_empty() => {
                return Err(StorageError::unsupported(format!(
                    "{}: cannot rename onto a bucket",
                    loc.bucket
                )))
            }
            Some(loc) => loc,
        };
        check_bucket_name(&from.bucket)?;
        check_bucket_name(&to.bucket)?;
        if let Some(source) = self.head_object(&from.bucket, &from.key).await? {
            if from == to {
                return Ok(());
            }
            self.ensure_bucket(&to.bucket).await?;
            if self.dir_state(&to.bucket, &to.dir_prefix()).await?.exists() {
                return Err(conflict(&to.path(), "is a directory"));
            }
            self.check_file_target(&to).await?;
            self.move_file(&from, &to, source.size as i64).await?;
            return self.keep_parent(&from).await;
        }
        if !self
            .dir_state(&from.bucket, &from.dir_prefix())
            .await?
            .exists()
        {
            return Err(StorageError::not_found(&from.path()));
        }
        if from == to {
            return Ok(());
        }
        if from.bucket == to.bucket && to.key.starts_with(&from.dir_prefix()) {
            return Err(conflict(&to.path(), "cannot move a directory into itself"));
        }
        self.ensure_bucket(&to.bucket).await?;
        if self.head_object(&to.bucket, &to.key).await?.is_some() {
            return Err(conflict(&to.path(), "not a directory"));
        }
        if self.dir_state(&to.bucket, &to.dir_prefix()).await?.children {
            return Err(conflict(&to.path(), "directory not empty"));
        }
        if self.opts.directory_markers {
            let parents = futures::future::try_join_all(
                to.ancestor_keys()
                    .iter()
                    .map(|key| self.head_object(&to.bucket, key)),
            )
            .await?;
            if let Some(file) = parents.into_iter().flatten().next() {
                return Err(conflict(&file.path, "not a directory"));
            }
        }
        self.move_dir(&from, &to).await?;
        self.keep_parent(&from).await
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        let Some(loc) = locate(path)? else {
            return Ok(());
        };
        self.ensure_bucket(&loc.bucket).await?;
        if loc.key.is_empty() || !self.opts.directory_markers {
            return Ok(());
        }
        let mut components = loc.ancestor_keys();
        components.push(&loc.key);
        let files = futures::future::try_join_all(
            components
                .iter()
                .map(|key| self.head_object(&loc.bucket, key)),
        )
        .await?;
        if let Some(file) = files.into_iter().flatten().next() {
            return Err(conflict(&file.path, "not a directory"));
        }
        futures::future::try_join_all(
            components
                .iter()
                .map(|key| self.put_marker(&loc.bucket, key)),
        )
        .await?;
        Ok(())
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        let Some(loc) = locate(path)? else {
            return Err(StorageError::new(
                ErrorKind::Permission,
                "cannot remove the root directory",
            ));
        };
        check_bucket_name(&loc.bucket)?;
        if loc.key.is_empty() {
            self.client
                .delete_bucket()
                .bucket(&loc.bucket)
                .send()
                .await
                .map_err(self.fail(&loc.bucket))?;
            self.remember_bucket(&loc.bucket, false);
            return Ok(());
        }
        let prefix = loc.dir_prefix();
        let state = self.dir_state(&loc.bucket, &prefix).await?;
        if state.children {
            return Err(conflict(&loc.path(), "directory not empty"));
        }
        if state.marker {
            self.delete_key(&loc.bucket, &prefix).await?;
            return self.keep_parent(&loc).await;
        }
        if self.head_object(&loc.bucket, &loc.key).await?.is_some() {
            return Err(conflict(&loc.path(), "not a directory"));
        }
        if self.opts.directory_markers {
            Err(StorageError::not_found(&loc.path()))
        } else {
            // Without markers an empty directory is implied: nothing to remove.
            Ok(())
        }
    }

    async fn usage(&self) -> Result<Usage> {
        Err(StorageError::unsupported(
            "S3 does not report total or free space",
        ))
    }

    /// Lists the buckets once: the credentials and the endpoint both answer.
    async fn probe(&self) -> Result<()> {
        self.client
            .list_buckets()
            .send()
            .await
            .map_err(self.fail(""))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_and_headed_times_agree() {
        let listed = DateTime::from_millis(1_764_842_400_123);
        let headed = DateTime::from_secs(1_764_842_400);
        assert_eq!(to_system_time(Some(&listed)), to_system_time(Some(&headed)));
        assert!(to_system_time(Some(&headed)).is_some());
        assert_eq!(to_system_time(Some(&DateTime::from_secs(-5))), None);
        assert_eq!(to_system_time(None), None);
    }
}
