//! The HTTP endpoints: `/metrics` (Prometheus text format), `/healthz`
//! (the process is alive), `/readyz` (start-up finished: the replica is
//! serving as leader or waiting as a standby) and `PUT /log-level` (the body
//! is a new log filter, e.g. `info,controller=debug`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, put};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::telemetry::LogControl;
use crate::{Error, Result};

/// What the endpoints read.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// The metrics registry.
    pub registry: Arc<Registry>,
    /// Set once start-up is done.
    pub ready: Arc<AtomicBool>,
    /// Changes the log filter; `PUT /log-level` answers 404 without it.
    pub log_control: Option<LogControl>,
}

/// The router of the endpoints.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/log-level", put(log_level))
        .with_state(state)
}

/// Binds `addr`; returns the bound address (port 0 picks one) and the
/// server future, which stops when `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await.map_err(|source| Error::Http { addr, source })?;
    let bound = listener.local_addr().map_err(|source| Error::Http { addr, source })?;
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown);
    Ok((bound, server.into_future()))
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn log_level(State(state): State<HttpState>, body: String) -> (StatusCode, String) {
    let Some(control) = &state.log_control else {
        return (StatusCode::NOT_FOUND, "log control is not available\n".to_owned());
    };
    match control.set(body.trim()) {
        Ok(()) => {
            tracing::info!(filter = %body.trim(), "log filter changed");
            (StatusCode::OK, "ok\n".to_owned())
        }
        Err(error) => (StatusCode::BAD_REQUEST, format!("{error}\n")),
    }
}

async fn readyz(State(state): State<HttpState>) -> StatusCode {
    if state.ready.load(Ordering::Acquire) { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints_answer() {
        let mut registry = Registry::default();
        let metrics = crate::metrics::Metrics::new(&mut registry);
        metrics.count_sync("ns", "success");
        let ready = Arc::new(AtomicBool::new(false));
        let applied = Arc::new(std::sync::Mutex::new(String::new()));
        let seen = applied.clone();
        let log_control = LogControl::new(move |filter| {
            if filter == "bad[" {
                return Err("invalid filter".to_owned());
            }
            *seen.lock().unwrap() = filter.to_owned();
            Ok(())
        });
        let state =
            HttpState { registry: Arc::new(registry), ready: ready.clone(), log_control: Some(log_control) };
        let (addr, server) =
            serve("127.0.0.1:0".parse().unwrap(), state, std::future::pending()).await.unwrap();
        tokio::spawn(server);
        let get = |path: &str| reqwest::get(format!("http://{addr}{path}"));
        assert_eq!(get("/healthz").await.unwrap().status(), 200);
        assert_eq!(get("/readyz").await.unwrap().status(), 503);
        ready.store(true, Ordering::Release);
        assert_eq!(get("/readyz").await.unwrap().status(), 200);
        let body = get("/metrics").await.unwrap().text().await.unwrap();
        assert!(
            body.contains(r#"cos_secrets_sync_syncs_total{namespace="ns",result="success"} 1"#),
            "{body}"
        );
        let put = |filter: &'static str| {
            reqwest::Client::new().put(format!("http://{addr}/log-level")).body(filter).send()
        };
        assert_eq!(put("debug\n").await.unwrap().status(), 200);
        assert_eq!(*applied.lock().unwrap(), "debug");
        assert_eq!(put("bad[").await.unwrap().status(), 400);
    }
}
