//! Backend management: connect (one endpoint per provider), list, inspect,
//! test, rotate credentials, disconnect.

use crate::auth::{Principal, Scope};
use crate::error::ApiError;
use crate::routes::json_body;
use crate::AppState;
use actix_web::{delete, get, post, put, web, HttpResponse};
use berth_actors::registry::{
    CreateBackend, DeleteBackend, GetBackend, ListBackends, TestBackend, UpdateCredentials,
};
use berth_actors::BackendView;
use berth_storage::catalog::catalog;
use serde_json::{json, Value};
use tracing::Span;

/// Checks the `{id}` path segment: 16 lowercase hex characters.
fn backend_id(id: &str) -> Result<&str, ApiError> {
    if id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(id)
    } else {
        Err(ApiError::BadRequest(format!(
            "Invalid backend id '{id}': expected 16 lowercase hex characters"
        )))
    }
}

/// The API shape of one backend.
fn backend_json(view: &BackendView) -> Value {
    let mut body = json!({
        "id": view.id,
        "name": view.name,
        "backend_type": view.backend_type,
        "server": view.server,
        "user": view.user,
        "connected": view.connected,
        "state": view.state,
        "mount_paths": view.mount_paths,
        "created_at": view.created_at,
        "description": view.description,
        "config": view.config,
    });
    if let Some(last_used) = &view.last_used {
        body["last_used"] = json!(last_used);
    }
    if let Some(error) = &view.last_error {
        body["last_error"] = json!(error);
    }
    body
}

/// `POST /api/v1/backends/{provider}`: validate, probe, store.
#[post("/backends/{provider}")]
pub async fn connect(
    state: web::Data<AppState>,
    principal: Principal,
    slug: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Write)?;
    let provider = catalog()
        .get(&slug)
        .ok_or_else(|| ApiError::NotFound(format!("Unknown provider '{slug}'")))?;
    let body = json_body(payload).await?;
    let config = provider
        .validate_create(&body)
        .map_err(|e| ApiError::BadRequest(e.message))?;
    let view = state
        .registry
        .send(CreateBackend {
            org: principal.org,
            slug: provider.slug.clone(),
            config,
            span: Span::current(),
        })
        .await??;
    let message = provider
        .success_message
        .clone()
        .unwrap_or_else(|| "Backend connected successfully".into());
    Ok(HttpResponse::Created().json(json!({
        "success": true,
        "message": message,
        "data": {
            "id": view.id,
            "backend_type": view.backend_type,
            "type": view.response_type,
            "mount_paths": view.mount_paths,
        }
    })))
}

/// `GET /api/v1/backends`.
#[get("/backends")]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Read)?;
    let views = state
        .registry
        .send(ListBackends { org: principal.org })
        .await?;
    let backends: Vec<Value> = views.iter().map(backend_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "backends": backends, "count": backends.len() })))
}

/// `GET /api/v1/backends/{id}`.
#[get("/backends/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Read)?;
    let id = backend_id(&id)?.to_string();
    let view = state
        .registry
        .send(GetBackend {
            org: principal.org,
            id,
        })
        .await??;
    Ok(HttpResponse::Ok().json(backend_json(&view)))
}

/// `GET /api/v1/backends/{id}/test`: probe now.
#[get("/backends/{id}/test")]
pub async fn test(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Read)?;
    let id = backend_id(&id)?.to_string();
    let outcome = state
        .registry
        .send(TestBackend {
            org: principal.org,
            id,
            span: Span::current(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({ "success": outcome.success, "message": outcome.message })))
}

/// `PUT /api/v1/backends/{id}`: rotate credentials.
#[put("/backends/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Write)?;
    let id = backend_id(&id)?.to_string();
    let body = json_body(payload).await?;
    let changed = state
        .registry
        .send(UpdateCredentials {
            org: principal.org,
            id,
            body,
            span: Span::current(),
        })
        .await??;
    let message = if changed {
        "Backend credentials updated"
    } else {
        "Backend credentials unchanged"
    };
    Ok(HttpResponse::Ok().json(json!({ "success": true, "message": message })))
}

/// `DELETE /api/v1/backends/{id}`.
#[delete("/backends/{id}")]
pub async fn disconnect(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Write)?;
    let id = backend_id(&id)?.to_string();
    state
        .registry
        .send(DeleteBackend {
            org: principal.org,
            id,
            span: Span::current(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "message": "Backend disconnected" })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_ids_are_sixteen_lowercase_hex() {
        assert!(backend_id("a1b2c3d4e5f67890").is_ok());
        for bad in [
            "A1B2C3D4E5F67890",
            "a1b2",
            "a1b2c3d4e5f6789g",
            "bck_8a7b9c0d1e2f3a4b",
        ] {
            assert!(backend_id(bad).is_err(), "{bad}");
        }
    }
}
