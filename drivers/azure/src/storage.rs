//! [`AzureStorage`]: the [`Storage`] trait over `azure_storage_blob`.

use crate::config::{Auth, Method, Options, Settings};
use crate::errors::{self, has_code, has_status, Subject, BAD_CREDENTIALS};
use crate::list::{hidden_dirs, From, Item, Lister};
use crate::paths::{check_container_name, check_storable, dir_prefix, parent, storable, Loc};
use crate::sas::{append_token, SasPolicy, SasSource};
use async_trait::async_trait;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::Policy;
use azure_core::http::{
    new_http_client, ClientOptions, ExponentialRetryOptions, HttpClientOptions, Pipeline,
    RetryOptions, Transport,
};
use azure_storage_blob::models::{
    BlobClientDeleteOptions, BlobClientDownloadOptions, BlobClientGetPropertiesResultHeaders,
    BlobClientStartCopyFromUrlOptions, BlobClientStartCopyFromUrlResultHeaders,
    BlobContainerClientCreateOptions, BlobContainerClientGetPropertiesResultHeaders,
    BlobContainerClientListBlobsOptions, BlobServiceClientListContainersOptions, CopyStatus,
    DeleteSnapshotsOptionType, HttpRange,
};
use azure_storage_blob::{BlobClient, BlobServiceClient, BlobServiceClientOptions};
use berth_storage::{
    join_path, ByteStream, Capability, Entry, EntryKind, ErrorKind, ListPage, Result, Storage,
    StorageError, Usage,
};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The Azure Blob driver.
pub struct AzureStorage {
    pub(crate) service: BlobServiceClient,
    lister: Lister,
    /// The service endpoint as shown in messages (never with a query).
    endpoint: String,
    /// The SAS that authorizes copy sources (`None` with Entra ID tokens).
    sas: Option<SasSource>,
    /// The only container a container-level SAS reaches.
    container: Option<String>,
    /// The authentication method (shown by `Debug`).
    method: Method,
    /// Continuation markers of root listings by the last name of a page.
    container_markers: Mutex<HashMap<String, String>>,
    pub(crate) options: Options,
}

impl fmt::Debug for AzureStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureStorage")
            .field("endpoint", &self.endpoint)
            .field("container", &self.container)
            .field("auth", &self.method)
            .finish_non_exhaustive()
    }
}

/// How many root-listing continuation markers are remembered.
const MARKER_MEMORY: usize = 256;

/// Size and time of a blob.
pub(crate) struct BlobInfo {
    pub size: u64,
    pub modified: Option<SystemTime>,
}

fn conflict(path: &str, what: &str) -> StorageError {
    StorageError::new(ErrorKind::Conflict, format!("{path}: {what}"))
}

fn shown(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

impl AzureStorage {
    /// Builds the clients for `settings` (no request is sent).
    pub(crate) fn new(settings: Settings) -> Result<Self> {
        let transport = Transport::new(new_http_client(Some(HttpClientOptions {
            automatic_decompression: false,
        })));
        // Retries belong to the service's retry layer; the SDK only gets a
        // small budget for connection hiccups (a pooled keep-alive
        // connection the server closed as it was reused) and busy answers.
        let retry = RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(100),
            max_retries: 2,
            max_total_elapsed: azure_core::time::Duration::seconds(5),
            max_delay: azure_core::time::Duration::seconds(1),
        });
        let mut client_options = ClientOptions {
            retry,
            transport: Some(transport),
            ..ClientOptions::default()
        };
        let mut own_policies: Vec<Arc<dyn Policy>> = Vec::new();
        let (credential, sas) = match settings.auth {
            Auth::Sas(source) => {
                client_options
                    .per_try_policies
                    .push(Arc::new(SasPolicy::new(source.clone())));
                (None, Some(source))
            }
            Auth::Token(credential) => {
                own_policies.push(Arc::new(BearerTokenAuthorizationPolicy::new(
                    credential.clone(),
                    vec!["https://storage.azure.com/.default"],
                )));
                (Some(credential), None)
            }
        };
        let endpoint = settings.service_url.to_string();
        let options = BlobServiceClientOptions {
            client_options: client_options.clone(),
            ..BlobServiceClientOptions::default()
        };
        let version = options.version.clone();
        let service =
            BlobServiceClient::new(settings.service_url.clone(), credential, Some(options))
                .map_err(|e| {
                    StorageError::invalid_config(format!(
                        "Invalid endpoint: {}",
                        errors::scrub(&e.to_string())
                    ))
                })?;
        let pipeline = Pipeline::new(
            Some("berth-azure"),
            Some(env!("CARGO_PKG_VERSION")),
            client_options,
            Vec::new(),
            own_policies,
            None,
        );
        Ok(AzureStorage {
            service,
            lister: Lister {
                pipeline,
                service_url: settings.service_url,
                version,
            },
            endpoint,
            sas,
            container: settings.container,
            method: settings.method,
            container_markers: Mutex::new(HashMap::new()),
            options: settings.options,
        })
    }

    /// Maps an SDK error about `path`.
    pub(crate) fn fail(&self, err: azure_core::Error, path: &str) -> StorageError {
        errors::map(
            err,
            &Subject {
                path,
                endpoint: &self.endpoint,
            },
        )
    }

    pub(crate) fn blob_client(&self, container: &str, blob: &str) -> BlobClient {
        self.service.blob_client(container, blob)
    }

    /// Refuses containers a container-level SAS does not reach.
    fn reachable(&self, container: &str) -> Result<()> {
        match &self.container {
            Some(only) if only != container => Err(StorageError::new(
                ErrorKind::Permission,
                format!("{container}: the SAS URL only grants access to container '{only}'"),
            )),
            _ => Ok(()),
        }
    }

    /// Size and time of a blob; `None` when it (or its container) does not
    /// exist.
    pub(crate) async fn head(
        &self,
        container: &str,
        blob: &str,
    ) -> azure_core::Result<Option<BlobInfo>> {
        match self.blob_client(container, blob).get_properties(None).await {
            Ok(response) => Ok(Some(BlobInfo {
                size: response.content_length()?.unwrap_or(0),
                modified: response.last_modified()?.map(SystemTime::from),
            })),
            Err(e) if has_status(&e, 404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Up to `max` blob names starting with `prefix` (a flat listing).
    async fn names_under(
        &self,
        container: &str,
        prefix: &str,
        max: i32,
    ) -> azure_core::Result<Vec<String>> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.to_string()),
            maxresults: Some(max),
            ..Default::default()
        };
        let mut pages = self
            .service
            .blob_container_client(container)
            .list_blobs(Some(options))?
            .into_pages();
        match pages.try_next().await? {
            Some(page) => Ok(page
                .into_model()?
                .blob_items
                .into_iter()
                .filter_map(|b| b.name)
                .collect()),
            None => Ok(Vec::new()),
        }
    }

    /// Every blob name starting with `prefix`.
    async fn all_names_under(
        &self,
        container: &str,
        prefix: &str,
    ) -> azure_core::Result<Vec<String>> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.to_string()),
            maxresults: Some(self.options.list_chunk),
            ..Default::default()
        };
        let mut pages = self
            .service
            .blob_container_client(container)
            .list_blobs(Some(options))?
            .into_pages();
        let mut names = Vec::new();
        while let Some(page) = pages.try_next().await? {
            names.extend(
                page.into_model()?
                    .blob_items
                    .into_iter()
                    .filter_map(|b| b.name),
            );
        }
        Ok(names)
    }

    /// Whether any blob (a child or a marker) lies under the directory
    /// `blob`; `false` when the container does not exist.
    async fn is_dir(&self, container: &str, blob: &str) -> azure_core::Result<bool> {
        match self.names_under(container, &dir_prefix(blob), 1).await {
            Ok(names) => Ok(!names.is_empty()),
            Err(e) if has_code(&e, "ContainerNotFound") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates a container; an existing one is fine.
    async fn create_container(&self, container: &str, path: &str) -> Result<()> {
        check_container_name(container)?;
        let options = BlobContainerClientCreateOptions {
            access: self.options.public_access.clone(),
            ..Default::default()
        };
        match self
            .service
            .blob_container_client(container)
            .create(Some(options))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if has_code(&e, "ContainerAlreadyExists") => Ok(()),
            Err(e) => Err(self.fail(e, path)),
        }
    }

    /// Runs `op`; when it fails because the container is missing, creates
    /// the container (unless `no_check_container` or a container SAS) and
    /// runs it once more. The outer error is a failed creation.
    async fn with_container<T, F, Fut>(
        &self,
        container: &str,
        path: &str,
        op: &F,
    ) -> Result<azure_core::Result<T>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = azure_core::Result<T>>,
    {
        match op().await {
            Err(e)
                if has_code(&e, "ContainerNotFound")
                    && !self.options.no_check_container
                    && self.container.is_none() =>
            {
                self.create_container(container, path).await?;
                Ok(op().await)
            }
            other => Ok(other),
        }
    }

    /// [`with_container`](Self::with_container) with the error mapped.
    pub(crate) async fn in_container<T, F, Fut>(
        &self,
        container: &str,
        path: &str,
        op: F,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = azure_core::Result<T>>,
    {
        self.with_container(container, path, &op)
            .await?
            .map_err(|e| self.fail(e, path))
    }

    /// Runs a write `op` that replaces `blob` (creating the container when
    /// needed); when the old blob is in the archive tier, deletes it first
    /// with `archive_tier_delete`, or says how to.
    pub(crate) async fn replacing<T, F, Fut>(
        &self,
        container: &str,
        blob: &str,
        path: &str,
        op: F,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = azure_core::Result<T>>,
    {
        match self.with_container(container, path, &op).await? {
            Ok(v) => Ok(v),
            Err(e) if has_code(&e, "BlobArchived") => {
                if !self.options.archive_tier_delete {
                    return Err(conflict(
                        path,
                        "the existing blob is in the archive tier and cannot be overwritten; set archive_tier_delete to delete it first",
                    ));
                }
                self.delete_blob(container, blob, path).await?;
                op().await.map_err(|e| self.fail(e, path))
            }
            Err(e) => Err(self.fail(e, path)),
        }
    }

    /// Deletes one blob with the `delete_snapshots` policy.
    async fn delete_blob(&self, container: &str, blob: &str, path: &str) -> Result<()> {
        let options = BlobClientDeleteOptions {
            delete_snapshots: self.options.delete_snapshots,
            ..Default::default()
        };
        self.blob_client(container, blob)
            .delete(Some(options))
            .await
            .map(|_| ())
            .map_err(|e| self.fail(e, path))
    }

    /// Deletes a blob that moved elsewhere: its snapshots go with it unless
    /// `delete_snapshots` is `only`, which keeps them (the delete then fails
    /// while snapshots exist).
    async fn delete_moved(&self, container: &str, blob: &str, path: &str) -> Result<()> {
        let options = BlobClientDeleteOptions {
            delete_snapshots: match self.options.delete_snapshots {
                Some(DeleteSnapshotsOptionType::Only) => None,
                other => other,
            },
            ..Default::default()
        };
        self.blob_client(container, blob)
            .delete(Some(options))
            .await
            .map(|_| ())
            .map_err(|e| self.fail(e, path))
    }

    /// Writes the empty marker blob `dir/`.
    async fn put_marker(&self, container: &str, dir: &str, path: &str) -> Result<()> {
        let client = self
            .blob_client(container, &dir_prefix(dir))
            .block_blob_client();
        self.in_container(container, path, || async {
            client
                .upload(bytes::Bytes::new().into(), None)
                .await
                .map(|_| ())
        })
        .await
    }

    /// With directory markers, keeps the parent directory of a removed blob
    /// in existence by writing its marker when nothing else is left in it.
    async fn keep_parent(&self, container: &str, blob: &str, path: &str) -> Result<()> {
        let dir = parent(blob);
        if !self.options.directory_markers || dir.is_empty() {
            return Ok(());
        }
        match self.is_dir(container, dir).await {
            Ok(true) => Ok(()),
            Ok(false) => self.put_marker(container, dir, path).await,
            Err(e) => Err(self.fail(e, path)),
        }
    }

    /// With directory markers, refuses writing a file over a directory or
    /// below a file.
    async fn check_file_target(&self, container: &str, blob: &str, path: &str) -> Result<()> {
        if !self.options.directory_markers {
            return Ok(());
        }
        if self
            .is_dir(container, blob)
            .await
            .map_err(|e| self.fail(e, path))?
        {
            return Err(conflict(path, "is a directory"));
        }
        self.check_no_file_ancestor(container, blob, path).await
    }

    /// Refuses a path whose ancestor is a file (directory markers only).
    async fn check_no_file_ancestor(&self, container: &str, blob: &str, path: &str) -> Result<()> {
        let ancestors: Vec<&str> = blob.match_indices('/').map(|(i, _)| &blob[..i]).collect();
        let heads =
            futures::future::join_all(ancestors.iter().map(|a| self.head(container, a))).await;
        for (ancestor, head) in ancestors.iter().zip(heads) {
            if head.map_err(|e| self.fail(e, path))?.is_some() {
                return Err(conflict(&join_path(container, ancestor), "not a directory"));
            }
        }
        Ok(())
    }

    /// The NotFound/Conflict answer for a blob path that is not a file.
    async fn not_a_file(&self, container: &str, blob: &str, path: &str) -> StorageError {
        match self.is_dir(container, blob).await {
            Ok(true) => conflict(path, "is a directory"),
            Ok(false) => StorageError::not_found(path),
            Err(e) => self.fail(e, path),
        }
    }

    /// The containers after `cursor`, one page. List Containers has no
    /// `startFrom`: the service's continuation marker after each page is
    /// remembered under the page's last name, so paging from the start is
    /// one request per page; an unknown cursor lists from the start and
    /// skips what it covers (accounts hold few containers).
    async fn list_containers(&self, cursor: Option<String>, want: usize) -> Result<ListPage> {
        if let Some(only) = &self.container {
            let entries = if cursor.as_deref().is_none_or(|c| only.as_str() > c) {
                vec![Entry {
                    path: only.clone(),
                    kind: EntryKind::Dir,
                    size: 0,
                    modified: None,
                }]
            } else {
                Vec::new()
            };
            return Ok(ListPage {
                entries,
                next: None,
            });
        }
        let known = cursor.as_ref().and_then(|c| {
            self.container_markers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(c)
                .cloned()
        });
        // Exact pages when starting at a known position; big ones when
        // scanning for an unknown cursor.
        let page_size = if cursor.is_none() || known.is_some() {
            want
        } else {
            self.options.list_chunk as usize
        };
        let mut marker = known;
        let mut entries = Vec::new();
        loop {
            let options = BlobServiceClientListContainersOptions {
                maxresults: Some(page_size as i32),
                marker: marker.clone(),
                ..Default::default()
            };
            let mut pages = self
                .service
                .list_containers(Some(options))
                .map_err(|e| self.fail(e, ""))?
                .into_pages();
            let Some(page) = pages.try_next().await.map_err(|e| self.fail(e, ""))? else {
                marker = None;
                break;
            };
            let page = page.into_model().map_err(|e| self.fail(e, ""))?;
            for item in page.container_items {
                let Some(name) = item.name else { continue };
                if cursor.as_deref().is_some_and(|c| name.as_str() <= c) {
                    continue;
                }
                entries.push(Entry {
                    path: name,
                    kind: EntryKind::Dir,
                    size: 0,
                    modified: item
                        .properties
                        .and_then(|p| p.last_modified)
                        .map(SystemTime::from),
                });
            }
            marker = page.next_marker.filter(|m| !m.is_empty());
            if entries.len() >= want || marker.is_none() {
                break;
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let next = if entries.len() > want {
            entries.truncate(want);
            entries.last().map(|e| e.path.clone())
        } else {
            match (marker, entries.last()) {
                (Some(marker), Some(last)) => {
                    let mut markers = self
                        .container_markers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    if markers.len() >= MARKER_MEMORY {
                        markers.clear();
                    }
                    markers.insert(last.path.clone(), marker);
                    Some(last.path.clone())
                }
                _ => None,
            }
        };
        Ok(ListPage { entries, next })
    }

    /// One page of the children of directory `blob` in `container`.
    async fn list_blobs(
        &self,
        path: &str,
        container: &str,
        blob: &str,
        cursor: Option<String>,
        want: usize,
    ) -> Result<ListPage> {
        let prefix = dir_prefix(blob);
        let max = (want + 2).min(crate::config::MAX_LIST_CHUNK as usize) as i32;
        let mut seen: Vec<Item> = Vec::new();
        let mut saw_marker = false;
        let mut last_key = String::new();
        let mut marker: Option<String> = None;
        loop {
            let from = match (&marker, &cursor) {
                (Some(m), _) => Some(From::Marker(m)),
                (None, Some(c)) => Some(From::Name(c)),
                (None, None) => None,
            };
            let page = self
                .lister
                .fetch(container, &prefix, from, max)
                .await
                .map_err(|e| self.fail(e, path))?;
            saw_marker |= page.saw_marker;
            if let Some(key) = page.last_key {
                last_key = key;
            }
            seen.extend(
                page.items
                    .into_iter()
                    .filter(|i| cursor.as_deref().is_none_or(|c| i.name.as_str() > c)),
            );
            marker = page.next_marker;
            if !seen.is_empty() || marker.is_none() {
                break;
            }
        }
        if seen.is_empty() && cursor.is_none() && !saw_marker && !blob.is_empty() {
            // Nothing under this prefix.
            if !self.options.directory_markers {
                return Ok(ListPage::default());
            }
            return Err(match self.head(container, blob).await {
                Ok(Some(_)) => conflict(path, "not a directory"),
                Ok(None) => StorageError::not_found(path),
                Err(e) => self.fail(e, path),
            });
        }
        // Sort by name; a name both a blob and a prefix shows as a directory.
        seen.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then_with(|| (a.kind == EntryKind::File).cmp(&(b.kind == EntryKind::File)))
        });
        seen.dedup_by(|later, first| later.name == first.name);
        let more = marker.is_some();
        let mut hidden = if more {
            hidden_dirs(&seen, cursor.as_deref(), &last_key)
        } else {
            Default::default()
        };
        loop {
            let safe = match hidden.first() {
                Some(bound) => seen.iter().take_while(|i| i.name < *bound).count(),
                None => seen.len(),
            };
            if safe > 0 || hidden.is_empty() {
                let take = safe.min(want);
                let next = if more || take < seen.len() {
                    seen.get(take.wrapping_sub(1)).map(|i| i.name.clone())
                } else {
                    None
                };
                seen.truncate(take);
                return Ok(ListPage {
                    entries: seen.iter().map(|i| i.entry(path)).collect(),
                    next,
                });
            }
            // A directory may still sort first: look it up.
            let dir = hidden.pop_first().expect("not empty");
            let probe = self
                .lister
                .fetch(container, &format!("{prefix}{dir}/"), None, 1)
                .await
                .map_err(|e| self.fail(e, path))?;
            if !probe.items.is_empty() || probe.saw_marker {
                seen.insert(
                    0,
                    Item {
                        name: dir,
                        kind: EntryKind::Dir,
                        size: 0,
                        modified: None,
                    },
                );
            }
        }
    }

    /// Streams `blob`, or a range of it.
    async fn download(
        &self,
        path: &str,
        container: &str,
        blob: &str,
        range: Option<(u64, u64)>,
    ) -> Result<ByteStream> {
        let empty = || -> ByteStream { futures::stream::empty().boxed() };
        let range = if self.options.no_head_object {
            range
        } else {
            let info = match self.head(container, blob).await {
                Ok(Some(info)) => info,
                Ok(None) => return Err(self.not_a_file(container, blob, path).await),
                Err(e) => return Err(self.fail(e, path)),
            };
            let (offset, len) = range.unwrap_or((0, info.size));
            let offset = offset.min(info.size);
            let len = len.min(info.size - offset);
            if len == 0 {
                return Ok(empty());
            }
            Some((offset, len))
        };
        if range.is_some_and(|(_, len)| len == 0) {
            return Ok(empty());
        }
        let options = BlobClientDownloadOptions {
            range: range.map(|(offset, len)| HttpRange::from(offset..offset.saturating_add(len))),
            ..Default::default()
        };
        match self
            .blob_client(container, blob)
            .download(Some(options))
            .await
        {
            Ok(result) => {
                let endpoint = self.endpoint.clone();
                let owned = path.to_string();
                Ok(result
                    .body
                    .map_err(move |e| {
                        errors::map(
                            e,
                            &Subject {
                                path: &owned,
                                endpoint: &endpoint,
                            },
                        )
                    })
                    .boxed())
            }
            Err(e) if has_status(&e, 416) => Ok(empty()),
            Err(e) => Err(self.fail(e, path)),
        }
    }

    /// Server-side copy of one blob; the source must exist.
    async fn copy_blob(&self, from: (&str, &str), to: (&str, &str), to_path: &str) -> Result<()> {
        let mut source = self.blob_client(from.0, from.1).url().clone();
        if let Some(sas) = &self.sas {
            append_token(&mut source, &sas.token());
        }
        let target = self.blob_client(to.0, to.1);
        let options = BlobClientStartCopyFromUrlOptions {
            tier: self.options.access_tier.clone(),
            ..Default::default()
        };
        let started = self
            .replacing(to.0, to.1, to_path, || {
                target.start_copy_from_url(source.to_string(), Some(options.clone()))
            })
            .await?;
        let mut status = started.copy_status().map_err(|e| self.fail(e, to_path))?;
        let mut wait = Duration::from_millis(50);
        while status == Some(CopyStatus::Pending) {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            let props = target
                .get_properties(None)
                .await
                .map_err(|e| self.fail(e, to_path))?;
            status = props.copy_status().map_err(|e| self.fail(e, to_path))?;
        }
        match status {
            None | Some(CopyStatus::Success) => Ok(()),
            Some(other) => Err(StorageError::new(
                ErrorKind::Other,
                format!("{to_path}: server-side copy ended as {other:?}"),
            )),
        }
    }

    /// Renames the directory `from` (a prefix) to `to`: copies every blob,
    /// then deletes the sources.
    async fn rename_dir(
        &self,
        container: &str,
        from: &str,
        to: (&str, &str),
        paths: (&str, &str),
    ) -> Result<()> {
        let (from_path, to_path) = paths;
        if to.0 == container && (to.1 == from || to.1.starts_with(&dir_prefix(from))) {
            return Err(conflict(to_path, "cannot move a directory into itself"));
        }
        if self
            .head(to.0, to.1)
            .await
            .map_err(|e| self.fail(e, to_path))?
            .is_some()
        {
            return Err(conflict(to_path, "not a directory"));
        }
        let target_children: Vec<String> = self
            .names_under(to.0, &dir_prefix(to.1), 2)
            .await
            .or_else(|e| {
                if has_code(&e, "ContainerNotFound") {
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| self.fail(e, to_path))?
            .into_iter()
            .filter(|n| *n != dir_prefix(to.1))
            .collect();
        if !target_children.is_empty() {
            return Err(conflict(to_path, "directory not empty"));
        }
        let names = self
            .all_names_under(container, &dir_prefix(from))
            .await
            .map_err(|e| self.fail(e, from_path))?;
        if names.is_empty() {
            return Err(StorageError::not_found(from_path));
        }
        let concurrency = self.options.upload_concurrency;
        futures::stream::iter(names.clone().into_iter().map(|name| {
            let target = format!("{}{}", to.1, &name[from.len()..]);
            async move {
                let target_path = join_path(to.0, &target);
                check_storable(&target_path, &target)?;
                self.copy_blob((container, &name), (to.0, &target), &target_path)
                    .await
            }
        }))
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
        futures::stream::iter(names.into_iter().map(|name| async move {
            match self.delete_moved(container, &name, from_path).await {
                Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
                other => other,
            }
        }))
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
        self.keep_parent(container, from, from_path).await
    }
}

#[async_trait]
impl Storage for AzureStorage {
    fn capability(&self) -> Capability {
        Capability {
            directories: self.options.directory_markers,
            ranged_read: true,
            copy: true,
            atomic_rename: false,
            set_mtime: false,
            usage: false,
            append: false,
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        let (path, loc) = Loc::parse(path)?;
        let dir = |modified| Entry {
            path: path.clone(),
            kind: EntryKind::Dir,
            size: 0,
            modified,
        };
        match &loc {
            Loc::Root => Ok(dir(None)),
            Loc::Container(container) => {
                self.reachable(container)?;
                if self.container.is_some() {
                    return Ok(dir(None));
                }
                if check_container_name(container).is_err() {
                    return Err(StorageError::not_found(&path));
                }
                match self
                    .service
                    .blob_container_client(container)
                    .get_properties(None)
                    .await
                {
                    Ok(props) => Ok(dir(props
                        .last_modified()
                        .ok()
                        .flatten()
                        .map(SystemTime::from))),
                    Err(e) if has_status(&e, 404) => Err(StorageError::not_found(&path)),
                    Err(e) => Err(self.fail(e, &path)),
                }
            }
            Loc::Blob { container, blob } => {
                self.reachable(container)?;
                if !storable(blob) {
                    return Err(StorageError::not_found(&path));
                }
                match self.head(container, blob).await {
                    Ok(Some(info)) => Ok(Entry {
                        path: path.clone(),
                        kind: EntryKind::File,
                        size: info.size,
                        modified: info.modified,
                    }),
                    Ok(None) => match self.is_dir(container, blob).await {
                        Ok(true) => Ok(dir(None)),
                        Ok(false) => Err(StorageError::not_found(&path)),
                        Err(e) => Err(self.fail(e, &path)),
                    },
                    Err(e) => Err(self.fail(e, &path)),
                }
            }
        }
    }

    async fn list(&self, dir: &str, cursor: Option<String>, limit: usize) -> Result<ListPage> {
        let (path, loc) = Loc::parse(dir)?;
        let chunk = self.options.list_chunk as usize;
        let want = if limit == 0 { chunk } else { limit.min(chunk) };
        match &loc {
            Loc::Root => self.list_containers(cursor, want).await,
            Loc::Container(container) => {
                self.reachable(container)?;
                if check_container_name(container).is_err() {
                    return Err(StorageError::not_found(&path));
                }
                self.list_blobs(&path, container, "", cursor, want).await
            }
            Loc::Blob { container, blob } => {
                self.reachable(container)?;
                if !storable(blob) {
                    return if self.options.directory_markers {
                        Err(StorageError::not_found(&path))
                    } else {
                        Ok(ListPage::default())
                    };
                }
                self.list_blobs(&path, container, blob, cursor, want).await
            }
        }
    }

    async fn read(&self, path: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        let (path, loc) = Loc::parse(path)?;
        match &loc {
            Loc::Root | Loc::Container(_) => Err(conflict(shown(&path), "is a directory")),
            Loc::Blob { container, blob } => {
                self.reachable(container)?;
                if !storable(blob) {
                    return Err(StorageError::not_found(&path));
                }
                self.download(&path, container, blob, range).await
            }
        }
    }

    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
        let (path, loc) = Loc::parse(path)?;
        match &loc {
            Loc::Root | Loc::Container(_) => Err(conflict(shown(&path), "is a directory")),
            Loc::Blob { container, blob } => {
                self.reachable(container)?;
                check_storable(&path, blob)?;
                self.check_file_target(container, blob, &path).await?;
                self.upload(&path, container, blob, body).await
            }
        }
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let (path, loc) = Loc::parse(path)?;
        match &loc {
            Loc::Root | Loc::Container(_) => Err(conflict(shown(&path), "is a directory")),
            Loc::Blob { container, blob } => {
                self.reachable(container)?;
                if !storable(blob) {
                    return Err(StorageError::not_found(&path));
                }
                match self.delete_blob(container, blob, &path).await {
                    Err(e) if e.kind == ErrorKind::NotFound => {
                        if self.options.directory_markers {
                            Err(self.not_a_file(container, blob, &path).await)
                        } else {
                            Err(e)
                        }
                    }
                    Err(e) => Err(e),
                    Ok(()) => self.keep_parent(container, blob, &path).await,
                }
            }
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (from_path, from_loc) = Loc::parse(from)?;
        let (to_path, to_loc) = Loc::parse(to)?;
        let Loc::Blob {
            container: fc,
            blob: fb,
        } = &from_loc
        else {
            return Err(conflict(shown(&from_path), "is a directory"));
        };
        let Loc::Blob {
            container: tc,
            blob: tb,
        } = &to_loc
        else {
            return Err(conflict(shown(&to_path), "is a directory"));
        };
        self.reachable(fc)?;
        self.reachable(tc)?;
        if !storable(fb) {
            return Err(StorageError::not_found(&from_path));
        }
        check_storable(&to_path, tb)?;
        match self.head(fc, fb).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(self.not_a_file(fc, fb, &from_path).await),
            Err(e) => return Err(self.fail(e, &from_path)),
        }
        if from_path == to_path {
            return Ok(());
        }
        self.check_file_target(tc, tb, &to_path).await?;
        self.copy_blob((fc, fb), (tc, tb), &to_path).await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from_path, from_loc) = Loc::parse(from)?;
        let (to_path, to_loc) = Loc::parse(to)?;
        let (fc, fb) = match &from_loc {
            Loc::Root => {
                return Err(StorageError::new(
                    ErrorKind::Permission,
                    "cannot rename the root directory",
                ))
            }
            Loc::Container(_) => {
                return Err(StorageError::unsupported(format!(
                    "{from_path}: Azure containers cannot be renamed"
                )))
            }
            Loc::Blob { container, blob } => (container, blob),
        };
        self.reachable(fc)?;
        if !storable(fb) {
            return Err(StorageError::not_found(&from_path));
        }
        let source = self
            .head(fc, fb)
            .await
            .map_err(|e| self.fail(e, &from_path))?;
        let (tc, tb) = match &to_loc {
            Loc::Root => return Err(conflict("/", "is a directory")),
            Loc::Container(_) => {
                return Err(StorageError::unsupported(format!(
                    "{to_path}: cannot rename into a container; use a path inside one"
                )))
            }
            Loc::Blob { container, blob } => (container, blob),
        };
        self.reachable(tc)?;
        check_storable(&to_path, tb)?;
        if source.is_none() {
            return self
                .rename_dir(fc, fb, (tc, tb), (&from_path, &to_path))
                .await;
        }
        if from_path == to_path {
            return Ok(());
        }
        self.check_file_target(tc, tb, &to_path).await?;
        if !self.options.directory_markers
            && self
                .is_dir(tc, tb)
                .await
                .map_err(|e| self.fail(e, &to_path))?
        {
            return Err(conflict(&to_path, "is a directory"));
        }
        self.copy_blob((fc, fb), (tc, tb), &to_path).await?;
        self.delete_moved(fc, fb, &from_path).await?;
        self.keep_parent(fc, fb, &from_path).await
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        let (path, loc) = Loc::parse(path)?;
        let (container, blob) = match &loc {
            Loc::Root => return Ok(()),
            Loc::Container(container) => (container, ""),
            Loc::Blob { container, blob } => (container, blob.as_str()),
        };
        self.reachable(container)?;
        let implicit = !blob.is_empty() && self.options.no_check_container;
        if self.container.is_none() && !implicit {
            self.create_container(container, &path).await?;
        }
        if blob.is_empty() {
            return Ok(());
        }
        check_storable(&path, blob)?;
        if !self.options.directory_markers {
            // Directories are implied by the blobs below them.
            return Ok(());
        }
        if self
            .head(container, blob)
            .await
            .map_err(|e| self.fail(e, &path))?
            .is_some()
        {
            return Err(conflict(&path, "not a directory"));
        }
        self.check_no_file_ancestor(container, blob, &path).await?;
        let mut dirs: Vec<&str> = blob.match_indices('/').map(|(i, _)| &blob[..i]).collect();
        dirs.push(blob);
        for dir in dirs {
            let marker = self
                .head(container, &dir_prefix(dir))
                .await
                .map_err(|e| self.fail(e, &path))?;
            if marker.is_none() {
                self.put_marker(container, dir, &path).await?;
            }
        }
        Ok(())
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        let (path, loc) = Loc::parse(path)?;
        match &loc {
            Loc::Root => Err(StorageError::new(
                ErrorKind::Permission,
                "cannot remove the root directory",
            )),
            Loc::Container(container) => {
                self.reachable(container)?;
                if check_container_name(container).is_err() {
                    return Err(StorageError::not_found(&path));
                }
                let children = self
                    .names_under(container, "", 1)
                    .await
                    .map_err(|e| self.fail(e, &path))?;
                if !children.is_empty() {
                    return Err(conflict(&path, "directory not empty"));
                }
                self.service
                    .blob_container_client(container)
                    .delete(None)
                    .await
                    .map(|_| ())
                    .map_err(|e| self.fail(e, &path))
            }
            Loc::Blob { container, blob } => {
                self.reachable(container)?;
                if !storable(blob) {
                    return Err(StorageError::not_found(&path));
                }
                let marker = dir_prefix(blob);
                let names = self
                    .names_under(container, &marker, 2)
                    .await
                    .map_err(|e| self.fail(e, &path))?;
                if names.iter().any(|n| *n != marker) {
                    return Err(conflict(&path, "directory not empty"));
                }
                if names.is_empty() {
                    let file = self
                        .head(container, blob)
                        .await
                        .map_err(|e| self.fail(e, &path))?;
                    return match (file, self.options.directory_markers) {
                        (Some(_), _) => Err(conflict(&path, "not a directory")),
                        (None, true) => Err(StorageError::not_found(&path)),
                        // Without markers an empty directory is only implied.
                        (None, false) => Ok(()),
                    };
                }
                self.delete_moved(container, &marker, &path).await?;
                self.keep_parent(container, blob, &path).await
            }
        }
    }

    async fn usage(&self) -> Result<Usage> {
        Err(StorageError::unsupported(
            "Azure Blob Storage does not report capacity or free space",
        ))
    }

    /// Lists one container (the account's, or the container-level SAS's)
    /// and maps failures to clear messages.
    async fn probe(&self) -> Result<()> {
        let result = match &self.container {
            Some(container) => self
                .names_under(container, "", 1)
                .await
                .map(|_| ())
                .map_err(|e| self.fail(e, container)),
            None => {
                let options = BlobServiceClientListContainersOptions {
                    maxresults: Some(1),
                    ..Default::default()
                };
                match self.service.list_containers(Some(options)) {
                    Ok(pager) => pager
                        .into_pages()
                        .try_next()
                        .await
                        .map(|_| ())
                        .map_err(|e| self.fail(e, "")),
                    Err(e) => Err(self.fail(e, "")),
                }
            }
        };
        result.map_err(|e| match e.kind {
            ErrorKind::Permission if !e.message.starts_with(BAD_CREDENTIALS) => StorageError::new(
                ErrorKind::Permission,
                format!("{BAD_CREDENTIALS}: {}", e.message),
            ),
            _ => e,
        })
    }
}
