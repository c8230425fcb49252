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

pub use cost::{effective_interval, refresh_cost};
pub use retry::{jittered_retry_delay, retry_delay};

/// The costs of every known ExternalSecret and the effective interval they
/// lead to.
#[derive(Clone, Debug)]
pub struct Schedule {
    configured: Duration,
    rate: Option<f64>,
    /// By uid: the watch scope the object came from, and its cost.
    costs: HashMap<String, (usize, u32)>,
    total: u64,
    interval: Duration,
    reported: Duration,
}

impl Schedule {
    /// An empty schedule polling every `configured` interval, within `rate`
    /// requests per second (`None`: unlimited).
    pub fn new(configured: Duration, rate: Option<f64>) -> Self {
        Self { configured, rate, costs: HashMap::new(), total: 0, interval: configured, reported: configured }
    }

    /// The effective poll interval.
    pub fn interval(&self) -> Duration {
        self.interval
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

    /// The new effective interval, once per change.
    pub fn take_change(&mut self) -> Option<Duration> {
        (self.interval != self.reported).then(|| {
            self.reported = self.interval;
            self.interval
        })
    }

    /// When object `uid`, whose refresh started at `started` (time since
    /// the Unix epoch), is refreshed next: its first slot at least half an
    /// interval after `started`. Counting from the start, not the end, keeps
    /// a refresh that waited for permits on its slot.
    pub fn next_refresh(&self, uid: &str, started: Duration) -> Duration {
        started + slots::until_next_slot(slots::phase(uid), self.interval, started)
    }

    fn update(&mut self) {
        self.interval = effective_interval(self.configured, self.total, self.rate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

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
        assert_eq!(schedule.take_change(), Some(Duration::from_millis(29_584)));
        assert_eq!(schedule.take_change(), None, "reported once");
        schedule.set_cost(1, "other-0", 10);
        assert_eq!(schedule.total_cost(), 221);
        schedule.remove("other-0");
        schedule.remove("unknown");
        assert_eq!(schedule.total_cost(), 211);
        schedule.retain(1, |uid| uid == "other-1");
        assert_eq!(schedule.total_cost(), 73, "scope 0 kept, scope 1 pruned");
        assert_eq!(schedule.take_change(), Some(Duration::from_millis(10_139)));
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
}
