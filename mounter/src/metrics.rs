//! Prometheus metrics of the mounter: every name and label in one place.
//!
//! Labels are bounded: filesystem operation names, S3 operation names, HTTP
//! status codes, cache names. Never a path, key or bucket. The registry
//! prefix is `cos_mounter`. See `docs/mounter.md` for the table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::response::IntoResponse as _;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

const PREFIX: &str = "cos_mounter";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct S3Labels {
    operation: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabels {
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    result: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

#[derive(Debug)]
struct Inner {
    fs_ops: Family<OutcomeLabels, Counter>,
    fs_latency: Family<OpLabels, Histogram, fn() -> Histogram>,
    fs_bytes: Family<OpLabels, Counter>,
    s3_requests: Family<S3Labels, Counter>,
    s3_latency: Family<OpLabels, Histogram, fn() -> Histogram>,
    cache: Family<CacheLabels, Counter>,
    read_opens: Family<ModeLabels, Counter>,
    prefetch_window: Gauge<u64, AtomicU64>,
    credential_reloads: Counter,
}

/// The mounter's metrics; cheap to clone, all clones share values.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Self(Arc::new(Inner {
            fs_ops: Family::default(),
            fs_latency: Family::new_with_constructor(latency_histogram),
            fs_bytes: Family::default(),
            s3_requests: Family::default(),
            s3_latency: Family::new_with_constructor(latency_histogram),
            cache: Family::default(),
            read_opens: Family::default(),
            prefetch_window: Gauge::default(),
            credential_reloads: Counter::default(),
        }))
    }
}

impl Metrics {
    /// Registers every metric under the `cos_mounter` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix(PREFIX);
        let m = &self.0;
        registry.register("fs_operations", "Filesystem operations by outcome", m.fs_ops.clone());
        registry.register(
            "fs_operation_duration_seconds",
            "Filesystem operation latency",
            m.fs_latency.clone(),
        );
        registry.register("fs_bytes", "Bytes read or written through the mount", m.fs_bytes.clone());
        registry.register("s3_requests", "S3 requests by HTTP status (0: no answer)", m.s3_requests.clone());
        registry.register("s3_request_duration_seconds", "S3 request latency", m.s3_latency.clone());
        registry.register("cache_lookups", "Metadata cache lookups by result", m.cache.clone());
        registry.register(
            "read_opens",
            "Files opened for reading, by read path (direct or page_cache)",
            m.read_opens.clone(),
        );
        registry.register(
            "prefetch_window_bytes",
            "The last prefetch window size",
            m.prefetch_window.clone(),
        );
        registry.register(
            "credential_reloads",
            "Credential swaps after a change",
            m.credential_reloads.clone(),
        );
    }

    /// Records one filesystem operation.
    pub fn fs_op(&self, operation: &'static str, ok: bool, elapsed: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.0.fs_ops.get_or_create(&OutcomeLabels { operation, outcome }).inc();
        self.0.fs_latency.get_or_create(&OpLabels { operation }).observe(elapsed.as_secs_f64());
    }

    /// Counts bytes served by `read` or accepted by `write`.
    pub fn fs_bytes(&self, operation: &'static str, bytes: usize) {
        self.0.fs_bytes.get_or_create(&OpLabels { operation }).inc_by(bytes as u64);
    }

    /// Records one S3 request.
    pub fn s3_request(&self, operation: &'static str, status: u16, elapsed: Duration) {
        self.0.s3_requests.get_or_create(&S3Labels { operation, status }).inc();
        self.0.s3_latency.get_or_create(&OpLabels { operation }).observe(elapsed.as_secs_f64());
    }

    /// Records a metadata cache lookup.
    pub fn cache(&self, cache: &'static str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.0.cache.get_or_create(&CacheLabels { cache, result }).inc();
    }

    /// Counts a file opened for reading, read directly or through the page cache.
    pub fn read_open(&self, direct: bool) {
        let mode = if direct { "direct" } else { "page_cache" };
        self.0.read_opens.get_or_create(&ModeLabels { mode }).inc();
    }

    /// Records the prefetch window a reader just grew or reset to.
    pub fn prefetch_window(&self, bytes: u64) {
        self.0.prefetch_window.set(bytes);
    }

    /// Counts one credential swap.
    pub fn credential_reload(&self) {
        self.0.credential_reloads.inc();
    }

    /// How many credential swaps happened.
    pub fn credential_reloads(&self) -> u64 {
        self.0.credential_reloads.get()
    }
}

/// Serves `GET /metrics` on `addr` until the task is dropped.
pub async fn serve(addr: SocketAddr, registry: Registry) -> std::io::Result<()> {
    let registry = Arc::new(registry);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut text = String::new();
                if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
                let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                ([(axum::http::header::CONTENT_TYPE, content_type)], text).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving metrics");
    axum::serve(listener, app).await
}
