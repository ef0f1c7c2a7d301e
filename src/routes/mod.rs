//! HTTP routes, one module per resource, plus the helpers they share.

pub mod backends;
pub mod health;
pub mod mounts;

use crate::error::ApiError;
use actix_web::web;
use futures::StreamExt;

/// Largest accepted JSON body.
pub const MAX_BODY: usize = 16 * 1024;

/// Reads a JSON body of at most [`MAX_BODY`] bytes, answering 413 above it and
/// 400 for anything that is not JSON.
pub async fn json_body(mut payload: web::Payload) -> Result<serde_json::Value, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::PayloadTooLarge(
                "Request body exceeds 16 KB limit".into(),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    if body.is_empty() {
        return Err(ApiError::BadRequest(
            "request body must be a JSON object".into(),
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))
}

/// The JSON 404 for unknown routes.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("Not found".into()))
}
