//! Every metric of the controller, named in one place.
//!
//! All metrics carry the prefix [`PREFIX`]. Labels are bounded: a namespace,
//! an error kind, an operation or a status code; never an object name or a
//! secret id. `docs/metrics.md` documents each one.
//!
//! [`Metrics`] is also the [`CallObserver`] of the Secrets Manager client,
//! so every HTTP attempt, retry and token exchange is counted without the
//! client knowing about Prometheus.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::crd::ExternalSecret;
use crate::provider::{AttemptOutcome, CallObserver, Operation};
use crate::scheduler::Cadence;

/// The prefix of every metric name.
pub const PREFIX: &str = "cos_secrets_sync";
/// Syncs by namespace and result (`success` or an error kind).
pub const SYNCS: &str = "syncs";
/// Duration of syncs by namespace, in seconds.
pub const SYNC_DURATION: &str = "sync_duration_seconds";
/// Secrets Manager and IAM HTTP attempts by operation and status.
pub const SM_CALLS: &str = "secrets_manager_calls";
/// Secrets Manager `429` answers by operation.
pub const SM_THROTTLED: &str = "secrets_manager_throttled";
/// Retries the client scheduled, by operation.
pub const SM_RETRIES: &str = "secrets_manager_retries";
/// IAM token exchanges by status.
pub const TOKEN_EXCHANGES: &str = "iam_token_exchanges";
/// ExternalSecrets by namespace and `Ready` condition status.
pub const EXTERNAL_SECRETS: &str = "external_secrets";
/// 1 while this replica holds the leader lease.
pub const LEADER: &str = "leader";
/// Secrets Manager requests one refresh of every ExternalSecret costs.
pub const SCHEDULED_COST: &str = "scheduled_cost";
/// The poll interval in effect, in seconds (stretched to fit the budget).
pub const EFFECTIVE_INTERVAL: &str = "effective_interval_seconds";
/// With change detection, the time between two scans, in seconds.
pub const CHANGE_SCAN_INTERVAL: &str = "change_scan_interval_seconds";
/// Change-detection scans by result (`success` or an error kind).
pub const CHANGE_SCANS: &str = "change_scans";
/// ExternalSecrets a change-detection scan triggered a refresh of.
pub const CHANGE_REFRESHES: &str = "change_refreshes";

/// `namespace` and `result` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    /// The ExternalSecret's namespace.
    pub namespace: String,
    /// `success`, or the error's metric label.
    pub result: String,
}

/// A `namespace` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    /// The ExternalSecret's namespace.
    pub namespace: String,
}

/// `operation` and `status` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The operation, e.g. `get_secret`.
    pub operation: String,
    /// The HTTP status code, `transport` or `timeout`.
    pub status: String,
}

/// An `operation` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// The operation, e.g. `get_secret`.
    pub operation: String,
}

/// A `status` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// The HTTP status code, `transport` or `timeout`.
    pub status: String,
}

/// A `result` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success`, or the error's metric label.
    pub result: String,
}

/// `namespace` and `ready` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    /// The ExternalSecret's namespace.
    pub namespace: String,
    /// `True`, `False` or `Unknown` (no condition yet).
    pub ready: String,
}

/// The controller's metrics.
#[derive(Debug)]
pub struct Metrics {
    syncs: Family<SyncLabels, Counter>,
    sync_duration: Family<NamespaceLabels, Histogram>,
    sm_calls: Family<CallLabels, Counter>,
    sm_throttled: Family<OperationLabels, Counter>,
    sm_retries: Family<OperationLabels, Counter>,
    token_exchanges: Family<StatusLabels, Counter>,
    leader: Gauge,
    scheduled_cost: Gauge,
    effective_interval: Gauge<f64, AtomicU64>,
    change_scan_interval: Gauge<f64, AtomicU64>,
    change_scans: Family<ResultLabels, Counter>,
    change_refreshes: Counter,
    stores: ReadyCollector,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            syncs: Family::default(),
            sync_duration: Family::new_with_constructor(|| {
                Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
            }),
            sm_calls: Family::default(),
            sm_throttled: Family::default(),
            sm_retries: Family::default(),
            token_exchanges: Family::default(),
            leader: Gauge::default(),
            scheduled_cost: Gauge::default(),
            effective_interval: Gauge::default(),
            change_scan_interval: Gauge::default(),
            change_scans: Family::default(),
            change_refreshes: Counter::default(),
            stores: ReadyCollector::default(),
        };
        let registry = registry.sub_registry_with_prefix(PREFIX);
        registry.register(SYNCS, "ExternalSecret syncs by namespace and result", metrics.syncs.clone());
        registry.register(SYNC_DURATION, "Duration of ExternalSecret syncs", metrics.sync_duration.clone());
        registry.register(SM_CALLS, "Secrets Manager and IAM HTTP attempts", metrics.sm_calls.clone());
        registry.register(SM_THROTTLED, "Secrets Manager 429 answers", metrics.sm_throttled.clone());
        registry.register(SM_RETRIES, "Secrets Manager retries scheduled", metrics.sm_retries.clone());
        registry.register(TOKEN_EXCHANGES, "IAM token exchanges", metrics.token_exchanges.clone());
        registry.register(LEADER, "1 while this replica holds the leader lease", metrics.leader.clone());
        registry.register(
            SCHEDULED_COST,
            "Secrets Manager requests one refresh of every ExternalSecret costs",
            metrics.scheduled_cost.clone(),
        );
        registry.register(
            EFFECTIVE_INTERVAL,
            "The poll interval in effect, stretched to fit the request budget",
            metrics.effective_interval.clone(),
        );
        registry.register(
            CHANGE_SCAN_INTERVAL,
            "The time between two change-detection scans (0 without change detection)",
            metrics.change_scan_interval.clone(),
        );
        registry.register(CHANGE_SCANS, "Change-detection scans by result", metrics.change_scans.clone());
        registry.register(
            CHANGE_REFRESHES,
            "ExternalSecrets a change-detection scan triggered a refresh of",
            metrics.change_refreshes.clone(),
        );
        registry.register_collector(Box::new(metrics.stores.clone()));
        metrics
    }

    /// Starts timing a sync in `namespace`; the duration is recorded when
    /// the returned guard drops.
    pub fn sync_timer(&self, namespace: &str) -> SyncTimer<'_> {
        SyncTimer { metrics: self, namespace: namespace.to_owned(), start: Instant::now() }
    }

    /// Counts one sync in `namespace` with `result`.
    pub fn count_sync(&self, namespace: &str, result: &str) {
        self.syncs
            .get_or_create(&SyncLabels { namespace: namespace.to_owned(), result: result.to_owned() })
            .inc();
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Records the schedule: the summed refresh cost, the effective poll
    /// interval and the scan period.
    pub fn set_schedule(&self, total_cost: u64, cadence: Cadence) {
        self.scheduled_cost.set(i64::try_from(total_cost).unwrap_or(i64::MAX));
        self.effective_interval.set(cadence.poll.as_secs_f64());
        self.change_scan_interval.set(cadence.scan.unwrap_or_default().as_secs_f64());
    }

    /// Counts one change-detection scan with `result` that triggered
    /// `refreshes` ExternalSecrets.
    pub fn count_change_scan(&self, result: &str, refreshes: usize) {
        self.change_scans.get_or_create(&ResultLabels { result: result.to_owned() }).inc();
        self.change_refreshes.inc_by(u64::try_from(refreshes).unwrap_or(u64::MAX));
    }

    /// Makes the `external_secrets` gauge read these caches at scrape time
    /// (one per watched namespace scope); an empty list clears them, e.g.
    /// when leadership is lost.
    pub fn set_stores(&self, stores: Vec<Store<ExternalSecret>>) {
        *self.stores.0.lock().unwrap_or_else(PoisonError::into_inner) = stores;
    }
}

impl CallObserver for Metrics {
    fn on_attempt(&self, operation: Operation, outcome: AttemptOutcome) {
        let status = match outcome {
            AttemptOutcome::Status(code) => code.to_string(),
            AttemptOutcome::Timeout => "timeout".to_owned(),
            _ => "transport".to_owned(),
        };
        if operation == Operation::IamToken {
            self.token_exchanges.get_or_create(&StatusLabels { status: status.clone() }).inc();
        }
        if outcome == AttemptOutcome::Status(429) {
            self.sm_throttled
                .get_or_create(&OperationLabels { operation: operation.as_str().to_owned() })
                .inc();
        }
        self.sm_calls.get_or_create(&CallLabels { operation: operation.as_str().to_owned(), status }).inc();
    }

    fn on_retry(&self, operation: Operation, _delay: Duration) {
        self.sm_retries.get_or_create(&OperationLabels { operation: operation.as_str().to_owned() }).inc();
    }
}

/// Records a sync's duration on drop.
#[derive(Debug)]
pub struct SyncTimer<'a> {
    metrics: &'a Metrics,
    namespace: String,
    start: Instant,
}

impl Drop for SyncTimer<'_> {
    fn drop(&mut self) {
        let labels = NamespaceLabels { namespace: std::mem::take(&mut self.namespace) };
        self.metrics.sync_duration.get_or_create(&labels).observe(self.start.elapsed().as_secs_f64());
    }
}

/// Counts ExternalSecrets by `Ready` status from the controller's caches.
#[derive(Clone, Debug, Default)]
struct ReadyCollector(Arc<Mutex<Vec<Store<ExternalSecret>>>>);

impl Collector for ReadyCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let family = Family::<ReadyLabels, Gauge>::default();
        for store in self.0.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            for es in store.state() {
                let ready = es.ready_condition().map_or("Unknown", |condition| condition.status.as_str());
                let namespace = es.metadata.namespace.clone().unwrap_or_default();
                family.get_or_create(&ReadyLabels { namespace, ready: ready.to_owned() }).inc();
            }
        }
        // The sub-registry adds the prefix.
        let metric = encoder.encode_descriptor(
            EXTERNAL_SECRETS,
            "ExternalSecrets by namespace and Ready condition",
            None,
            family.metric_type(),
        )?;
        family.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn calls_are_counted_with_bounded_labels() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        metrics.on_attempt(Operation::GetSecret, AttemptOutcome::Status(200));
        metrics.on_attempt(Operation::GetSecret, AttemptOutcome::Status(429));
        metrics.on_attempt(Operation::IamToken, AttemptOutcome::Status(200));
        metrics.on_retry(Operation::GetSecret, Duration::from_secs(1));
        metrics.count_sync("ns", "success");
        drop(metrics.sync_timer("ns"));
        let (poll, scan) = (Duration::from_millis(37_500), Some(Duration::from_millis(2500)));
        metrics.set_schedule(300, Cadence { poll, refresh: poll, scan });
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            r#"cos_secrets_sync_secrets_manager_calls_total{operation="get_secret",status="200"} 1"#,
            r#"cos_secrets_sync_secrets_manager_throttled_total{operation="get_secret"} 1"#,
            r#"cos_secrets_sync_iam_token_exchanges_total{status="200"} 1"#,
            r#"cos_secrets_sync_secrets_manager_retries_total{operation="get_secret"} 1"#,
            r#"cos_secrets_sync_syncs_total{namespace="ns",result="success"} 1"#,
            r#"cos_secrets_sync_sync_duration_seconds_count{namespace="ns"} 1"#,
            "# TYPE cos_secrets_sync_external_secrets gauge",
            "cos_secrets_sync_scheduled_cost 300",
            "cos_secrets_sync_effective_interval_seconds 37.5",
            "cos_secrets_sync_change_scan_interval_seconds 2.5",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
