//! The Grafana dashboard, the alert rules and `docs/metrics.md` only name
//! metrics the controller really exports.

use std::collections::BTreeSet;
use std::path::Path;

use std::time::Duration;

use controller::metrics::Metrics;
use controller::provider::{AttemptOutcome, CallObserver, Operation};
use prometheus_client::registry::Registry;

/// Metric families the controller registers, as `(name, type)`. Families
/// with labels appear once they have a series, so each gets one.
fn exported() -> Vec<(String, String)> {
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    metrics.on_attempt(Operation::GetSecret, AttemptOutcome::Status(429));
    metrics.on_attempt(Operation::IamToken, AttemptOutcome::Status(200));
    metrics.on_retry(Operation::GetSecret, Duration::from_secs(1));
    metrics.count_sync("ns", "success");
    metrics.count_change_scan("success", 1);
    drop(metrics.sync_timer("ns"));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| {
            let mut parts = rest.split_whitespace();
            (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned())
        })
        .collect()
}

/// Series names a query may use for a family of the given type.
fn series_names(name: &str, kind: &str) -> Vec<String> {
    match kind {
        "counter" => vec![format!("{name}_total")],
        "histogram" => ["_bucket", "_sum", "_count"].iter().map(|s| format!("{name}{s}")).collect(),
        _ => vec![name.to_owned()],
    }
}

/// Every `cos_secrets_sync_*` identifier in a file.
fn referenced(file: &str) -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut names = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("cos_secrets_sync_") {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn dashboards_and_alerts_use_only_exported_series() {
    let families = exported();
    assert!(!families.is_empty());
    let series: BTreeSet<String> =
        families.iter().flat_map(|(name, kind)| series_names(name, kind)).collect();
    for file in ["dashboards/controller.json", "dashboards/alerts.yaml"] {
        let used = referenced(file);
        assert!(!used.is_empty(), "{file} names no metric");
        let unknown: Vec<_> = used.difference(&series).collect();
        assert!(unknown.is_empty(), "{file} uses series the controller does not export: {unknown:?}");
    }
}

#[test]
fn every_exported_metric_is_documented() {
    let documented = referenced("docs/metrics.md");
    for (name, kind) in exported() {
        let names = series_names(&name, kind.as_str());
        assert!(
            documented.contains(&name) || names.iter().any(|n| documented.contains(n)),
            "{name} is missing from docs/metrics.md"
        );
    }
}
