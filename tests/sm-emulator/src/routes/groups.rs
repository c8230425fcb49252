//! Secret groups: list, read, and create.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::json_body;
use crate::body::Body;
use crate::error::ApiError;
use crate::server::AppState;

type Shared = State<Arc<AppState>>;

/// `GET /secret_groups`: a `SecretGroupCollection`.
pub(super) async fn list(State(app): Shared) -> Json<Value> {
    let groups = app.store.groups();
    Json(json!({ "total_count": groups.len(), "secret_groups": groups }))
}

/// `GET /secret_groups/{id}`.
pub(super) async fn get(State(app): Shared, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(app.store.group(&id)?))
}

/// `POST /secret_groups` → `201` with the new group.
pub(super) async fn create(State(app): Shared, body: Bytes) -> Result<(StatusCode, Json<Value>), ApiError> {
    let value = json_body(&body)?;
    let body = Body::new(&value)?;
    let group = app.store.create_group(body.str("name")?, body.opt_str("description")?)?;
    Ok((StatusCode::CREATED, Json(group)))
}
