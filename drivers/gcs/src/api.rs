//! The JSON API calls the SDK's `Storage` client does not offer: object
//! metadata, listings, deletes, server-side copies (rewrite) and bucket
//! administration. Requests carry the same credentials as the SDK's, and
//! are not retried here (the service's retry layer does that).

use crate::auth::Auth;
use crate::errors::{from_reqwest, from_status};
use berth_storage::{ErrorKind, Result, StorageError};
use google_cloud_auth::credentials::CacheableResource;
use http::Extensions;
use reqwest::{Method, RequestBuilder, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one metadata call may take (rewrites return within ~30 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

/// Object metadata from the JSON API (the fields berth uses).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ObjectMeta {
    /// Full object name.
    pub name: String,
    /// Size in bytes (the API sends it as a string).
    #[serde(default, deserialize_with = "number_or_string")]
    pub size: u64,
    /// Last update, RFC 3339.
    #[serde(default)]
    pub updated: Option<String>,
}

impl ObjectMeta {
    /// The `updated` time, when present and parsable.
    pub fn modified(&self) -> Option<SystemTime> {
        parse_time(self.updated.as_deref())
    }
}

/// One page of `objects.list`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ObjectPage {
    /// Objects of this page, in name order.
    #[serde(default)]
    pub items: Vec<ObjectMeta>,
    /// Common prefixes (ending in the delimiter).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Token of the next page.
    #[serde(default, rename = "nextPageToken")]
    pub next_page_token: Option<String>,
}

/// Bucket metadata (the fields berth uses).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BucketMeta {
    /// Bucket name.
    pub name: String,
    /// Last update, RFC 3339.
    #[serde(default)]
    pub updated: Option<String>,
}

impl BucketMeta {
    /// The `updated` time, when present and parsable.
    pub fn modified(&self) -> Option<SystemTime> {
        parse_time(self.updated.as_deref())
    }
}

/// One page of `buckets.list`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BucketPage {
    /// Buckets of this page, in name order.
    #[serde(default)]
    pub items: Vec<BucketMeta>,
    /// Token of the next page.
    #[serde(default, rename = "nextPageToken")]
    pub next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct RewriteAnswer {
    #[serde(default)]
    done: bool,
    #[serde(default, rename = "rewriteToken")]
    rewrite_token: Option<String>,
}

/// Parameters of an `objects.list` call.
#[derive(Debug, Default, Clone)]
pub(crate) struct ListQuery<'a> {
    /// Only names starting with this.
    pub prefix: &'a str,
    /// Roll names up at the next `/` into `prefixes`.
    pub delimited: bool,
    /// Only names at or after this (inclusive).
    pub start_offset: Option<&'a str>,
    /// Page size asked for.
    pub max_results: usize,
    /// Continuation token from the previous page.
    pub page_token: Option<&'a str>,
}

/// Options applied to objects and buckets berth creates.
#[derive(Debug, Clone, Default)]
pub(crate) struct CreateOptions {
    /// Storage class of new objects/buckets.
    pub storage_class: String,
    /// Predefined ACL of new objects.
    pub object_acl: String,
    /// Predefined ACL of new buckets.
    pub bucket_acl: String,
    /// Location of new buckets.
    pub location: String,
    /// Uniform bucket-level access for new buckets.
    pub bucket_policy_only: bool,
    /// Project owning new buckets.
    pub project: String,
}

/// An authenticated JSON API client.
#[derive(Debug, Clone)]
pub(crate) struct JsonApi {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    user_project: String,
}

fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| serde::de::Error::custom("size is not a byte count")),
        Value::String(s) => s
            .parse()
            .map_err(|_| serde::de::Error::custom("size is not a byte count")),
        Value::Null => Ok(0),
        _ => Err(serde::de::Error::custom("size is not a byte count")),
    }
}

fn parse_time(text: Option<&str>) -> Option<SystemTime> {
    let time = chrono::DateTime::parse_from_rfc3339(text?).ok()?;
    Some(SystemTime::from(time))
}

/// `bucket 'name'`, for messages about a bucket.
pub(crate) fn bucket_label(bucket: &str) -> String {
    format!("bucket '{bucket}'")
}

impl JsonApi {
    /// A client for the JSON API under `base` (the service endpoint).
    pub fn new(base: Url, auth: Auth, user_project: String) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // Resumable uploads answer 308 without a Location: not a redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                StorageError::new(
                    ErrorKind::Other,
                    format!("cannot create the HTTP client: {e}"),
                )
            })?;
        Ok(JsonApi {
            http,
            base,
            auth,
            user_project,
        })
    }

    /// The endpoint, for messages.
    pub fn endpoint(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `<base>/storage/v1/<segments...>`, each segment percent-encoded
    /// (so `/` inside an object name stays part of the segment).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .extend(["storage", "v1"])
                .extend(segments);
        }
        url
    }

    /// `<base>/upload/storage/v1/b/<bucket>/o`, where uploads start.
    pub fn upload_url(&self, bucket: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .extend(["upload", "storage", "v1", "b", bucket, "o"]);
        }
        url
    }

    /// The HTTP client, to build requests for [`send_raw`](Self::send_raw).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `request` with credentials (and `userProject` when
    /// `user_project`); maps transport failures (about `what`) and returns
    /// the response whatever its status.
    pub async fn send_raw(
        &self,
        request: RequestBuilder,
        what: &str,
        user_project: bool,
    ) -> Result<reqwest::Response> {
        let headers = match self.auth.credentials.headers(Extensions::new()).await {
            Ok(CacheableResource::New { data, .. }) => data,
            Ok(CacheableResource::NotModified) => http::HeaderMap::new(),
            Err(e) => {
                let kind = if e.is_transient() {
                    ErrorKind::Transient
                } else {
                    ErrorKind::Permission
                };
                return Err(StorageError::new(
                    kind,
                    format!(
                        "{what}: could not get an access token from {}: {}",
                        self.auth.source,
                        crate::errors::chain(&e)
                    ),
                ));
            }
        };
        let mut request = request.headers(headers);
        if user_project && !self.user_project.is_empty() {
            request = request.query(&[("userProject", self.user_project.as_str())]);
        }
        request
            .send()
            .await
            .map_err(|e| from_reqwest(e, what, self.endpoint()))
    }

    /// The error for a response with an error status.
    pub async fn status_error(&self, response: reqwest::Response, what: &str) -> StorageError {
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        from_status(status, &body, what, &self.auth.source)
    }

    /// Parses a JSON answer.
    pub async fn parse<T: DeserializeOwned>(
        &self,
        response: reqwest::Response,
        what: &str,
    ) -> Result<T> {
        response
            .json()
            .await
            .map_err(|e| from_reqwest(e, what, self.endpoint()))
    }

    /// Sends `request` with credentials and `userProject`; maps transport
    /// failures and error statuses (about `what`).
    async fn send(&self, request: RequestBuilder, what: &str) -> Result<reqwest::Response> {
        let response = self.send_raw(request, what, true).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.status_error(response, what).await)
        }
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder, what: &str) -> Result<T> {
        let response = self.send(request, what).await?;
        self.parse(response, what).await
    }

    /// `objects.get` (metadata only).
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<ObjectMeta> {
        let url = self.url(&["b", bucket, "o", key]);
        self.json(self.http.get(url), &format!("{bucket}/{key}"))
            .await
    }

    /// `objects.list` of one page.
    pub async fn list_objects(&self, bucket: &str, query: &ListQuery<'_>) -> Result<ObjectPage> {
        let mut params: Vec<(&str, String)> = vec![
            ("prefix", query.prefix.to_string()),
            ("maxResults", query.max_results.clamp(1, 1000).to_string()),
        ];
        if query.delimited {
            params.push(("delimiter", "/".into()));
        }
        if let Some(start) = query.start_offset {
            params.push(("startOffset", start.to_string()));
        }
        if let Some(token) = query.page_token {
            params.push(("pageToken", token.to_string()));
        }
        let url = self.url(&["b", bucket, "o"]);
        let what = if query.prefix.is_empty() {
            bucket_label(bucket)
        } else {
            format!("{bucket}/{}", query.prefix.trim_end_matches('/'))
        };
        self.json(self.http.get(url).query(&params), &what)
            .await
            .map_err(|e| missing_bucket(e, bucket))
    }

    /// `objects.delete`.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        let url = self.url(&["b", bucket, "o", key]);
        self.send(self.http.delete(url), &format!("{bucket}/{key}"))
            .await
            .map(|_| ())
    }

    /// `objects.rewrite` until done: a server-side copy, also across buckets.
    pub async fn rewrite(
        &self,
        from: (&str, &str),
        to: (&str, &str),
        options: &CreateOptions,
    ) -> Result<()> {
        let url = self.url(&["b", from.0, "o", from.1, "rewriteTo", "b", to.0, "o", to.1]);
        let what = format!("copy {}/{} to {}/{}", from.0, from.1, to.0, to.1);
        let mut body = json!({});
        if !options.storage_class.is_empty() {
            body["storageClass"] = json!(options.storage_class);
        }
        let mut token: Option<String> = None;
        loop {
            let mut request = self.http.request(Method::POST, url.clone()).json(&body);
            if !options.object_acl.is_empty() {
                request = request.query(&[("destinationPredefinedAcl", &options.object_acl)]);
            }
            if let Some(t) = &token {
                request = request.query(&[("rewriteToken", t)]);
            }
            let answer: RewriteAnswer = self.json(request, &what).await?;
            if answer.done {
                return Ok(());
            }
            match answer.rewrite_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => {
                    return Err(StorageError::new(
                        ErrorKind::Other,
                        format!("{what}: the service neither finished nor continued the copy"),
                    ))
                }
            }
        }
    }

    /// `buckets.list` of one page (of `project`, when not empty).
    pub async fn list_buckets(
        &self,
        project: &str,
        max_results: usize,
        page_token: Option<&str>,
    ) -> Result<BucketPage> {
        let mut params: Vec<(&str, String)> =
            vec![("maxResults", max_results.clamp(1, 1000).to_string())];
        if !project.is_empty() {
            params.push(("project", project.to_string()));
        }
        if let Some(token) = page_token {
            params.push(("pageToken", token.to_string()));
        }
        let url = self.url(&["b"]);
        let what = if project.is_empty() {
            "list buckets".to_string()
        } else {
            format!("list buckets of project {project}")
        };
        match self.json(self.http.get(url).query(&params), &what).await {
            Err(e) if project.is_empty() && is_bad_request(&e) => {
                Err(StorageError::invalid_config(format!(
                    "listing the buckets at the root needs project_number ({})",
                    e.message
                )))
            }
            Err(e) if e.kind == ErrorKind::NotFound => Err(StorageError::new(
                ErrorKind::NotFound,
                format!("project '{project}' does not exist ({})", e.message),
            )),
            other => other,
        }
    }

    /// `buckets.insert` with the creation options.
    pub async fn create_bucket(&self, bucket: &str, options: &CreateOptions) -> Result<()> {
        let mut body = json!({ "name": bucket });
        if !options.location.is_empty() {
            body["location"] = json!(options.location);
        }
        if !options.storage_class.is_empty() {
            body["storageClass"] = json!(options.storage_class);
        }
        if options.bucket_policy_only {
            body["iamConfiguration"] = json!({ "uniformBucketLevelAccess": { "enabled": true } });
        }
        let mut params: Vec<(&str, &str)> = Vec::new();
        if !options.project.is_empty() {
            params.push(("project", &options.project));
        }
        if !options.bucket_acl.is_empty() {
            params.push(("predefinedAcl", &options.bucket_acl));
        }
        let url = self.url(&["b"]);
        let what = format!("create {}", bucket_label(bucket));
        match self
            .send(self.http.post(url).query(&params).json(&body), &what)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if options.project.is_empty() && is_bad_request(&e) => {
                Err(StorageError::invalid_config(format!(
                    "{what}: creating buckets needs project_number ({})",
                    e.message
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// `buckets.delete`; a bucket that is not empty is a Conflict.
    pub async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        let url = self.url(&["b", bucket]);
        match self
            .send(self.http.delete(url), &bucket_label(bucket))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::Conflict => Err(StorageError::new(
                ErrorKind::Conflict,
                format!("{}: directory not empty", bucket_label(bucket)),
            )),
            Err(e) => Err(missing_bucket(e, bucket)),
        }
    }
}

/// Whether the service refused the request as malformed (HTTP 400), as GCS
/// does for bucket calls without a project.
fn is_bad_request(err: &StorageError) -> bool {
    err.kind == ErrorKind::Other && err.message.contains("(HTTP 400")
}

/// Rewrites a NotFound about a bucket into "bucket does not exist".
fn missing_bucket(err: StorageError, bucket: &str) -> StorageError {
    if err.kind == ErrorKind::NotFound {
        StorageError::new(
            ErrorKind::NotFound,
            format!("{} does not exist", bucket_label(bucket)),
        )
    } else {
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_object_names() {
        let auth = Auth {
            credentials: google_cloud_auth::credentials::anonymous::Builder::new().build(),
            source: "anonymous access".into(),
            anonymous: true,
        };
        let api =
            JsonApi::new(Url::parse("http://h:1/base").unwrap(), auth, String::new()).unwrap();
        let url = api.url(&["b", "bk", "o", "a/b c?#%.txt"]);
        assert_eq!(
            url.as_str(),
            "http://h:1/base/storage/v1/b/bk/o/a%2Fb%20c%3F%23%25.txt"
        );
        assert_eq!(api.endpoint(), "http://h:1/base");
    }

    #[test]
    fn metadata_parses() {
        let page: ObjectPage = serde_json::from_str(
            r#"{"items":[{"name":"a/1","size":"8","updated":"2024-05-01T10:00:00.5Z"}],
                "prefixes":["a/b/"],"nextPageToken":"t"}"#,
        )
        .unwrap();
        assert_eq!(page.items[0].size, 8);
        assert!(page.items[0].modified().is_some());
        assert_eq!(page.prefixes, vec!["a/b/"]);
        assert_eq!(page.next_page_token.as_deref(), Some("t"));
        let empty: ObjectPage = serde_json::from_str(r#"{"kind":"storage#objects"}"#).unwrap();
        assert!(empty.items.is_empty() && empty.next_page_token.is_none());
    }
}
