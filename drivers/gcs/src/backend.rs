//! [`GcsStorage`]: the [`Storage`] implementation over buckets and objects.

use crate::api::{bucket_label, CreateOptions, JsonApi, ListQuery, ObjectMeta};
use crate::auth;
use crate::body::{read_ahead, ReadAhead};
use crate::errors::from_sdk;
use crate::listing::Listing;
use crate::settings::Settings;
use crate::upload;
use async_trait::async_trait;
use berth_storage::catalog::Config;
use berth_storage::{
    normalize_path, ByteStream, Capability, Entry, EntryKind, ErrorKind, ListPage, Result, Storage,
    StorageError, Usage,
};
use futures::{StreamExt, TryStreamExt};
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::retry_policy::RetryPolicyExt;
use google_cloud_storage::client::Storage as SdkClient;
use google_cloud_storage::model::Object;
use google_cloud_storage::model_ext::ReadRange;
use google_cloud_storage::read_resume_policy::{ReadResumePolicyExt, Recommended};
use google_cloud_storage::retry_policy::RetryableErrors;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Bodies up to this size are uploaded in one request through the SDK;
/// larger ones use a resumable upload.
pub const RESUMABLE_THRESHOLD: usize = 8 * 1024 * 1024;
/// Piece size of resumable uploads (a multiple of 256 KiB), buffered in
/// memory per upload.
pub const UPLOAD_CHUNK: usize = 8 * 1024 * 1024;
/// Attempts for one SDK request, resumed download or resumable-upload piece.
pub const ATTEMPTS: u32 = 3;
/// How long a download may take to start answering.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a download may stall between two pieces of data.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one upload request (a small body, or one resumable piece) may take.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// Page size of listings called with `limit == 0`.
const DEFAULT_PAGE: usize = 1000;
/// Objects copied or deleted at once when a directory is renamed.
const MOVE_CONCURRENCY: usize = 8;

/// What a normalized path names.
#[derive(Clone, Copy)]
enum Target<'a> {
    Root,
    Bucket(&'a str),
    Object(&'a str, &'a str),
}

fn target(path: &str) -> Target<'_> {
    if path.is_empty() {
        return Target::Root;
    }
    match path.split_once('/') {
        None => Target::Bucket(path),
        Some((bucket, key)) => Target::Object(bucket, key),
    }
}

/// Normalizes a path and refuses what GCS cannot name.
fn norm(path: &str) -> Result<String> {
    let path = normalize_path(path)?;
    if path.contains(['\r', '\n']) {
        return Err(StorageError::unsupported(format!(
            "{path:?}: GCS object names cannot contain CR or LF"
        )));
    }
    Ok(path)
}

fn conflict(path: &str, what: &str) -> StorageError {
    let shown = if path.is_empty() { "/" } else { path };
    StorageError::new(ErrorKind::Conflict, format!("{shown}: {what}"))
}

fn dir_entry(path: &str, modified: Option<SystemTime>) -> Entry {
    Entry {
        path: path.to_string(),
        kind: EntryKind::Dir,
        size: 0,
        modified,
    }
}

fn file_entry(path: &str, meta: &ObjectMeta) -> Entry {
    Entry {
        path: path.to_string(),
        kind: EntryKind::File,
        size: meta.size,
        modified: meta.modified(),
    }
}

/// The SDK's resource name of a bucket.
fn sdk_bucket(bucket: &str) -> String {
    format!("projects/_/buckets/{bucket}")
}

/// Proper ancestors of `key` inside its bucket (`a/b/c` -> `a`, `a/b`).
fn ancestors(key: &str) -> Vec<&str> {
    key.match_indices('/').map(|(i, _)| &key[..i]).collect()
}

/// Google Cloud Storage as a [`Storage`]. See the crate docs for paths,
/// transports and options.
pub struct GcsStorage {
    sdk: SdkClient,
    api: JsonApi,
    settings: Settings,
    create: CreateOptions,
    auth_source: String,
    anonymous: bool,
    /// Buckets known to exist (checked or created before a write).
    known_buckets: Mutex<HashSet<String>>,
}

impl fmt::Debug for GcsStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsStorage")
            .field("endpoint", &self.api.endpoint())
            .field("credentials", &self.auth_source)
            .field("directory_markers", &self.settings.directory_markers)
            .finish()
    }
}

impl GcsStorage {
    /// Checks the options, loads the credentials and creates the clients,
    /// without a network request (a service-account key is checked by
    /// signing a token locally).
    pub async fn from_config(config: &Config) -> Result<Self> {
        let settings = Settings::from_config(config)?;
        let auth = auth::load(config).await?;
        let backoff = ExponentialBackoffBuilder::new()
            .with_initial_delay(Duration::from_millis(100))
            .with_maximum_delay(Duration::from_secs(1))
            .build()
            .map_err(|e| StorageError::new(ErrorKind::Other, format!("retry backoff: {e}")))?;
        let mut builder = SdkClient::builder()
            .with_credentials(auth.credentials.clone())
            // No time limit: the SDK turns the remaining time into a timeout
            // for the whole request, body included, which would cut long
            // downloads. Time is bounded by OPEN/STALL/UPLOAD_TIMEOUT instead.
            .with_retry_policy(RetryableErrors.with_attempt_limit(ATTEMPTS))
            .with_backoff_policy(backoff)
            .with_read_resume_policy(Recommended.with_attempt_limit(ATTEMPTS))
            // Larger bodies never reach the SDK (see `upload`).
            .with_resumable_upload_threshold(RESUMABLE_THRESHOLD + 1);
        if settings.custom_endpoint {
            builder = builder.with_endpoint(settings.endpoint.as_str().trim_end_matches('/'));
        }
        let sdk = builder.build().await.map_err(|e| {
            StorageError::invalid_config(format!("cannot create the GCS client: {e}"))
        })?;
        let api = JsonApi::new(
            settings.endpoint.clone(),
            auth.clone(),
            settings.user_project.clone(),
        )?;
        let create = CreateOptions {
            storage_class: settings.storage_class.clone(),
            object_acl: settings.object_acl.clone(),
            bucket_acl: settings.bucket_acl.clone(),
            location: settings.location.clone(),
            bucket_policy_only: settings.bucket_policy_only,
            project: settings.project.clone(),
        };
        Ok(GcsStorage {
            sdk,
            api,
            settings,
            create,
            auth_source: auth.source,
            anonymous: auth.anonymous,
            known_buckets: Mutex::new(HashSet::new()),
        })
    }

    fn sdk_error(&self, err: google_cloud_storage::Error, what: &str) -> StorageError {
        from_sdk(err, what, self.api.endpoint(), &self.auth_source)
    }

    /// Object metadata, `None` when there is no such object.
    async fn object(&self, bucket: &str, key: &str) -> Result<Option<ObjectMeta>> {
        match self.api.get_object(bucket, key).await {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The error for `path` (`bucket/key`) naming no object: Conflict when
    /// it is a directory and directories exist ([`Capability::directories`]),
    /// else NotFound.
    async fn not_an_object(&self, bucket: &str, key: &str, path: &str) -> Result<StorageError> {
        if self.settings.directory_markers && self.is_dir(bucket, key).await? {
            Ok(conflict(path, "is a directory"))
        } else {
            Ok(StorageError::not_found(path))
        }
    }

    /// Whether any object's name starts with `key_prefix` (false when the
    /// bucket does not exist).
    async fn any_object(&self, bucket: &str, key_prefix: &str) -> Result<bool> {
        let query = ListQuery {
            prefix: key_prefix,
            max_results: 1,
            ..ListQuery::default()
        };
        match self.api.list_objects(bucket, &query).await {
            Ok(page) => Ok(!page.items.is_empty()),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether `bucket` exists, found by listing one of its objects (as
    /// rclone does), which needs only object permissions.
    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        let query = ListQuery {
            max_results: 1,
            ..ListQuery::default()
        };
        match self.api.list_objects(bucket, &query).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether `key` is a directory: some object (or its marker) below it.
    async fn is_dir(&self, bucket: &str, key: &str) -> Result<bool> {
        self.any_object(bucket, &format!("{key}/")).await
    }

    /// Objects below `key/` other than its marker, up to one (for "empty?").
    async fn has_children(&self, bucket: &str, key: &str) -> Result<bool> {
        let prefix = format!("{key}/");
        let query = ListQuery {
            prefix: &prefix,
            max_results: 2,
            ..ListQuery::default()
        };
        let page = self.api.list_objects(bucket, &query).await?;
        Ok(page.items.iter().any(|o| o.name != prefix))
    }

    /// Every object name under `prefix`, all pages.
    async fn all_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let query = ListQuery {
                prefix,
                max_results: 1000,
                page_token: token.as_deref(),
                ..ListQuery::default()
            };
            let page = self.api.list_objects(bucket, &query).await?;
            keys.extend(page.items.into_iter().map(|o| o.name));
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => return Ok(keys),
            }
        }
    }

    /// Creates `bucket`; one that already exists and is visible is fine.
    async fn make_bucket(&self, bucket: &str) -> Result<()> {
        match self.api.create_bucket(bucket, &self.create).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::Conflict => {
                if !self.bucket_exists(bucket).await.unwrap_or(false) {
                    return Err(StorageError::new(
                        ErrorKind::Conflict,
                        format!(
                            "{}: the name is taken (bucket names are global)",
                            bucket_label(bucket)
                        ),
                    ));
                }
            }
            Err(e) => return Err(e),
        }
        self.remember(bucket);
        Ok(())
    }

    fn remember(&self, bucket: &str) {
        if let Ok(mut known) = self.known_buckets.lock() {
            known.insert(bucket.to_string());
        }
    }

    fn forget(&self, bucket: &str) {
        if let Ok(mut known) = self.known_buckets.lock() {
            known.remove(bucket);
        }
    }

    /// Before writing into `bucket`: unless `no_check_bucket`, checks that it
    /// exists and creates it when it does not (once per bucket).
    async fn ensure_bucket(&self, bucket: &str) -> Result<()> {
        if self.settings.no_check_bucket
            || self
                .known_buckets
                .lock()
                .is_ok_and(|known| known.contains(bucket))
        {
            return Ok(());
        }
        if self.bucket_exists(bucket).await? {
            self.remember(bucket);
            Ok(())
        } else {
            self.make_bucket(bucket).await
        }
    }

    /// With directory markers: `key` may become a file only if it is not a
    /// directory and none of its ancestors is a file.
    async fn check_file_target(&self, bucket: &str, key: &str, path: &str) -> Result<()> {
        if !self.settings.directory_markers {
            return Ok(());
        }
        let dir = self.is_dir(bucket, key);
        let parents = self.check_no_file_ancestor(bucket, key);
        let (is_dir, ()) = futures::future::try_join(dir, parents).await?;
        if is_dir {
            return Err(conflict(path, "is a directory"));
        }
        Ok(())
    }

    /// No proper ancestor of `key` is a file.
    async fn check_no_file_ancestor(&self, bucket: &str, key: &str) -> Result<()> {
        let checks = ancestors(key).into_iter().map(|parent| async move {
            match self.object(bucket, parent).await? {
                Some(_) => Err(conflict(&format!("{bucket}/{parent}"), "not a directory")),
                None => Ok(()),
            }
        });
        futures::future::try_join_all(checks).await.map(|_| ())
    }

    /// With directory markers: keeps the parent of a removed `key` in
    /// existence by giving it a marker when it became empty.
    async fn keep_parent(&self, bucket: &str, key: &str) -> Result<()> {
        if !self.settings.directory_markers {
            return Ok(());
        }
        let Some((parent, _)) = key.rsplit_once('/') else {
            return Ok(());
        };
        if !self.is_dir(bucket, parent).await? {
            self.put_marker(bucket, parent).await?;
        }
        Ok(())
    }

    /// Writes the zero-byte marker object `dir/`.
    async fn put_marker(&self, bucket: &str, dir: &str) -> Result<()> {
        let path = format!("{bucket}/{dir}");
        self.upload_whole(bucket, &format!("{dir}/"), &path, Vec::new())
            .await
            .map(|_| ())
    }

    /// Uploads a body held in memory (at most [`RESUMABLE_THRESHOLD`]) as
    /// `bucket/key` in one request, with the creation options.
    async fn upload_whole(
        &self,
        bucket: &str,
        key: &str,
        path: &str,
        chunks: Vec<bytes::Bytes>,
    ) -> Result<Entry> {
        let data = match <[bytes::Bytes; 1]>::try_from(chunks) {
            Ok([one]) => one,
            Err(chunks) => bytes::Bytes::from(chunks.concat()),
        };
        let mut request = self.sdk.write_object(sdk_bucket(bucket), key, data);
        if !self.create.storage_class.is_empty() {
            request = request.set_storage_class(self.create.storage_class.clone());
        }
        if !self.create.object_acl.is_empty() {
            request = request.set_predefined_acl(self.create.object_acl.clone());
        }
        if !self.settings.user_project.is_empty() {
            request = request.with_quota_project(self.settings.user_project.clone());
        }
        // Buffered: the checksum goes first, in the metadata part (the
        // unbuffered form sends it trailing, which fake-gcs-server stores
        // with a mismatching CRC32C).
        let object: Object = tokio::time::timeout(UPLOAD_TIMEOUT, request.send_buffered())
            .await
            .map_err(|_| {
                StorageError::new(
                    ErrorKind::Transient,
                    format!(
                        "{path}: the upload to {} took longer than {} s",
                        self.api.endpoint(),
                        UPLOAD_TIMEOUT.as_secs()
                    ),
                )
            })?
            .map_err(|e| self.sdk_error(e, path))?;
        Ok(Entry {
            path: path.to_string(),
            kind: EntryKind::File,
            size: u64::try_from(object.size).unwrap_or_default(),
            modified: object
                .update_time
                .and_then(|t| SystemTime::try_from(t).ok()),
        })
    }

    /// The listing of the buckets (the root).
    async fn list_buckets(&self, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut token: Option<String> = None;
        let mut more = false;
        loop {
            let page = self
                .api
                .list_buckets(&self.settings.project, 1000, token.as_deref())
                .await?;
            entries.extend(
                page.items
                    .iter()
                    .filter(|b| cursor.as_deref().is_none_or(|c| b.name.as_str() > c))
                    .map(|b| dir_entry(&b.name, b.modified())),
            );
            if entries.len() > limit {
                more = true;
                break;
            }
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => break,
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries.truncate(limit);
        let next = if more {
            entries.last().map(|e| e.path.clone())
        } else {
            None
        };
        Ok(ListPage { entries, next })
    }

    /// The listing of directory `path` (`bucket/key`, or a bucket root when
    /// `key` is empty).
    async fn list_dir(
        &self,
        path: &str,
        bucket: &str,
        key: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ListPage> {
        let prefix = if key.is_empty() {
            String::new()
        } else {
            format!("{key}/")
        };
        let first_page = cursor.is_none();
        let mut listing = Listing::new(path.to_string(), prefix.clone(), cursor);
        let start = listing.start_offset();
        let mut token: Option<String> = None;
        loop {
            let query = ListQuery {
                prefix: &prefix,
                delimited: true,
                start_offset: start.as_deref(),
                max_results: (limit + 1).min(1000),
                page_token: token.as_deref(),
            };
            let page = self.api.list_objects(bucket, &query).await?;
            token = page.next_page_token.clone();
            listing.add(page);
            while !listing.ready(limit) {
                let Some(candidate) = listing.candidate() else {
                    break;
                };
                let exists = self.any_object(bucket, &candidate).await?;
                listing.resolve(&candidate, exists);
            }
            if listing.ready(limit) {
                break;
            }
        }
        // With markers, directories exist on their own: a listing of
        // nothing must be an empty directory (its marker), not a file or
        // nothing at all.
        if self.settings.directory_markers && !key.is_empty() && first_page && listing.is_empty() {
            return Err(match self.object(bucket, key).await? {
                Some(_) => conflict(path, "not a directory"),
                None => StorageError::not_found(path),
            });
        }
        Ok(listing.finish(limit))
    }

    /// Moves every object under `from_key/` to `to_key/` (copy all, then
    /// delete the sources).
    async fn move_dir(&self, from: (&str, &str), to: (&str, &str)) -> Result<()> {
        let (from_bucket, from_key) = from;
        let (to_bucket, to_key) = to;
        let keys = self.all_keys(from_bucket, &format!("{from_key}/")).await?;
        let copies = keys.clone().into_iter().map(|key| {
            let new_key = format!("{to_key}{}", &key[from_key.len()..]);
            async move {
                self.api
                    .rewrite((from_bucket, &key), (to_bucket, &new_key), &self.create)
                    .await
            }
        });
        futures::stream::iter(copies)
            .buffer_unordered(MOVE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        let deletes = keys.into_iter().map(|key| async move {
            match self.api.delete_object(from_bucket, &key).await {
                Err(e) if e.kind != ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        });
        futures::stream::iter(deletes)
            .buffer_unordered(MOVE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Storage for GcsStorage {
    fn capability(&self) -> Capability {
        Capability {
            directories: self.settings.directory_markers,
            ranged_read: true,
            copy: true,
            atomic_rename: false,
            set_mtime: false,
            usage: false,
            append: false,
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        let path = norm(path)?;
        match target(&path) {
            Target::Root => Ok(dir_entry("", None)),
            Target::Bucket(bucket) if self.bucket_exists(bucket).await? => {
                Ok(dir_entry(&path, None))
            }
            Target::Bucket(_) => Err(StorageError::not_found(&path)),
            Target::Object(bucket, key) => match self.object(bucket, key).await? {
                Some(meta) => Ok(file_entry(&path, &meta)),
                None if self.is_dir(bucket, key).await? => Ok(dir_entry(&path, None)),
                None => Err(StorageError::not_found(&path)),
            },
        }
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        let path = norm(dir)?;
        let limit = if limit == 0 { DEFAULT_PAGE } else { limit };
        match target(&path) {
            Target::Root => self.list_buckets(cursor, limit).await,
            Target::Bucket(bucket) => self.list_dir(&path, bucket, "", cursor, limit).await,
            Target::Object(bucket, key) => self.list_dir(&path, bucket, key, cursor, limit).await,
        }
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        let path = norm(path)?;
        let Target::Object(bucket, key) = target(&path) else {
            return Err(conflict(&path, "is a directory"));
        };
        let empty = || Ok(futures::stream::empty().boxed());
        let mut request = self.sdk.read_object(sdk_bucket(bucket), key);
        if let Some((offset, len)) = range {
            let room = (i64::MAX as u64).saturating_sub(offset);
            if len == 0 || room == 0 {
                // Nothing to read, but the object must exist.
                if self.object(bucket, key).await?.is_none() {
                    return Err(self.not_an_object(bucket, key, &path).await?);
                }
                return empty();
            }
            request = request.set_read_range(ReadRange::segment(offset, len.min(room)));
        }
        if self.settings.decompress {
            request = request.with_automatic_decompression(true);
        }
        if !self.settings.user_project.is_empty() {
            request = request.with_quota_project(self.settings.user_project.clone());
        }
        let opened = tokio::time::timeout(OPEN_TIMEOUT, request.send()).await;
        let response = match opened {
            Ok(Ok(response)) => response,
            Err(_) => {
                return Err(StorageError::new(
                    ErrorKind::Transient,
                    format!(
                        "{path}: {} did not answer within {} s",
                        self.api.endpoint(),
                        OPEN_TIMEOUT.as_secs()
                    ),
                ))
            }
            // A range starting at or past the end.
            Ok(Err(e)) if e.http_status_code() == Some(416) => return empty(),
            Ok(Err(e)) if e.http_status_code() == Some(404) => {
                return Err(self.not_an_object(bucket, key, &path).await?)
            }
            Ok(Err(e)) => return Err(self.sdk_error(e, &path)),
        };
        let context = Arc::new((
            path.clone(),
            self.api.endpoint().to_string(),
            self.auth_source.clone(),
        ));
        let chunks = futures::stream::unfold(Some(response), move |state| {
            let context = context.clone();
            async move {
                let mut response = state?;
                let (path, endpoint, source) = &*context;
                match tokio::time::timeout(STALL_TIMEOUT, response.next()).await {
                    Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(response))),
                    Ok(Some(Err(e))) => Some((Err(from_sdk(e, path, endpoint, source)), None)),
                    Ok(None) => None,
                    Err(_) => Some((
                        Err(StorageError::new(
                            ErrorKind::Transient,
                            format!(
                                "{path}: the download from {endpoint} stalled for {} s",
                                STALL_TIMEOUT.as_secs()
                            ),
                        )),
                        None,
                    )),
                }
            }
        });
        Ok(chunks.boxed())
    }

    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
        let path = norm(path)?;
        let Target::Object(bucket, key) = target(&path) else {
            return Err(conflict(&path, "is a directory"));
        };
        self.ensure_bucket(bucket).await?;
        self.check_file_target(bucket, key, &path).await?;
        match read_ahead(body, RESUMABLE_THRESHOLD).await? {
            ReadAhead::Whole(chunks) => self.upload_whole(bucket, key, &path, chunks).await,
            ReadAhead::Partial { head, rest } => {
                let meta =
                    upload::resumable(&self.api, (bucket, key), &path, &self.create, head, rest)
                        .await?;
                Ok(file_entry(&path, &meta))
            }
        }
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let path = norm(path)?;
        let Target::Object(bucket, key) = target(&path) else {
            return Err(conflict(&path, "is a directory"));
        };
        match self.api.delete_object(bucket, key).await {
            Ok(()) => self.keep_parent(bucket, key).await,
            Err(e) if e.kind == ErrorKind::NotFound => {
                Err(self.not_an_object(bucket, key, &path).await?)
            }
            Err(e) => Err(e),
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let from = norm(from)?;
        let to = norm(to)?;
        let Target::Object(from_bucket, from_key) = target(&from) else {
            return Err(conflict(&from, "is a directory"));
        };
        let Target::Object(to_bucket, to_key) = target(&to) else {
            return Err(conflict(&to, "is a directory"));
        };
        self.ensure_bucket(to_bucket).await?;
        self.check_file_target(to_bucket, to_key, &to).await?;
        match self
            .api
            .rewrite((from_bucket, from_key), (to_bucket, to_key), &self.create)
            .await
        {
            Err(e) if e.kind == ErrorKind::NotFound => {
                if self.object(from_bucket, from_key).await?.is_some() {
                    return Err(e);
                }
                Err(self.not_an_object(from_bucket, from_key, &from).await?)
            }
            other => other,
        }
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let from = norm(from)?;
        let to = norm(to)?;
        if from == to {
            return self.stat(&from).await.map(|_| ());
        }
        let (from_bucket, from_key) = match target(&from) {
            Target::Root => {
                return Err(StorageError::new(
                    ErrorKind::Permission,
                    "cannot rename the root",
                ))
            }
            Target::Bucket(bucket) => {
                return Err(StorageError::unsupported(format!(
                    "{}: buckets cannot be renamed",
                    bucket_label(bucket)
                )))
            }
            Target::Object(bucket, key) => (bucket, key),
        };
        let Target::Object(to_bucket, to_key) = target(&to) else {
            return Err(conflict(&to, "is a directory"));
        };

        if self.object(from_bucket, from_key).await?.is_some() {
            self.ensure_bucket(to_bucket).await?;
            self.check_file_target(to_bucket, to_key, &to).await?;
            self.api
                .rewrite((from_bucket, from_key), (to_bucket, to_key), &self.create)
                .await?;
            self.api.delete_object(from_bucket, from_key).await?;
            return self.keep_parent(from_bucket, from_key).await;
        }
        if !self.is_dir(from_bucket, from_key).await? {
            return Err(StorageError::not_found(&from));
        }
        if to.starts_with(&format!("{from}/")) {
            return Err(conflict(&to, "cannot move a directory into itself"));
        }
        if self.object(to_bucket, to_key).await?.is_some() {
            return Err(conflict(&to, "not a directory"));
        }
        if self.has_children(to_bucket, to_key).await? {
            return Err(conflict(&to, "directory not empty"));
        }
        self.ensure_bucket(to_bucket).await?;
        self.check_no_file_ancestor(to_bucket, to_key).await?;
        self.move_dir((from_bucket, from_key), (to_bucket, to_key))
            .await?;
        self.keep_parent(from_bucket, from_key).await
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        let path = norm(path)?;
        let (bucket, key) = match target(&path) {
            Target::Root => return Ok(()),
            Target::Bucket(bucket) => {
                return if self.bucket_exists(bucket).await? {
                    Ok(())
                } else {
                    self.make_bucket(bucket).await
                };
            }
            Target::Object(bucket, key) => (bucket, key),
        };
        self.ensure_bucket(bucket).await?;
        if !self.settings.directory_markers {
            return Ok(());
        }
        let mut levels = ancestors(key);
        levels.push(key);
        let checks = levels.iter().map(|dir| async move {
            match self.object(bucket, dir).await? {
                Some(_) => Err(conflict(&format!("{bucket}/{dir}"), "not a directory")),
                None => Ok(()),
            }
        });
        futures::future::try_join_all(checks).await?;
        let markers = levels.iter().map(|dir| self.put_marker(bucket, dir));
        futures::future::try_join_all(markers).await.map(|_| ())
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        let path = norm(path)?;
        let (bucket, key) = match target(&path) {
            Target::Root => {
                return Err(StorageError::new(
                    ErrorKind::Permission,
                    "cannot remove the root",
                ))
            }
            Target::Bucket(bucket) => {
                self.api.delete_bucket(bucket).await?;
                self.forget(bucket);
                return Ok(());
            }
            Target::Object(bucket, key) => (bucket, key),
        };
        let marker = format!("{key}/");
        let query = ListQuery {
            prefix: &marker,
            max_results: 2,
            ..ListQuery::default()
        };
        let page = self.api.list_objects(bucket, &query).await?;
        if page.items.iter().any(|o| o.name != marker) {
            return Err(conflict(&path, "directory not empty"));
        }
        if page.items.iter().any(|o| o.name == marker) {
            match self.api.delete_object(bucket, &marker).await {
                Err(e) if e.kind != ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            return self.keep_parent(bucket, key).await;
        }
        if self.object(bucket, key).await?.is_some() {
            return Err(conflict(&path, "not a directory"));
        }
        if self.settings.directory_markers {
            return Err(StorageError::not_found(&path));
        }
        // Without markers a directory has no existence of its own: an
        // empty one is already gone.
        Ok(())
    }

    async fn usage(&self) -> Result<Usage> {
        Err(StorageError::unsupported(
            "GCS does not report capacity or free space",
        ))
    }

    /// Lists one bucket of `project_number` (checking the endpoint, the
    /// credentials and the project). Without `project_number`, GCS refuses
    /// the listing as malformed after accepting the credentials, which
    /// passes; with `anonymous`, a refusal to list buckets passes too (public
    /// buckets are checked when a `name:bucket` reference is probed).
    async fn probe(&self) -> Result<()> {
        match self.api.list_buckets(&self.settings.project, 1, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::InvalidConfig && self.settings.project.is_empty() => {
                Ok(())
            }
            Err(e) if e.kind == ErrorKind::Permission && self.anonymous => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_ancestors() {
        assert!(matches!(target(""), Target::Root));
        assert!(matches!(target("b"), Target::Bucket("b")));
        assert!(matches!(target("b/x/y"), Target::Object("b", "x/y")));
        assert_eq!(ancestors("a/b/c"), vec!["a", "a/b"]);
        assert!(ancestors("a").is_empty());
        assert_eq!(norm("/b//x/./y/").unwrap(), "b/x/y");
        assert_eq!(norm("b/../x").unwrap_err().kind, ErrorKind::Permission);
        assert_eq!(norm("b/x\ny").unwrap_err().kind, ErrorKind::Unsupported);
    }
}
