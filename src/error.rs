//! The one table from errors to HTTP statuses: every error body is
//! `{"success": false, "error": "<clear message>"}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use berth_actors::RegistryError;
use serde_json::json;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: invalid input (the message names the field).
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or invalid token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the token lacks a scope.
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown resource (or another org's).
    #[error("{0}")]
    NotFound(String),
    /// 409: the resource is in use or busy.
    #[error("{0}")]
    Conflict(String),
    /// 413: body too large.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 422: the remote refused new credentials.
    #[error("{0}")]
    Unprocessable(String),
    /// 500: logged in full, answered generically.
    #[error("{0}")]
    Internal(String),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "Internal server error".to_string()
            }
            other => other.to_string(),
        };
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized(_)) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(json!({ "success": false, "error": message }))
    }
}

impl From<RegistryError> for ApiError {
    fn from(err: RegistryError) -> Self {
        let message = err.to_string();
        match err {
            RegistryError::NotFound(_) => ApiError::NotFound(message),
            RegistryError::Invalid(_) | RegistryError::ProbeFailed(_) => {
                ApiError::BadRequest(message)
            }
            RegistryError::CredentialCheckFailed(_) => ApiError::Unprocessable(message),
            RegistryError::Conflict(_) => ApiError::Conflict(message),
            RegistryError::Internal(_) => ApiError::Internal(message),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(err: actix::MailboxError) -> Self {
        ApiError::Internal(format!("registry unavailable: {err}"))
    }
}
