//! Secrets: create, read (by id, by name, metadata), list, patch metadata, delete.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::guard::Caller;
use super::{caller_base_url, json_body, require_merge_patch};
use crate::error::ApiError;
use crate::server::AppState;
use crate::store::list::ListQuery;

type Shared = State<Arc<AppState>>;

/// `POST /secrets` → `201` with the whole secret.
pub(super) async fn create(
    State(app): Shared,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let secret = app.store.create_secret_as(&json_body(&body)?, &caller.iam_id)?;
    Ok((StatusCode::CREATED, Json(secret)))
}

/// `GET /secrets/{id}`.
pub(super) async fn get(State(app): Shared, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(app.store.read_secret(&id)?))
}

/// `GET /secret_groups/{group}/secret_types/{secret_type}/secrets/{name}`.
pub(super) async fn get_by_name(
    State(app): Shared,
    Path((group, secret_type, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(app.store.read_secret_by_name(&group, &secret_type, &name)?))
}

/// `GET /secrets/{id}/metadata`.
pub(super) async fn metadata(State(app): Shared, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(app.store.secret_metadata(&id)?))
}

/// `GET /secrets`.
pub(super) async fn list(
    State(app): Shared,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let query = ListQuery::parse(query.as_deref().unwrap_or_default())?;
    let (total, page) = app.store.list(&query);
    app.traffic().listed(page.len());
    Ok(Json(query.envelope(&caller_base_url(&app, &headers), total, page)))
}

/// `PATCH /secrets/{id}/metadata`; the body must be `application/merge-patch+json`.
pub(super) async fn update_metadata(
    State(app): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    require_merge_patch(&headers)?;
    Ok(Json(app.store.update_metadata(&id, json_body(&body)?)?))
}

/// `DELETE /secrets/{id}` → `204`; accepts `force_delete=true|false` on every type.
pub(super) async fn delete(
    State(app): Shared,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError> {
    let query = query.unwrap_or_default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key == "force_delete" && !matches!(value.as_ref(), "true" | "false") {
            return Err(ApiError::bad_request("invalid field 'force_delete': must be true or false"));
        }
    }
    app.store.delete(&id)?;
    Ok(StatusCode::NO_CONTENT)
}
