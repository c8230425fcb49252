//! The cost model: Secrets Manager requests per refresh, and the interval
//! that fits every refresh into the request budget.

use std::time::Duration;

use crate::materialize::RemoteRef;
use crate::provider::MAX_PAGE_LIMIT;
use crate::provider::budget::emission_interval;

/// The Secrets Manager requests one refresh makes: one per distinct remote
/// secret in the fetch plan.
///
/// A by-id read is one `get_secret`. A `keyByName` read is also one request:
/// the controller reads the value directly with `get_secret_by_name`
/// (`GET /secret_groups/{group}/secret_types/{type}/secrets/{name}`) rather
/// than resolving the name to an id first, so it costs 1 too. Retries are
/// not counted here; they are rare and the budget paces them like any other
/// request.
pub fn refresh_cost(fetches: &[RemoteRef]) -> u32 {
    fetches
        .iter()
        .map(|fetch| match fetch {
            RemoteRef::Id(_) | RemoteRef::Name { .. } => 1,
        })
        .sum()
}

/// The share of the budget rate the schedule plans for. A queue served at
/// exactly its arrival rate never drains a backlog (the burst of first syncs
/// after a start, an outage, a wave of new objects), so refreshes are
/// planned at 90 % of the rate and the rest drains backlogs.
pub const PLANNED_UTILIZATION: f64 = 0.9;

/// The share of the budget rate a change-detection scan may use, at most.
///
/// The scan runs every quarter of the configured poll interval, so that a
/// change is seen within a quarter interval and the rest of the interval is
/// left for reading it. Its list calls must not crowd out those reads, nor
/// the full refreshes: a quarter of the rate bounds the scan, and with it
/// the time a rotation burst waits behind it, while leaving three quarters
/// for the refreshes (which [`full_refresh_interval`] plans for). With
/// 10,000 secrets (10 list calls) and a 16/s budget, the scan may run every
/// 2.5 s.
pub const SCAN_SHARE: f64 = 0.25;

/// The poll interval that refreshes every object once within `rate`
/// requests per second: `configured`, or the time the budget needs for
/// `total_cost` permits at [`PLANNED_UTILIZATION`] of `rate` when that is
/// longer (rounded up to whole milliseconds). `None` means no budget.
pub fn effective_interval(configured: Duration, total_cost: u64, rate: Option<f64>) -> Duration {
    stretch(configured, total_cost, rate, PLANNED_UTILIZATION)
}

/// With change detection, the interval in which every object is refreshed
/// in full: `full_refresh`, or the time the budget needs for `total_cost`
/// permits at [`PLANNED_UTILIZATION`] of the share the scan leaves
/// (`1 - SCAN_SHARE`) when that is longer.
pub fn full_refresh_interval(full_refresh: Duration, total_cost: u64, rate: Option<f64>) -> Duration {
    stretch(full_refresh, total_cost, rate, PLANNED_UTILIZATION * (1.0 - SCAN_SHARE))
}

/// How often the change-detection scan runs: every quarter of the
/// configured poll interval, or less often when its `scan_calls` list
/// calls would take more than [`SCAN_SHARE`] of `rate`.
pub fn scan_period(configured: Duration, scan_calls: u64, rate: Option<f64>) -> Duration {
    stretch(configured / 4, scan_calls, rate, SCAN_SHARE)
}

/// The list calls of a scan that found `secrets` secrets: one per page of
/// [`MAX_PAGE_LIMIT`], and at least one.
pub fn scan_calls(secrets: usize) -> u64 {
    u64::try_from(secrets.div_ceil(MAX_PAGE_LIMIT as usize).max(1)).unwrap_or(u64::MAX)
}

/// `at_least`, or the time `requests` permits take at `share` of `rate`
/// when that is longer, rounded up to whole milliseconds.
fn stretch(at_least: Duration, requests: u64, rate: Option<f64>, share: f64) -> Duration {
    let Some(rate) = rate.filter(|rate| *rate > 0.0) else { return at_least };
    let per_request = emission_interval(rate * share);
    let needed = per_request.saturating_mul(u32::try_from(requests).unwrap_or(u32::MAX));
    let millis = needed.as_nanos().div_ceil(1_000_000);
    at_least.max(Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::SecretType;

    #[test]
    fn each_distinct_remote_secret_costs_one_request() {
        let by_name =
            RemoteRef::Name { group: "default".into(), secret_type: SecretType::Arbitrary, name: "n".into() };
        assert_eq!(refresh_cost(&[]), 0);
        assert_eq!(refresh_cost(&[RemoteRef::Id("a".into()), RemoteRef::Id("b".into()), by_name]), 3);
    }

    #[test]
    fn interval_stretches_to_the_budget() {
        let ten = Duration::from_secs(10);
        // 8 requests per second, planned at 7.2: 138.9 ms per request.
        assert_eq!(effective_interval(ten, 71, Some(8.0)), ten);
        assert_eq!(effective_interval(ten, 72, Some(8.0)), Duration::from_millis(10_001));
        assert_eq!(effective_interval(ten, 300, Some(8.0)), Duration::from_millis(41_667));
        assert_eq!(effective_interval(ten, 1, Some(3.0)), ten);
        assert_eq!(
            effective_interval(Duration::ZERO, 1, Some(3.0)),
            Duration::from_millis(371),
            "rounded up"
        );
        assert_eq!(effective_interval(ten, 1_000_000, None), ten);
    }

    #[test]
    fn the_scan_runs_every_quarter_interval_within_its_share() {
        let ten = Duration::from_secs(10);
        assert_eq!(scan_calls(0), 1, "one call before the first scan, and for an empty listing");
        assert_eq!(scan_calls(1000), 1);
        assert_eq!(scan_calls(10_000), 10);
        assert_eq!(scan_calls(10_001), 11);
        // 10 calls at a quarter of 16/s: 2.5 s, a quarter of 10 s.
        assert_eq!(scan_period(ten, 10, Some(16.0)), Duration::from_millis(2500));
        assert_eq!(scan_period(ten, 1, Some(16.0)), Duration::from_millis(2500));
        // 50 calls at 4/s: 12.5 s.
        assert_eq!(scan_period(ten, 50, Some(16.0)), Duration::from_millis(12_500));
        assert_eq!(scan_period(ten, 50, None), Duration::from_millis(2500));
        assert_eq!(scan_period(Duration::from_secs(1), 1, Some(8.0)), Duration::from_millis(500));
    }

    #[test]
    fn full_refreshes_are_planned_within_the_rest() {
        let hour = Duration::from_secs(3600);
        // 10,000 single-secret objects at 16/s × 0.9 × 0.75 = 10.8/s: 926 s.
        assert_eq!(full_refresh_interval(hour, 10_000, Some(16.0)), hour);
        assert_eq!(full_refresh_interval(hour, 50_000, Some(16.0)), Duration::from_millis(4_629_630));
        assert_eq!(
            full_refresh_interval(Duration::from_secs(60), 10_000, Some(16.0)),
            Duration::from_millis(925_926)
        );
        assert_eq!(full_refresh_interval(hour, 1_000_000, None), hour);
    }
}
