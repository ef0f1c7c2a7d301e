//! The aws-sdk-s3 client built from [`S3Options`], and the one table that
//! maps SDK failures to [`StorageError`] kinds and messages.

use crate::config::{Auth, S3Options};
use aws_credential_types::Credentials;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, ConfigBag, Intercept, Region, RequestChecksumCalculation,
    ResponseChecksumValidation, RuntimeComponents,
};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;
use berth_storage::{ErrorKind, StorageError};
use std::error::Error as StdError;
use std::time::Duration;

/// How long to wait for a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per request for calls whose body is held in memory (PutObject,
/// UploadPart, multipart bookkeeping): the retry layer above the driver does
/// not retry writes, so these get a small bounded retry of their own.
pub(crate) const WRITE_ATTEMPTS: u32 = 3;

/// Builds the client. SDK retries are off (one attempt): transient failures
/// are retried by the storage retry layer; see [`write_retry`] for writes.
pub(crate) fn build_client(opts: &S3Options) -> Client {
    let mut builder = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(opts.region.clone()))
        .endpoint_url(opts.endpoint.url.clone())
        .force_path_style(opts.path_style)
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build(),
        )
        // Flexible checksums (aws-chunked trailers) break many S3-compatible
        // servers; integrity comes from Content-MD5 instead (writer.rs).
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if opts.requester_pays {
        builder = builder.interceptor(RequesterPays);
    }
    match &opts.auth {
        Auth::Keys {
            access_key_id,
            secret_access_key,
            session_token,
        } => {
            builder = builder.credentials_provider(Credentials::new(
                access_key_id,
                secret_access_key,
                session_token.clone(),
                None,
                "berth",
            ));
        }
        Auth::Anonymous => builder = builder.allow_no_auth(),
    }
    Client::from_conf(builder.build())
}

/// Adds `x-amz-request-payer: requester` to every request (signed with it),
/// for `requester_pays` buckets.
#[derive(Debug)]
struct RequesterPays;

impl Intercept for RequesterPays {
    fn name(&self) -> &'static str {
        "RequesterPays"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("x-amz-request-payer", "requester");
        Ok(())
    }
}

/// The per-operation override giving in-memory writes [`WRITE_ATTEMPTS`].
pub(crate) fn write_retry() -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::Config::builder()
        .retry_config(RetryConfig::standard().with_max_attempts(WRITE_ATTEMPTS))
}

/// The innermost cause of an error (`Connection refused (os error 111)`).
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// The bucket of a storage path (its first component).
fn bucket_of(path: &str) -> &str {
    path.split('/').next().unwrap_or_default()
}

/// Maps an SDK failure of a call about `path` against `endpoint`.
pub(crate) fn map_sdk_error<E>(
    err: SdkError<E, HttpResponse>,
    endpoint: &str,
    path: &str,
) -> StorageError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match &err {
        SdkError::DispatchFailure(failure) => {
            let cause = match failure.as_connector_error() {
                Some(_) if failure.is_timeout() => "connection timed out".to_string(),
                Some(connector) => root_cause(connector),
                None => DisplayErrorContext(&err).to_string(),
            };
            let kind = if failure.is_user() {
                ErrorKind::Other
            } else {
                ErrorKind::Transient
            };
            StorageError::new(
                kind,
                format!("cannot reach S3 endpoint {endpoint}: {cause}"),
            )
        }
        SdkError::TimeoutError(_) => StorageError::new(
            ErrorKind::Transient,
            format!("S3 request to {endpoint} timed out"),
        ),
        SdkError::ResponseError(response) => StorageError::new(
            ErrorKind::Transient,
            format!(
                "S3 endpoint {endpoint} sent an unreadable response (HTTP {}): {}",
                response.raw().status().as_u16(),
                root_cause(&err)
            ),
        ),
        SdkError::ConstructionFailure(_) => StorageError::invalid_config(format!(
            "cannot build the S3 request for {path}: {}",
            DisplayErrorContext(&err)
        )),
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let inner = service.err();
            // A success the SDK refused (an answer it cannot read): its
            // reason is the only detail there is.
            let refused = (inner.code().is_none() && service.raw().status().is_success())
                .then(|| root_cause(&err));
            service_error(
                inner.code(),
                status,
                inner.message().or(refused.as_deref()),
                path,
            )
        }
        _ => StorageError::new(
            ErrorKind::Other,
            format!("S3 call failed: {}", DisplayErrorContext(&err)),
        ),
    }
}

/// Maps an error response (S3 error `code` when the response had a body,
/// HTTP `status`, S3's `message`) about `path`.
pub(crate) fn service_error(
    code: Option<&str>,
    status: u16,
    message: Option<&str>,
    path: &str,
) -> StorageError {
    let shown = if path.is_empty() { "/" } else { path };
    let detail = message.filter(|m| !m.is_empty()).unwrap_or("no details");
    let code_or_status = code
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {status}"));
    let new = StorageError::new;
    match code {
        Some("NoSuchBucket") => new(
            ErrorKind::NotFound,
            format!("S3 bucket '{}' does not exist", bucket_of(path)),
        ),
        Some("NoSuchKey" | "NotFound" | "NoSuchUpload" | "NoSuchVersion") => {
            StorageError::not_found(shown)
        }
        Some(
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidClientTokenId"
            | "UnrecognizedClientException",
        ) => new(
            ErrorKind::Permission,
            format!(
                "S3 rejected the credentials ({code_or_status}): check access_key_id and secret_access_key"
            ),
        ),
        Some("InvalidToken" | "ExpiredToken" | "TokenRefreshRequired") => new(
            ErrorKind::Permission,
            format!("S3 rejected the session token ({code_or_status})"),
        ),
        Some("RequestTimeTooSkewed") => new(
            ErrorKind::Permission,
            "S3 rejected the request (RequestTimeTooSkewed): this machine's clock is off"
                .to_string(),
        ),
        Some("AccessDenied" | "AllAccessDisabled" | "AccountProblem" | "InvalidObjectState") => {
            new(
                ErrorKind::Permission,
                format!("S3 denied access to {shown} ({code_or_status})"),
            )
        }
        Some("AuthorizationHeaderMalformed" | "InvalidRegion" | "IllegalLocationConstraintException") => {
            StorageError::invalid_config(format!(
                "S3 rejected the request ({code_or_status}): check region/location_constraint ({detail})"
            ))
        }
        Some("PermanentRedirect" | "TemporaryRedirect" | "Redirect") => {
            StorageError::invalid_config(format!(
                "S3 answered {code_or_status} for {shown}: the bucket lives in another region or behind another endpoint ({detail})"
            ))
        }
        Some("BucketNotEmpty") => new(
            ErrorKind::Conflict,
            format!("directory not empty: {shown}"),
        ),
        Some("BucketAlreadyExists") => new(
            ErrorKind::Conflict,
            format!(
                "S3 bucket name '{}' is taken by another account",
                bucket_of(path)
            ),
        ),
        Some("OperationAborted" | "PreconditionFailed" | "ConditionalRequestConflict") => new(
            ErrorKind::Conflict,
            format!("{shown}: S3 answered {code_or_status} ({detail})"),
        ),
        Some("EntityTooLarge" | "TooManyBuckets" | "QuotaExceeded" | "StorageQuotaExceeded") => {
            new(
                ErrorKind::Quota,
                format!("{shown}: S3 refused ({code_or_status}: {detail})"),
            )
        }
        Some(
            "SlowDown" | "Throttling" | "ThrottlingException" | "RequestTimeout" | "InternalError"
            | "ServiceUnavailable" | "RequestLimitExceeded" | "TooManyRequests",
        ) => new(
            ErrorKind::Transient,
            format!("S3 is busy or failing ({code_or_status}); a retry may help"),
        ),
        Some("NotImplemented") => StorageError::unsupported(format!(
            "the S3 endpoint does not implement this request ({detail})"
        )),
        _ => match status {
            404 => StorageError::not_found(shown),
            401 | 403 => new(
                ErrorKind::Permission,
                format!(
                    "S3 denied access to {shown} ({code_or_status}: wrong credentials or missing permission)"
                ),
            ),
            409 | 412 => new(
                ErrorKind::Conflict,
                format!("{shown}: S3 answered {code_or_status} ({detail})"),
            ),
            301 | 307 => StorageError::invalid_config(format!(
                "S3 answered HTTP {status} for {shown}: the bucket lives in another region or behind another endpoint"
            )),
            501 => StorageError::unsupported(format!(
                "the S3 endpoint does not implement this request ({detail})"
            )),
            429 | 500..=599 => new(
                ErrorKind::Transient,
                format!("S3 is busy or failing ({code_or_status}); a retry may help"),
            ),
            _ => new(
                ErrorKind::Other,
                format!("S3 error for {shown} ({code_or_status}): {detail}"),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: Option<&str>, status: u16) -> ErrorKind {
        service_error(code, status, Some("details"), "bucket/key").kind
    }

    #[test]
    fn error_table() {
        assert_eq!(kind(Some("NoSuchKey"), 404), ErrorKind::NotFound);
        assert_eq!(kind(None, 404), ErrorKind::NotFound);
        let bucket = service_error(Some("NoSuchBucket"), 404, None, "bucket/key");
        assert_eq!(bucket.kind, ErrorKind::NotFound);
        assert_eq!(bucket.message, "S3 bucket 'bucket' does not exist");

        let creds = service_error(Some("InvalidAccessKeyId"), 403, Some("x"), "");
        assert_eq!(creds.kind, ErrorKind::Permission);
        assert!(creds
            .message
            .starts_with("S3 rejected the credentials (InvalidAccessKeyId)"));
        assert_eq!(
            kind(Some("SignatureDoesNotMatch"), 403),
            ErrorKind::Permission
        );
        assert_eq!(kind(Some("AccessDenied"), 403), ErrorKind::Permission);
        assert_eq!(kind(Some("ExpiredToken"), 400), ErrorKind::Permission);
        let head = service_error(None, 403, None, "bucket/key");
        assert_eq!(head.kind, ErrorKind::Permission);
        assert!(head.message.contains("HTTP 403"), "{}", head.message);

        assert_eq!(kind(Some("BucketNotEmpty"), 409), ErrorKind::Conflict);
        assert_eq!(kind(Some("BucketAlreadyExists"), 409), ErrorKind::Conflict);
        assert_eq!(kind(None, 412), ErrorKind::Conflict);
        assert_eq!(kind(Some("EntityTooLarge"), 400), ErrorKind::Quota);
        assert_eq!(kind(Some("SlowDown"), 503), ErrorKind::Transient);
        assert_eq!(kind(Some("InternalError"), 500), ErrorKind::Transient);
        assert_eq!(kind(None, 502), ErrorKind::Transient);
        assert_eq!(kind(None, 429), ErrorKind::Transient);
        assert_eq!(kind(Some("NotImplemented"), 501), ErrorKind::Unsupported);
        assert_eq!(kind(None, 501), ErrorKind::Unsupported);
        assert_eq!(
            kind(Some("AuthorizationHeaderMalformed"), 400),
            ErrorKind::InvalidConfig
        );
        assert_eq!(
            kind(Some("PermanentRedirect"), 301),
            ErrorKind::InvalidConfig
        );
        assert_eq!(kind(Some("InvalidArgument"), 400), ErrorKind::Other);
    }
}
