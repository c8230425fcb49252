//! Secret versions: create (rotate), list, read by id or alias, metadata.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::guard::Caller;
use super::{json_body, require_merge_patch};
use crate::error::ApiError;
use crate::server::AppState;

type Shared = State<Arc<AppState>>;

/// `POST /secrets/{id}/versions` → `201` with the new version and its value.
pub(super) async fn create(
    State(app): Shared,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let version = app.store.create_version_as(&id, &json_body(&body)?, &caller.iam_id)?;
    Ok((StatusCode::CREATED, Json(version)))
}

/// `GET /secrets/{id}/versions`: a `SecretVersionMetadataCollection`, oldest first.
pub(super) async fn list(State(app): Shared, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let versions = app.store.versions(&id)?;
    Ok(Json(json!({ "total_count": versions.len(), "versions": versions })))
}

/// `GET /secrets/{id}/versions/{version_id}` (`current` and `previous` allowed).
pub(super) async fn get(
    State(app): Shared,
    Path((id, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(app.store.read_version(&id, &version)?))
}

/// `GET /secrets/{id}/versions/{version_id}/metadata`.
pub(super) async fn metadata(
    State(app): Shared,
    Path((id, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(app.store.version_metadata(&id, &version)?))
}

/// `PATCH /secrets/{id}/versions/{version_id}/metadata`: only `version_custom_metadata`.
pub(super) async fn update_metadata(
    State(app): Shared,
    Path((id, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    require_merge_patch(&headers)?;
    let patch = json_body(&body)?;
    Ok(Json(app.store.update_version_metadata(&id, &version, &patch)?))
}
