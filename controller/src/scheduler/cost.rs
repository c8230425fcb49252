//! The cost model: Secrets Manager requests per refresh, and the interval
//! that fits every refresh into the request budget.

use std::time::Duration;

use crate::materialize::RemoteRef;
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

/// The poll interval that refreshes every object once within `rate`
/// requests per second: `configured`, or the time the budget needs for
/// `total_cost` permits at [`PLANNED_UTILIZATION`] of `rate` when that is
/// longer (rounded up to whole milliseconds). `None` means no budget.
pub fn effective_interval(configured: Duration, total_cost: u64, rate: Option<f64>) -> Duration {
    let Some(rate) = rate.filter(|rate| *rate > 0.0) else { return configured };
    let per_request = emission_interval(rate * PLANNED_UTILIZATION);
    let needed = per_request.saturating_mul(u32::try_from(total_cost).unwrap_or(u32::MAX));
    let millis = needed.as_nanos().div_ceil(1_000_000);
    configured.max(Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX)))
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
}
