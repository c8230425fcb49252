//! The running emulator: one listener serving `/api/v2/…`, `/identity/token` and
//! `/__admin/…`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::EmulatorConfig;
use crate::faults::{FaultState, Faults, FaultsError};
use crate::iam::tokens::Principal;
use crate::iam::{self, Iam};
use crate::stats::{RequestStats, Traffic};
use crate::store::Store;
use crate::{admin, routes};

/// State shared by every route.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) config: EmulatorConfig,
    pub(crate) store: Store,
    pub(crate) iam: Iam,
    /// `http://IP:PORT` of the listener.
    pub(crate) base_url: String,
    traffic: Mutex<Traffic>,
    faults: Mutex<FaultState>,
}

impl AppState {
    pub(crate) fn traffic(&self) -> MutexGuard<'_, Traffic> {
        self.traffic.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, FaultState> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct Emulator {
    state: Arc<AppState>,
    local_addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Emulator {
    /// Binds `listen` (port 0 picks a free port) and starts serving on the current Tokio
    /// runtime.
    pub async fn start(config: EmulatorConfig, listen: SocketAddr) -> std::io::Result<Self> {
        Self::serve(config, TcpListener::bind(listen).await?)
    }

    /// Starts serving on an already bound listener.
    pub fn serve(config: EmulatorConfig, listener: TcpListener) -> std::io::Result<Self> {
        let mut local_addr = listener.local_addr()?;
        if local_addr.ip().is_unspecified() {
            local_addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let state = Arc::new(AppState {
            store: Store::new(&config),
            iam: Iam::new(&config),
            traffic: Mutex::new(Traffic::new(config.rate_limit)),
            faults: Mutex::new(FaultState::default()),
            base_url: format!("http://{local_addr}"),
            config,
        });
        let app = Router::new()
            .nest("/api/v2", routes::router(&state))
            .route("/identity/token", post(iam::token))
            .nest("/__admin", admin::router())
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "emulator server stopped");
            }
        });
        tracing::info!(url = %state.base_url, "emulator started");
        Ok(Self { state, local_addr, server })
    }

    /// Base URL of both Secrets Manager and IAM, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        self.state.base_url.clone()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Direct access to the secrets, bypassing HTTP, auth and the rate limit.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Request counters; the same data as `GET /__admin/requests`.
    pub fn stats(&self) -> RequestStats {
        self.state.traffic().snapshot()
    }

    /// Clears the request counters, like `POST /__admin/reset`.
    pub fn reset_stats(&self) {
        self.state.traffic().reset();
    }

    /// Replaces the injected faults, like `POST /__admin/faults`.
    ///
    /// # Panics
    /// When `faults` is invalid (see [`Emulator::try_set_faults`]).
    #[allow(clippy::needless_pass_by_value)] // The shared test API takes the set by value.
    pub fn set_faults(&self, faults: Faults) {
        self.try_set_faults(&faults).unwrap_or_else(|error| panic!("invalid faults {faults:?}: {error}"));
    }

    /// Replaces the injected faults, refusing an invalid set.
    pub fn try_set_faults(&self, faults: &Faults) -> Result<(), FaultsError> {
        self.state.faults().set(faults)
    }

    /// The injected faults now active, like `GET /__admin/faults`.
    pub fn faults(&self) -> Faults {
        self.state.faults().view()
    }

    /// A valid access token, minted without an IAM request (not counted in the stats).
    pub fn access_token(&self) -> String {
        let principal = Principal {
            iam_id: crate::store::STORE_CREATOR.to_owned(),
            sub: crate::store::STORE_CREATOR.trim_start_matches("iam-").to_owned(),
            sub_type: "ServiceId",
        };
        let body = self.state.iam.tokens.issue(&principal, iam::GRANT_APIKEY);
        body["access_token"].as_str().expect("issued tokens are strings").to_owned()
    }

    /// Waits until the server task ends (it ends only on a listener failure).
    pub async fn wait(&mut self) {
        if let Err(error) = (&mut self.server).await
            && !error.is_cancelled()
        {
            tracing::error!(%error, "emulator server task failed");
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}
