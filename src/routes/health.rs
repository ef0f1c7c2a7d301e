//! Liveness and actor health.

use crate::auth::{Principal, Scope};
use crate::error::ApiError;
use crate::AppState;
use actix_web::{get, web, HttpResponse};
use berth_actors::registry::ActorHealthList;
use serde_json::json;

/// `GET /api/v1/health`: no token needed.
#[get("/health")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /api/v1/health/actors`: every actor the caller's org may see.
#[get("/health/actors")]
pub async fn actors(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Read)?;
    let actors = state
        .registry
        .send(ActorHealthList { org: principal.org })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "count": actors.len(), "actors": actors })))
}
