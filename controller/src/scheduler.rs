//! When each ExternalSecret is synced: the request cost of a refresh, the
//! effective poll interval that fits all refreshes into the Secrets Manager
//! budget, the slot of each object within that interval, and the retry
//! delay after a failure. Pure: no Kubernetes or HTTP types, no clock; the
//! caller passes the time in.
//!
//! # Model
//!
//! - **Cost** ([`refresh_cost`]): one refresh of an ExternalSecret costs one
//!   Secrets Manager request per distinct remote secret its spec reads (the
//!   fetch plan already reads a shared remote secret once).
//! - **Effective interval** ([`effective_interval`]): the configured poll
//!   interval, stretched to `total cost / (0.9 × budget rate)` when
//!   refreshing every object once per configured interval would exceed the
//!   budget (the 10 % left over drains backlogs; see
//!   [`cost::PLANNED_UTILIZATION`]).
//!   [`Schedule`] keeps the per-object costs and recomputes it as objects
//!   come, change and go.
//! - **Even spreading** ([`slots`]): each object owns a stable phase within
//!   the interval, derived from its uid by a fixed hash, and after a
//!   successful sync it is requeued to its next slot `phase + k·interval`
//!   (counted from the Unix epoch). Refreshes thus spread uniformly over the
//!   interval, and a restarted controller returns every object to the same
//!   slot rather than syncing all of them in lockstep.
//! - **Change detection** ([`scan_period`], [`full_refresh_interval`]):
//!   the metadata scan runs every quarter of the configured interval, or
//!   less often when its list calls would take more than
//!   [`cost::SCAN_SHARE`] of the budget; the full refreshes are planned in
//!   the rest. [`Cadence`] holds the resulting intervals.
//! - **Retries** ([`retry`]): failures back off exponentially with jitter,
//!   capped at the effective interval.
//!
//! New and edited objects are not phase-aligned: the watch triggers them at
//! once and the requeue to the slot starts after that first sync.

pub mod cost;
pub mod retry;
pub mod slots;

use std::collections::HashMap;
use std::time::Duration;

pub use cost::{effective_interval, full_refresh_interval, refresh_cost, scan_calls, scan_period};
pub use retry::{jittered_retry_delay, retry_delay};

/// The intervals the schedule leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cadence {
    /// The effective poll interval: the configured one, stretched so that
    /// refreshing every object once fits 90 % of the budget. Without change
    /// detection every object is refreshed this often; it also caps the
    /// retry delay.
    pub poll: Duration,
    /// How often every object is refreshed in full: the poll interval, or
    /// with change detection the full-refresh interval (never shorter than
    /// the poll interval or the scan period), stretched so that the
    /// refreshes fit 90 % of what the scan leaves of the budget.
    pub refresh: Duration,
    /// With change detection, how often secret metadata is scanned.
    pub scan: Option<Duration>,
}

/// The costs of every known ExternalSecret and the intervals they lead to.
#[derive(Clone, Debug)]
pub struct Schedule {
    configured: Duration,
    rate: Option<f64>,
    /// With change detection, the configured full-refresh interval.
    full_refresh: Option<Duration>,
    /// The list calls of the last scan.
    scan_calls: u64,
    /// By uid: the watch scope the object came from, and its cost.
    costs: HashMap<String, (usize, u32)>,
    total: u64,
    cadence: Cadence,
    reported: Cadence,
}

impl Schedule {
    /// An empty schedule polling every `configured` interval, within `rate`
    /// requests per second (`None`: unlimited), without change detection.
    pub fn new(configured: Duration, rate: Option<f64>) -> Self {
        let cadence = Cadence { poll: configured, refresh: configured, scan: None };
        Self {
            configured,
            rate,
            full_refresh: None,
            scan_calls: 1,
            costs: HashMap::new(),
            total: 0,
            cadence,
            reported: cadence,
        }
    }

    /// This schedule with change detection: secret metadata is scanned
    /// (see [`scan_period`]) and every object is refreshed in full at least
    /// every `full_refresh` (see [`full_refresh_interval`]).
    #[must_use]
    pub fn with_change_detection(mut self, full_refresh: Duration) -> Self {
        self.full_refresh = Some(full_refresh);
        self.update();
        self.reported = self.cadence;
        self
    }

    /// The effective poll interval (see [`Cadence::poll`]).
    pub fn interval(&self) -> Duration {
        self.cadence.poll
    }

    /// The intervals in effect.
    pub fn cadence(&self) -> Cadence {
        self.cadence
    }

    /// The summed cost of one refresh of every known object.
    pub fn total_cost(&self) -> u64 {
        self.total
    }

    /// Records the cost of object `uid`, seen in watch scope `scope`.
    pub fn set_cost(&mut self, scope: usize, uid: &str, cost: u32) {
        let previous = self.costs.insert(uid.to_owned(), (scope, cost)).map_or(0, |(_, cost)| cost);
        self.total = self.total - u64::from(previous) + u64::from(cost);
        self.update();
    }

    /// Records the list calls the last scan made (see [`scan_calls`]).
    pub fn set_scan_calls(&mut self, calls: u64) {
        self.scan_calls = calls;
        self.update();
    }

    /// Forgets object `uid`.
    pub fn remove(&mut self, uid: &str) {
        if let Some((_, cost)) = self.costs.remove(uid) {
            self.total -= u64::from(cost);
            self.update();
        }
    }

    /// Forgets the objects of `scope` that `keep` refuses (after a relist).
    pub fn retain(&mut self, scope: usize, keep: impl Fn(&str) -> bool) {
        self.costs.retain(|uid, (of, _)| *of != scope || keep(uid));
        self.total = self.costs.values().map(|(_, cost)| u64::from(*cost)).sum();
        self.update();
    }

    /// Forgets every object.
    pub fn clear(&mut self) {
        self.costs.clear();
        self.total = 0;
        self.update();
    }

    /// The new intervals, once per change.
    pub fn take_change(&mut self) -> Option<Cadence> {
        (self.cadence != self.reported).then(|| {
            self.reported = self.cadence;
            self.cadence
        })
    }

    /// When object `uid`, whose refresh started at `started` (time since
    /// the Unix epoch), is refreshed in full next: its first slot in the
    /// [refresh interval](Cadence::refresh) at least half an interval after
    /// `started`. Counting from the start, not the end, keeps a refresh
    /// that waited for permits on its slot.
    pub fn next_refresh(&self, uid: &str, started: Duration) -> Duration {
        started + slots::until_next_slot(slots::phase(uid), self.cadence.refresh, started)
    }

    fn update(&mut self) {
        let poll = effective_interval(self.configured, self.total, self.rate);
        self.cadence = match self.full_refresh {
            None => Cadence { poll, refresh: poll, scan: None },
            Some(full) => {
                // A safety net no more often than the poll, or than the
                // scans it backs up.
                let scan = scan_period(self.configured, self.scan_calls, self.rate);
                let at_least = full.max(self.configured).max(scan);
                Cadence {
                    poll,
                    refresh: full_refresh_interval(at_least, self.total, self.rate),
                    scan: Some(scan),
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const MILLI: Duration = Duration::from_millis(1);

    #[test]
    fn interval_follows_objects_coming_and_going() {
        let mut schedule = Schedule::new(10 * SECOND, Some(8.0));
        for i in 0..71 {
            schedule.set_cost(0, &format!("uid-{i}"), 1);
        }
        assert_eq!((schedule.total_cost(), schedule.interval()), (71, 10 * SECOND));
        assert_eq!(schedule.take_change(), None);
        for i in 0..71 {
            schedule.set_cost(1, &format!("other-{i}"), 2);
        }
        // 213 requests at 7.2 per second.
        assert_eq!(schedule.total_cost(), 213);
        assert_eq!(schedule.take_change().map(|cadence| cadence.poll), Some(Duration::from_millis(29_584)));
        assert_eq!(schedule.take_change(), None, "reported once");
        schedule.set_cost(1, "other-0", 10);
        assert_eq!(schedule.total_cost(), 221);
        schedule.remove("other-0");
        schedule.remove("unknown");
        assert_eq!(schedule.total_cost(), 211);
        schedule.retain(1, |uid| uid == "other-1");
        assert_eq!(schedule.total_cost(), 73, "scope 0 kept, scope 1 pruned");
        assert_eq!(
            schedule.take_change().map(|cadence| cadence.refresh),
            Some(Duration::from_millis(10_139))
        );
        schedule.clear();
        assert_eq!(schedule.total_cost(), 0);
    }

    #[test]
    fn unlimited_budget_keeps_the_configured_interval() {
        let mut schedule = Schedule::new(SECOND, None);
        schedule.set_cost(0, "a", 1000);
        assert_eq!(schedule.interval(), SECOND);
    }

    #[test]
    fn next_refresh_lands_on_the_phase() {
        let mut schedule = Schedule::new(10 * SECOND, Some(1.0));
        schedule.set_cost(0, "a", 5);
        let now = Duration::from_secs(1_700_000_000);
        let delay = schedule.next_refresh("a", now).saturating_sub(now);
        let phase = slots::phase("a");
        assert_eq!(
            (now + delay).as_nanos() % (10 * SECOND).as_nanos(),
            slots::offset(phase, 10 * SECOND).as_nanos()
        );
        assert!(delay >= 5 * SECOND && delay < 15 * SECOND, "{delay:?}");
    }

    #[test]
    fn change_detection_scans_and_refreshes_within_the_budget() {
        let hour = 3600 * SECOND;
        let mut schedule = Schedule::new(10 * SECOND, Some(16.0)).with_change_detection(hour);
        let before = schedule.cadence();
        assert_eq!(before, Cadence { poll: 10 * SECOND, refresh: hour, scan: Some(2500 * MILLI) });
        assert_eq!(schedule.take_change(), None, "the initial cadence is not a change");
        for i in 0..10_000 {
            schedule.set_cost(0, &format!("uid-{i}"), 1);
        }
        // The poll interval (the retry cap) stretches; the full refresh
        // fits in an hour; 10 list calls fit a quarter of the budget every
        // 2.5 s.
        schedule.set_scan_calls(scan_calls(10_000));
        let cadence = schedule.take_change().expect("the poll interval changed");
        assert_eq!(cadence, Cadence { poll: 694_445 * MILLI, refresh: hour, scan: Some(2500 * MILLI) });
        schedule.set_scan_calls(scan_calls(40_000));
        assert_eq!(schedule.take_change().and_then(|cadence| cadence.scan), Some(10 * SECOND));
        for i in 0..50_000 {
            schedule.set_cost(1, &format!("more-{i}"), 1);
        }
        // 60,000 requests at 16/s × 0.9 × 0.75.
        assert_eq!(schedule.cadence().refresh, 5_555_556 * MILLI);
        let now = Duration::from_secs(1_700_000_000);
        let delay = schedule.next_refresh("uid-1", now).saturating_sub(now);
        assert!(delay >= schedule.cadence().refresh / 2, "slots follow the refresh interval: {delay:?}");
    }

    #[test]
    fn a_short_full_refresh_is_never_shorter_than_the_poll_or_the_scan() {
        let schedule = Schedule::new(10 * SECOND, None).with_change_detection(SECOND);
        assert_eq!(schedule.cadence().refresh, 10 * SECOND);
        let mut schedule = Schedule::new(10 * SECOND, Some(4.0)).with_change_detection(SECOND);
        schedule.set_scan_calls(20);
        assert_eq!(schedule.cadence().scan, Some(20 * SECOND));
        assert_eq!(schedule.cadence().refresh, 20 * SECOND);
    }
}
