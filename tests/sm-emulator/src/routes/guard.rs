//! The layers in front of every Secrets Manager route: admission and authentication.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::server::AppState;

/// The identity of an authenticated caller, for `created_by`.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) iam_id: String,
}

/// Operation names (Go SDK operations in snake case) by method and route.
const OPERATIONS: &[(Method, &str, &str)] = &[
    (Method::GET, "/api/v2/secrets", "list_secrets"),
    (Method::POST, "/api/v2/secrets", "create_secret"),
    (Method::GET, "/api/v2/secrets/{id}", "get_secret"),
    (Method::DELETE, "/api/v2/secrets/{id}", "delete_secret"),
    (Method::GET, "/api/v2/secrets/{id}/metadata", "get_secret_metadata"),
    (Method::PATCH, "/api/v2/secrets/{id}/metadata", "update_secret_metadata"),
    (Method::GET, "/api/v2/secrets/{id}/versions", "list_secret_versions"),
    (Method::POST, "/api/v2/secrets/{id}/versions", "create_secret_version"),
    (Method::GET, "/api/v2/secrets/{id}/versions/{version_id}", "get_secret_version"),
    (Method::GET, "/api/v2/secrets/{id}/versions/{version_id}/metadata", "get_secret_version_metadata"),
    (Method::PATCH, "/api/v2/secrets/{id}/versions/{version_id}/metadata", "update_secret_version_metadata"),
    (Method::GET, "/api/v2/secret_groups", "list_secret_groups"),
    (Method::POST, "/api/v2/secret_groups", "create_secret_group"),
    (Method::GET, "/api/v2/secret_groups/{id}", "get_secret_group"),
    (
        Method::GET,
        "/api/v2/secret_groups/{id}/secret_types/{secret_type}/secrets/{name}",
        "get_secret_by_name",
    ),
];

/// The operation name of a request, `unknown` for unrouted ones.
fn operation(method: &Method, route: Option<&str>) -> &'static str {
    OPERATIONS
        .iter()
        .find(|(m, path, _)| m == method && Some(*path) == route)
        .map_or("unknown", |(_, _, name)| name)
}

/// Rate limit and injected faults; records every answer in the statistics.
pub(crate) async fn admit(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let operation =
        operation(request.method(), request.extensions().get::<MatchedPath>().map(MatchedPath::as_str));
    let decision = app.faults().decide();
    let admitted = app.traffic().arrive(decision.storm);
    let response = if admitted {
        if !decision.latency.is_zero() {
            tokio::time::sleep(decision.latency).await;
        }
        match decision.failure {
            Some(status) => ApiError::injected(status).into_response(),
            None => next.run(request).await,
        }
    } else {
        let mut response = ApiError::too_many_requests().into_response();
        if app.config.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    };
    app.traffic().answered(operation, response.status().as_u16());
    response
}

/// Requires a valid bearer token and records the caller.
pub(crate) async fn authenticate(
    State(app): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let principal = app
        .iam
        .tokens
        .authenticate(header)
        .map_err(|rejection| ApiError::unauthorized(rejection.to_string()))?;
    request.extensions_mut().insert(Caller { iam_id: principal.iam_id });
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named() {
        assert_eq!(operation(&Method::GET, Some("/api/v2/secrets/{id}")), "get_secret");
        assert_eq!(operation(&Method::POST, Some("/api/v2/secrets/{id}")), "unknown");
        assert_eq!(operation(&Method::GET, None), "unknown");
    }
}
