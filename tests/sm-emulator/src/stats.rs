//! Request accounting: admission decisions, answers by operation and status, token
//! exchanges by grant, a per-second histogram and the densest sliding second.
//!
//! [`Traffic`] owns the rate limiter too, so that admission and accounting see the same
//! arrival instant under one lock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::rate_limit::{RateLimiter, SlidingWindow};

/// Seconds the per-second histogram keeps (the most recent ones).
const HISTOGRAM_SECONDS: usize = 3600;

/// Counters since start or the last reset; the body of `GET /__admin/requests`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestStats {
    /// Secrets Manager requests that arrived (admitted plus throttled).
    pub total: u64,
    /// Secrets Manager requests admitted (answered with anything but `429`).
    pub admitted: u64,
    /// Secrets Manager requests answered `429`.
    pub throttled: u64,
    /// Answers by operation (`get_secret`, `list_secrets`, `iam_token`, …) and status code.
    pub by_operation: BTreeMap<String, BTreeMap<u16, u64>>,
    /// IAM token requests by grant (`apikey`, `cr_token`, or the unsupported grant sent).
    pub iam_token_exchanges: BTreeMap<String, u64>,
    /// Admitted and throttled requests per wall-clock second, oldest first (the last hour
    /// with traffic).
    pub per_second: Vec<SecondBucket>,
    /// Most requests admitted within any one-second window of arrival instants.
    pub max_admitted_in_any_1s_window: u64,
    /// Most requests that arrived (admitted or not) within any one-second window.
    #[serde(default)]
    pub max_arrived_in_any_1s_window: u64,
    /// Secret metadata entries returned by `list_secrets` pages, summed.
    #[serde(default)]
    pub listed_secrets: u64,
}

impl RequestStats {
    /// Answers to `operation` with `status`.
    pub fn count(&self, operation: &str, status: u16) -> u64 {
        self.by_operation.get(operation).and_then(|statuses| statuses.get(&status)).copied().unwrap_or(0)
    }

    /// Answers to `operation`, any status.
    pub fn operation_total(&self, operation: &str) -> u64 {
        self.by_operation.get(operation).map_or(0, |statuses| statuses.values().sum())
    }
}

/// Requests of one wall-clock second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondBucket {
    /// Unix time in seconds.
    pub second: u64,
    /// Requests admitted in that second.
    pub admitted: u64,
    /// Requests answered `429` in that second.
    pub throttled: u64,
}

/// The rate limiter and the counters, behind one lock.
#[derive(Debug)]
pub(crate) struct Traffic {
    limiter: RateLimiter,
    /// Admitted arrivals of the last second, for `max_admitted_in_any_1s_window`.
    recent: SlidingWindow,
    /// All arrivals of the last second, for `max_arrived_in_any_1s_window`.
    arrivals: SlidingWindow,
    stats: RequestStats,
    per_second: BTreeMap<u64, SecondBucket>,
}

impl Traffic {
    pub(crate) fn new(rate_limit: u32) -> Self {
        Self {
            limiter: RateLimiter::new(rate_limit),
            recent: SlidingWindow::new(Duration::from_secs(1)),
            arrivals: SlidingWindow::new(Duration::from_secs(1)),
            stats: RequestStats::default(),
            per_second: BTreeMap::new(),
        }
    }

    /// Decides on a request arriving now; `throttle` forces a `429` without using quota
    /// (an injected storm). Returns whether it is admitted.
    pub(crate) fn arrive(&mut self, throttle: bool) -> bool {
        let now = Instant::now();
        let admitted = !throttle && self.limiter.try_admit(now);
        let second = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
        if self.per_second.len() >= HISTOGRAM_SECONDS && !self.per_second.contains_key(&second) {
            self.per_second.pop_first();
        }
        let bucket =
            self.per_second.entry(second).or_insert(SecondBucket { second, ..SecondBucket::default() });
        self.stats.total += 1;
        let arrived = self.arrivals.count_at(now) as u64 + 1;
        self.arrivals.push(now);
        self.stats.max_arrived_in_any_1s_window = self.stats.max_arrived_in_any_1s_window.max(arrived);
        if admitted {
            bucket.admitted += 1;
            self.stats.admitted += 1;
            let in_window = self.recent.count_at(now) as u64 + 1;
            self.recent.push(now);
            self.stats.max_admitted_in_any_1s_window =
                self.stats.max_admitted_in_any_1s_window.max(in_window);
        } else {
            bucket.throttled += 1;
            self.stats.throttled += 1;
        }
        admitted
    }

    /// Records the answer to one request.
    pub(crate) fn answered(&mut self, operation: &str, status: u16) {
        *self.stats.by_operation.entry(operation.to_owned()).or_default().entry(status).or_default() += 1;
    }

    /// Records a `list_secrets` page of `secrets` entries.
    pub(crate) fn listed(&mut self, secrets: usize) {
        self.stats.listed_secrets += secrets as u64;
    }

    /// Records an IAM token request with `grant`.
    pub(crate) fn token_exchange(&mut self, grant: &str) {
        *self.stats.iam_token_exchanges.entry(grant.to_owned()).or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> RequestStats {
        RequestStats { per_second: self.per_second.values().copied().collect(), ..self.stats.clone() }
    }

    /// Clears the counters; the rate limiter keeps its window, so quota is not refilled.
    pub(crate) fn reset(&mut self) {
        self.stats = RequestStats::default();
        self.per_second.clear();
        self.recent = SlidingWindow::new(Duration::from_secs(1));
        self.arrivals = SlidingWindow::new(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_admissions_and_answers() {
        let mut traffic = Traffic::new(2);
        let admitted: Vec<bool> = (0..5).map(|_| traffic.arrive(false)).collect();
        assert_eq!(admitted, [true, true, false, false, false]);
        assert!(!traffic.arrive(true));
        traffic.answered("get_secret", 200);
        traffic.answered("get_secret", 429);
        traffic.token_exchange("apikey");
        traffic.listed(3);
        let stats = traffic.snapshot();
        assert_eq!(stats.listed_secrets, 3);
        assert_eq!((stats.total, stats.admitted, stats.throttled), (6, 2, 4));
        assert_eq!(stats.max_admitted_in_any_1s_window, 2);
        assert_eq!(stats.max_arrived_in_any_1s_window, 6);
        assert_eq!(stats.count("get_secret", 200), 1);
        assert_eq!(stats.operation_total("get_secret"), 2);
        assert_eq!(stats.iam_token_exchanges["apikey"], 1);
        let buckets: u64 = stats.per_second.iter().map(|b| b.admitted + b.throttled).sum();
        assert_eq!(buckets, 6);
        traffic.reset();
        assert_eq!(traffic.snapshot(), RequestStats::default());
    }
}
