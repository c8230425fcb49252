//! Property tests of the schedule and the request budget together.
//!
//! A simulation drives the controller's own [`Schedule`] and [`Pacer`]:
//! ExternalSecrets with random costs arrive and leave at random times, each
//! is synced at once when it arrives and then at the slots the schedule
//! gives it, and every refresh takes one permit per request from the
//! budget. For random object sets, costs, quotas, shares and configured
//! intervals:
//!
//! - no one-second window ever holds more permits than the quota;
//! - a new object is synced when it arrives;
//! - once arrivals and removals have settled, every object is refreshed
//!   exactly once per effective interval, on its slot, and every refresh
//!   gets all its permits before the object's next refresh is due.
//!
//! With change detection, a scan of random size also takes its permits
//! every scan period, and the same holds for the full refreshes: the scan
//! fits its share of the budget and leaves the rest to them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use controller::provider::budget::{BudgetConfig, Pacer};
use controller::scheduler::Schedule;
use proptest::prelude::*;

/// The wall clock at the start of the simulation, since the Unix epoch.
const ORIGIN: Duration = Duration::from_secs(1_700_000_000);
const SECOND: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
struct Object {
    uid: String,
    cost: u32,
    arrives: Duration,
    leaves: Option<Duration>,
}

fn objects() -> impl Strategy<Value = Vec<Object>> {
    prop::collection::vec((any::<u64>(), 1u32..=4, 0u64..20_000, prop::option::of(1u64..40_000)), 1..50)
        .prop_map(|specs| {
            specs
                .into_iter()
                .enumerate()
                .map(|(index, (seed, cost, arrives, stays))| Object {
                    uid: format!("{seed:016x}-{index}"),
                    cost,
                    arrives: Duration::from_millis(arrives),
                    leaves: stays.map(|stays| Duration::from_millis(arrives + stays)),
                })
                .collect()
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Happening {
    Leave(usize),
    Arrive(usize),
    Refresh(usize),
    Scan,
}

/// One refresh: when it started and when its last permit was granted.
#[derive(Clone, Copy, Debug)]
struct Refresh {
    object: usize,
    started: Duration,
    done: Duration,
}

impl Refresh {
    /// How long the refresh waited for its last permit.
    fn took(&self) -> Duration {
        self.done.saturating_sub(self.started)
    }
}

struct Outcome {
    permits: Vec<Duration>,
    refreshes: Vec<Refresh>,
    /// The full refresh interval after the last arrival or removal.
    interval: Duration,
    /// When the steady state is checked from.
    settled: Duration,
    alive: Vec<bool>,
}

/// With change detection: the full refresh interval, and the list calls of
/// every scan.
type ChangeDetection = Option<(Duration, u64)>;

fn simulate(
    objects: &[Object],
    budget: &BudgetConfig,
    configured: Duration,
    change: ChangeDetection,
) -> Outcome {
    let mut schedule = Schedule::new(configured, Some(budget.rate()));
    let mut pacer = Pacer::new(budget);
    let mut queue = BinaryHeap::new();
    if let Some((full_refresh, scan_calls)) = change {
        schedule = schedule.with_change_detection(full_refresh);
        schedule.set_scan_calls(scan_calls);
        queue.push(Reverse((schedule.cadence().scan.unwrap(), Happening::Scan)));
    }
    for (index, object) in objects.iter().enumerate() {
        queue.push(Reverse((object.arrives, Happening::Arrive(index))));
        if let Some(leaves) = object.leaves {
            queue.push(Reverse((leaves, Happening::Leave(index))));
        }
    }
    let last_change = objects.iter().map(|o| o.leaves.unwrap_or(o.arrives).max(o.arrives)).max().unwrap();
    let mut alive = vec![false; objects.len()];
    let mut permits = Vec::new();
    let mut refreshes = Vec::new();
    let mut end = None;
    while let Some(Reverse((now, happening))) = queue.pop() {
        if now > last_change && end.is_none() {
            // The interval is final now; run long enough for backlogs from
            // the arrivals to drain, then check a few more intervals.
            end = Some(now + schedule.cadence().refresh * 40);
        }
        if end.is_some_and(|end| now > end) {
            break;
        }
        match happening {
            Happening::Arrive(index) => {
                alive[index] = true;
                schedule.set_cost(0, &objects[index].uid, objects[index].cost);
                queue.push(Reverse((now, Happening::Refresh(index))));
            }
            Happening::Leave(index) => {
                alive[index] = false;
                schedule.remove(&objects[index].uid);
            }
            Happening::Refresh(index) if alive[index] => {
                let mut done = now;
                for _ in 0..objects[index].cost {
                    let slot = pacer.reserve(now);
                    permits.push(slot);
                    done = slot;
                }
                refreshes.push(Refresh { object: index, started: now, done });
                let next = schedule.next_refresh(&objects[index].uid, ORIGIN + now).saturating_sub(ORIGIN);
                queue.push(Reverse((next, Happening::Refresh(index))));
            }
            Happening::Refresh(_) => {}
            Happening::Scan => {
                // The next scan waits one period after this one's last
                // permit.
                let mut done = now;
                for _ in 0..change.map_or(0, |(_, calls)| calls) {
                    done = pacer.reserve(now);
                    permits.push(done);
                }
                queue.push(Reverse((done + schedule.cadence().scan.unwrap(), Happening::Scan)));
            }
        }
    }
    let interval = schedule.cadence().refresh;
    Outcome { permits, refreshes, interval, settled: last_change + interval * 30, alive }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn permits_fit_the_quota_and_every_object_is_refreshed_each_interval(
        objects in objects(),
        quota in 2u32..=20,
        share in 0.5f64..=1.0,
        configured_ms in 500u64..=10_000,
    ) {
        let budget = BudgetConfig::new(f64::from(quota), share);
        let outcome = simulate(&objects, &budget, Duration::from_millis(configured_ms), None);
        check(&objects, quota, &outcome)?;
    }

    #[test]
    fn with_change_detection_scans_and_full_refreshes_fit_together(
        objects in objects(),
        quota in 2u32..=20,
        share in 0.5f64..=1.0,
        configured_ms in 500u64..=10_000,
        full_refresh_factor in 1u32..=8,
        scan_calls in 1u64..=20,
    ) {
        let budget = BudgetConfig::new(f64::from(quota), share);
        let configured = Duration::from_millis(configured_ms);
        let change = Some((configured * full_refresh_factor, scan_calls));
        let outcome = simulate(&objects, &budget, configured, change);
        check(&objects, quota, &outcome)?;
    }
}

/// The properties of the module documentation.
fn check(objects: &[Object], quota: u32, outcome: &Outcome) -> Result<(), TestCaseError> {
    let mut permits = outcome.permits.clone();
    permits.sort();
    let mut first = 0;
    for (last, at) in permits.iter().enumerate() {
        while permits[first] + SECOND <= *at {
            first += 1;
        }
        let in_window = last - first + 1;
        prop_assert!(in_window <= quota as usize, "{in_window} permits in the second before {at:?}");
    }

    for (index, object) in objects.iter().enumerate() {
        let first_sync = outcome.refreshes.iter().find(|refresh| refresh.object == index);
        if object.leaves.is_none_or(|leaves| leaves > object.arrives) {
            prop_assert_eq!(
                first_sync.map(|refresh| refresh.started),
                Some(object.arrives),
                "synced on arrival"
            );
        }
        if !outcome.alive[index] {
            continue;
        }
        let steady: Vec<Refresh> = outcome
            .refreshes
            .iter()
            .filter(|refresh| refresh.object == index && refresh.started >= outcome.settled)
            .copied()
            .collect();
        prop_assert!(steady.len() >= 5, "object {index} refreshed {} times after settling", steady.len());
        for pair in steady.windows(2) {
            prop_assert_eq!(
                pair[1].started.saturating_sub(pair[0].started),
                outcome.interval,
                "once per interval, on the slot"
            );
        }
        for refresh in &steady {
            prop_assert!(
                refresh.took() < outcome.interval,
                "object {index}: permits took {:?} of a {:?} interval",
                refresh.took(),
                outcome.interval
            );
        }
    }
    Ok(())
}
