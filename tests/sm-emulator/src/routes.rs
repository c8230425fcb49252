//! The Secrets Manager v2 REST API under `/api/v2` (reference 1.3–1.11).
//!
//! Every request passes two layers, outermost first:
//! [`guard::admit`] (rate limit, injected faults, statistics) and
//! [`guard::authenticate`] (bearer token). Handlers then call the [`Store`](crate::Store).

mod groups;
mod guard;
mod secrets;
mod versions;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use serde_json::Value;

use crate::error::ApiError;
use crate::server::AppState;

/// Routes of the Secrets Manager API, relative to `/api/v2`.
pub(crate) fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/secrets", get(secrets::list).post(secrets::create))
        .route("/secrets/{id}", get(secrets::get).delete(secrets::delete))
        .route("/secrets/{id}/metadata", get(secrets::metadata).patch(secrets::update_metadata))
        .route("/secrets/{id}/versions", get(versions::list).post(versions::create))
        .route("/secrets/{id}/versions/{version_id}", get(versions::get))
        .route(
            "/secrets/{id}/versions/{version_id}/metadata",
            get(versions::metadata).patch(versions::update_metadata),
        )
        .route("/secret_groups", get(groups::list).post(groups::create))
        .route("/secret_groups/{id}", get(groups::get))
        .route("/secret_groups/{id}/secret_types/{secret_type}/secrets/{name}", get(secrets::get_by_name))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(Arc::clone(state), guard::authenticate))
        .layer(from_fn_with_state(Arc::clone(state), guard::admit))
}

async fn not_found() -> ApiError {
    ApiError::not_found("the requested resource does not exist")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// Parses a JSON request body; an empty body counts as `{}`.
fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("the request body is not valid JSON: {error}")))
}

/// Requires `Content-Type: application/merge-patch+json`, as every PATCH of the API does.
fn require_merge_patch(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case("application/merge-patch+json") {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(format!(
            "Content-Type must be application/merge-patch+json, not '{content_type}'"
        )))
    }
}

/// The base URL the caller used, for absolute `href`s.
fn caller_base_url(app: &AppState, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .map_or_else(|| app.base_url.clone(), |host| format!("http://{host}"))
}
