//! `/__admin`: request statistics and fault injection. Not rate limited, no auth.
//!
//! - `GET /__admin/requests`: [`RequestStats`](crate::RequestStats) as JSON;
//! - `POST /__admin/reset`: clears the counters (`204`);
//! - `GET /__admin/faults`: the active [`Faults`];
//! - `POST /__admin/faults`: replaces them (`200` with the active set, `400` if invalid).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::faults::Faults;
use crate::server::AppState;
use crate::stats::RequestStats;

type Shared = State<Arc<AppState>>;

/// The admin routes, relative to `/__admin`.
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/requests", get(requests))
        .route("/reset", post(reset))
        .route("/faults", get(faults).post(set_faults))
}

async fn requests(State(app): Shared) -> Json<RequestStats> {
    Json(app.traffic().snapshot())
}

async fn reset(State(app): Shared) -> StatusCode {
    app.traffic().reset();
    StatusCode::NO_CONTENT
}

async fn faults(State(app): Shared) -> Json<Faults> {
    Json(app.faults().view())
}

async fn set_faults(State(app): Shared, body: Bytes) -> Result<Json<Faults>, ApiError> {
    let faults: Faults = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("invalid faults: {error}")))?;
    let mut state = app.faults();
    state.set(&faults).map_err(|error| ApiError::bad_request(error.to_string()))?;
    Ok(Json(state.view()))
}
