//! The one place where failures become Secrets Manager error responses.
//!
//! Every error answer uses IBM's API Handbook container (reference 2.1) with
//! `Content-Type: application/json`:
//! `{"errors":[{"code":…,"message":…,"more_info":…}],"trace":"<uuid>","status_code":N}`.
//! The `code` values are UNCONFIRMED for Secrets Manager v2 (no sample body is published);
//! they are snake_case names of the status, as the Handbook recommends.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// Documentation link sent as `more_info`.
const MORE_INFO: &str = "https://cloud.ibm.com/apidocs/secrets-manager/secrets-manager-v2";

/// An error answer of the Secrets Manager API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// `400`: the request failed validation; the message names the field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// `401`: the bearer token is missing, unknown or expired.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// `404`: the route, secret, group or version does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `405`: the route exists but not with this method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the method is not allowed on this resource",
        )
    }

    /// `415`: a body of the wrong content type.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message)
    }

    /// `429`: the instance's request rate was exceeded.
    pub fn too_many_requests() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Too many requests. Reduce the request rate and try again.",
        )
    }

    /// An injected server failure (`500` or `503`).
    pub fn injected(status: StatusCode) -> Self {
        let code = if status == StatusCode::SERVICE_UNAVAILABLE {
            "service_unavailable"
        } else {
            "internal_server_error"
        };
        Self::new(
            status,
            code,
            format!("{}: injected by the emulator", status.canonical_reason().unwrap_or("error")),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { .. } => Self::not_found(error.to_string()),
            StoreError::Invalid { .. } => Self::bad_request(error.to_string()),
            StoreError::Conflict { .. } => Self::new(StatusCode::CONFLICT, "conflict", error.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "errors": [{
                "code": self.code,
                "message": self.message,
                "more_info": MORE_INFO,
            }],
            "trace": uuid::Uuid::new_v4().to_string(),
            "status_code": self.status.as_u16(),
        });
        (self.status, Json(body)).into_response()
    }
}
