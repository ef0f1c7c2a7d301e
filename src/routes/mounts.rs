//! Mounts: list (with a label filter), inspect, create, reconfigure live,
//! and remove persistent FUSE mounts.

use crate::auth::{Principal, Scope};
use crate::error::ApiError;
use crate::routes::json_body;
use crate::AppState;
use actix_web::{delete, get, patch, post, web, HttpResponse};
use berth_actors::registry::{CreateMount, DeleteMount, GetMount, ListMounts, PatchMount};
use berth_actors::MountView;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tracing::Span;

/// Checks the `{id}` path segment: `mount_` plus 32 lowercase hex characters.
fn mount_id(id: &str) -> Result<&str, ApiError> {
    let hex = id.strip_prefix("mount_").unwrap_or_default();
    if hex.len() == 32
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(id)
    } else {
        Err(ApiError::BadRequest(format!(
            "Invalid mount id '{id}': expected 'mount_' and 32 lowercase hex characters"
        )))
    }
}

/// The API shape of a mount (`vfs_config` only where the spec shows it).
fn mount_json(view: &MountView, with_config: bool) -> Value {
    let mut body = json!({
        "id": view.id,
        "backend_id": view.backend_id,
        "label": view.label,
        "mount_path": view.mount_path,
        "remote_path": view.remote_path,
        "status": view.status,
        "created_at": view.created_at,
        "engine": view.engine,
    });
    if let Some(error) = &view.error {
        body["error"] = json!(error);
    }
    if with_config {
        body["vfs_config"] = json!(view.vfs_config);
    }
    body
}

fn optional_string(body: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::BadRequest(format!(
            "Invalid field '{field}': expected a string"
        ))),
    }
}

/// `GET /api/v1/mounts?label=...`.
#[derive(Deserialize)]
pub struct LabelFilter {
    label: Option<String>,
}

/// `GET /api/v1/mounts`.
#[get("/mounts")]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    filter: web::Query<LabelFilter>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Read)?;
    let views = state
        .registry
        .send(ListMounts {
            org: principal.org,
            label: filter.into_inner().label,
        })
        .await?;
    let mounts: Vec<Value> = views.iter().map(|v| mount_json(v, false)).collect();
    Ok(HttpResponse::Ok().json(json!({ "count": mounts.len(), "mounts": mounts })))
}

/// `GET /api/v1/mounts/{id}`.
#[get("/mounts/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Read)?;
    let id = mount_id(&id)?.to_string();
    let view = state
        .registry
        .send(GetMount {
            org: principal.org,
            id,
        })
        .await??;
    Ok(HttpResponse::Ok().json(mount_json(&view, true)))
}

/// `POST /api/v1/mounts`.
#[post("/mounts")]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Write)?;
    let body = json_body(payload).await?;
    let body = body
        .as_object()
        .ok_or_else(|| ApiError::BadRequest("request body must be a JSON object".into()))?;
    if let Some(unknown) = body.keys().find(|k| {
        ![
            "backend_id",
            "label",
            "mount_path",
            "remote_path",
            "vfs_config",
        ]
        .contains(&k.as_str())
    }) {
        return Err(ApiError::BadRequest(format!(
            "Unknown field '{unknown}': expected backend_id, label, mount_path, remote_path, vfs_config"
        )));
    }
    let backend_id = optional_string(body, "backend_id")?
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::BadRequest("Missing required field 'backend_id'".into()))?;
    let message = CreateMount {
        org: principal.org,
        backend_id,
        label: optional_string(body, "label")?,
        mount_path: optional_string(body, "mount_path")?,
        remote_path: optional_string(body, "remote_path")?,
        vfs_config: body.get("vfs_config").filter(|v| !v.is_null()).cloned(),
        span: Span::current(),
    };
    let view = state.registry.send(message).await??;
    Ok(HttpResponse::Created().json(json!({
        "success": true,
        "message": "Mount created successfully",
        "data": {
            "id": view.id,
            "backend_id": view.backend_id,
            "label": view.label,
            "mount_path": view.mount_path,
            "status": view.status,
        }
    })))
}

/// `PATCH /api/v1/mounts/{id}`: new VFS settings, applied without unmounting.
#[patch("/mounts/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Write)?;
    let id = mount_id(&id)?.to_string();
    let body = json_body(payload).await?;
    let vfs_config = body
        .get("vfs_config")
        .filter(|v| !v.is_null())
        .cloned()
        .ok_or_else(|| ApiError::BadRequest("Missing required field 'vfs_config'".into()))?;
    if let Some(unknown) = body
        .as_object()
        .and_then(|b| b.keys().find(|k| *k != "vfs_config"))
    {
        return Err(ApiError::BadRequest(format!(
            "Unknown field '{unknown}': expected vfs_config"
        )));
    }
    state
        .registry
        .send(PatchMount {
            org: principal.org,
            id,
            vfs_config,
        })
        .await??;
    Ok(HttpResponse::Ok()
        .json(json!({ "success": true, "message": "Mount configuration updated" })))
}

/// `DELETE /api/v1/mounts/{id}`: flushes pending uploads, then unmounts.
#[delete("/mounts/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Scope::Write)?;
    let id = mount_id(&id)?.to_string();
    state
        .registry
        .send(DeleteMount {
            org: principal.org,
            id,
            span: Span::current(),
        })
        .await??;
    Ok(
        HttpResponse::Ok()
            .json(json!({ "success": true, "message": "Mount removed successfully" })),
    )
}

#[cfg(test)]
mod tests {
    use super::mount_id;

    #[test]
    fn mount_ids_are_prefixed_hex() {
        assert!(mount_id("mount_550e8400e29b41d4a716446655440000").is_ok());
        for bad in [
            "mount_550E8400E29B41D4A716446655440000",
            "550e8400e29b41d4a716446655440000",
            "mount_1",
            "bnd_x",
        ] {
            assert!(mount_id(bad).is_err(), "{bad}");
        }
    }
}
