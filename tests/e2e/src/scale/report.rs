//! The figures of one contender at one size, and the side-by-side table.

use std::fmt::Write as _;
use std::time::Duration;

use super::observe::Latencies;

/// What one contender did at one size.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// ExternalSecrets present from the start.
    pub size: usize,
    /// Secrets Manager requests per minute during the steady window.
    pub requests_per_minute: f64,
    /// `429` answers over the whole run.
    pub throttled: u64,
    /// Most requests that arrived in any sliding second, `429`s included.
    pub max_arrived_in_1s: u64,
    /// Most requests admitted in any sliding second.
    pub max_admitted_in_1s: u64,
    /// Time until every Secret held its first value; `None` if they did not
    /// within the wait.
    pub initial_sync: Option<Duration>,
    /// Secrets holding the current value when the rotation started.
    pub synced_before_rotation: usize,
    /// From rotating the secrets to the Secrets holding the new values.
    pub rotation: Latencies,
    /// From applying new ExternalSecrets under load, all at once, to their
    /// Secrets.
    pub first_sync: Latencies,
    /// The same, one ExternalSecret at a time.
    pub paced_first_sync: Latencies,
    /// Peak RSS of the contender's process (the controller only).
    pub peak_rss: Option<u64>,
}

/// A row of the table: label, how to show a contender's figure, target.
type Row = (&'static str, fn(&Figures) -> String, String);

/// The table of one size: the baseline (if it ran) and the controller side
/// by side, with the targets; `quota` is the emulator's.
pub fn table(baseline: Option<&Figures>, controller: &Figures, quota: u32) -> String {
    let rows: [Row; 11] = [
        (
            "Secrets Manager requests per minute (steady)",
            |f| format!("{:.0}", f.requests_per_minute),
            String::new(),
        ),
        ("`429` answers (whole run)", |f| f.throttled.to_string(), "0".into()),
        (
            "most requests in any 1 s (429s included)",
            |f| f.max_arrived_in_1s.to_string(),
            format!("≤ {quota} (the quota)"),
        ),
        ("most admitted requests in any 1 s", |f| f.max_admitted_in_1s.to_string(), String::new()),
        (
            "all Secrets synced after",
            |f| f.initial_sync.map_or_else(|| "never (within the wait)".into(), seconds),
            String::new(),
        ),
        (
            "Secrets current before the rotation",
            |f| format!("{} / {}", f.synced_before_rotation, f.size),
            String::new(),
        ),
        (
            "rotation → Secret, p50 / p99 / max",
            |f| quantiles(&f.rotation, &[0.5, 0.99, 1.0]),
            "p99 ≤ 10 s at 10,000".into(),
        ),
        ("rotated Secrets updated within the wait", |f| reached(&f.rotation), String::new()),
        (
            "first sync under load, 50 at once, p50 / p99",
            |f| quantiles(&f.first_sync, &[0.5, 0.99]),
            "p99 ≤ 2 s".into(),
        ),
        (
            "first sync under load, one every 250 ms, p50 / p99",
            |f| quantiles(&f.paced_first_sync, &[0.5, 0.99]),
            String::new(),
        ),
        ("peak RSS", |f| f.peak_rss.map_or_else(|| "–".into(), mib), "≤ 150 MiB at 10,000".into()),
    ];
    let mut out = format!(
        "\n### {} ExternalSecrets\n\n| | KES-like baseline | cos-secrets-sync | target (cos-secrets-sync) |\n|---|---|---|---|\n",
        controller.size
    );
    for (label, show, target) in rows {
        let baseline = baseline.map_or_else(|| "not run".into(), show);
        let _ = writeln!(out, "| {label} | {baseline} | {} | {target} |", show(controller));
    }
    out
}

fn quantiles(latencies: &Latencies, qs: &[f64]) -> String {
    qs.iter()
        .map(|q| latencies.quantile(*q).map_or_else(|| format!("> {}", seconds(latencies.limit)), seconds))
        .collect::<Vec<_>>()
        .join(" / ")
}

fn reached(latencies: &Latencies) -> String {
    format!("{} / {} in {}", latencies.done.len(), latencies.expected, seconds(latencies.limit))
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

#[allow(clippy::cast_precision_loss)]
fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / 1024.0 / 1024.0)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn table_shows_both_contenders_and_misses() {
        let start = Instant::now();
        let seen: Vec<(Instant, Option<Instant>)> =
            (1..=50).map(|s| (start, Some(start + Duration::from_secs(s)))).collect();
        let partly: Vec<(Instant, Option<Instant>)> =
            seen.iter().enumerate().map(|(i, (start, end))| (*start, end.filter(|_| i < 10))).collect();
        let controller = Figures {
            size: 1000,
            throttled: 0,
            initial_sync: Some(Duration::from_millis(61_500)),
            rotation: Latencies::new(seen, Duration::from_secs(60)),
            peak_rss: Some(64 * 1024 * 1024),
            ..Figures::default()
        };
        let baseline = Figures {
            size: 1000,
            throttled: 1234,
            rotation: Latencies::new(partly, Duration::from_secs(60)),
            ..Figures::default()
        };
        let table = table(Some(&baseline), &controller, 20);
        assert!(table.contains("### 1000 ExternalSecrets"), "{table}");
        assert!(table.contains("| `429` answers (whole run) | 1234 | 0 | 0 |"), "{table}");
        assert!(table.contains("| 25.0 s / 50.0 s / 50.0 s |"), "{table}");
        assert!(table.contains("| > 60.0 s / > 60.0 s / > 60.0 s |"), "{table}");
        assert!(table.contains("| 10 / 50 in 60.0 s | 50 / 50 in 60.0 s |"), "{table}");
        assert!(table.contains("| never (within the wait) | 61.5 s |"), "{table}");
        assert!(table.contains("| – | 64 MiB |"), "{table}");
        assert!(table.contains("| ≤ 20 (the quota) |"), "{table}");
        let alone = super::table(None, &controller, 20);
        assert!(alone.contains("| `429` answers (whole run) | not run | 0 | 0 |"), "{alone}");
    }
}
