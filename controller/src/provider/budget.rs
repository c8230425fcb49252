//! The request budget: one pacer per Secrets Manager instance that every
//! HTTP attempt to it waits on.
//!
//! # Model
//!
//! Secrets Manager admits about 20 requests per second per instance. The
//! controller keeps to a share of that ([`BudgetConfig::rate`], by default
//! 80 % of 20/s) so other clients of the instance keep theirs. The budget is
//! a GCRA ("generic cell rate algorithm") with a burst of one: permit *n+1*
//! is granted no earlier than one emission interval (`1 / rate`, rounded up
//! to whole nanoseconds) after permit *n*, so no one-second window ever holds
//! more than `ceil(rate)` permits.
//!
//! [`IbmSecretsManager`](super::IbmSecretsManager) takes a permit before
//! **every** Secrets Manager HTTP attempt, its own retries and the resend
//! after a `401` included, and reports every `429` back. IAM token
//! exchanges go to another service and take no permit.
//!
//! Waiters are served by [`Priority`], not in the order they asked: a new
//! or edited ExternalSecret ([`Priority::Urgent`]) goes before refreshes a
//! change-detection scan or a failure asked for ([`Priority::Changed`]),
//! which go before the periodic full refreshes ([`Priority::Periodic`]);
//! first come, first served within a class. The reconcile sets the class
//! for its reads with [`with_priority`] (a `tokio` task-local), so the
//! client below needs no extra parameter. The pacing does not depend on
//! the order: a permit is reserved only when it is granted.
//!
//! A `429` means someone else is using the instance too: the rate halves
//! (at most once per second, so a volley of `429`s from requests already in
//! flight counts once; never below an eighth of the configured rate), every
//! pending permit waits until `Retry-After` has passed, and the rate then
//! climbs back linearly to the configured rate over
//! [`BudgetConfig::recovery`] (additive increase, multiplicative decrease).
//!
//! # Why not `governor`
//!
//! `governor`'s quota is fixed when the limiter is built, it cannot pause
//! everyone until a `Retry-After`, and its clock is not tokio's, so tests
//! could not run it under paused time. The algorithm is the same GCRA, in
//! [`Pacer`]: pure, over plain [`Duration`] timestamps, so the scheduler's
//! property tests simulate the very limiter the client uses.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The request budget's configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    /// The instance's rate limit, in requests per second.
    pub rate_limit: f64,
    /// The share of `rate_limit` this client uses, in `(0, 1]`.
    pub share: f64,
    /// How long the rate takes to climb back from its floor to
    /// [`BudgetConfig::rate`] after a `429`.
    pub recovery: Duration,
}

impl BudgetConfig {
    /// The documented Secrets Manager limit: 20 requests per second.
    pub const DEFAULT_RATE_LIMIT: f64 = 20.0;
    /// The default share of it: 80 %.
    pub const DEFAULT_SHARE: f64 = 0.8;

    /// `share` of `rate_limit`, recovering over 30 s.
    pub fn new(rate_limit: f64, share: f64) -> Self {
        Self { rate_limit, share, recovery: Duration::from_secs(30) }
    }

    /// The permits per second this client takes at most.
    pub fn rate(&self) -> f64 {
        self.rate_limit * self.share
    }
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self::new(Self::DEFAULT_RATE_LIMIT, Self::DEFAULT_SHARE)
    }
}

/// The time between two permits at `rate` (per second), rounded up to whole
/// nanoseconds so that rounding never admits one permit too many in a
/// window.
pub fn emission_interval(rate: f64) -> Duration {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "positive and bounded")]
    Duration::from_nanos((1e9 / rate).ceil() as u64)
}

/// The pure GCRA with additive-increase, multiplicative-decrease rate
/// control. Timestamps are durations since an origin the caller picks.
#[derive(Clone, Debug)]
pub struct Pacer {
    /// The configured rate, per second.
    target: f64,
    /// The lowest rate a `429` may lead to.
    floor: f64,
    /// Permits per second regained per second after a decrease.
    increase: f64,
    /// The current rate and when it was last brought up to date.
    rate: f64,
    rate_at: Duration,
    /// The theoretical arrival time: the earliest next permit.
    next: Duration,
    /// When the rate was last lowered.
    lowered_at: Option<Duration>,
}

impl Pacer {
    /// A pacer at `config.rate()`, with no permit granted yet.
    ///
    /// # Panics
    /// If the rate is not positive and finite.
    pub fn new(config: &BudgetConfig) -> Self {
        let target = config.rate();
        assert!(target.is_finite() && target > 0.0, "the request budget must be positive, not {target}");
        let floor = target / 8.0;
        Self {
            target,
            floor,
            increase: (target - floor) / config.recovery.as_secs_f64().max(0.001),
            rate: target,
            rate_at: Duration::ZERO,
            next: Duration::ZERO,
            lowered_at: None,
        }
    }

    /// The configured rate, per second.
    pub fn target_rate(&self) -> f64 {
        self.target
    }

    /// The rate at `now`, per second.
    pub fn rate(&mut self, now: Duration) -> f64 {
        if let Some(elapsed) = now.checked_sub(self.rate_at) {
            let gained = self.increase * elapsed.as_secs_f64();
            self.rate = (self.rate + gained).min(self.target);
            self.rate_at = now;
        }
        self.rate
    }

    /// The earliest time, not before `now`, at which the next permit may be
    /// granted. Reserves nothing.
    pub fn next_permit(&self, now: Duration) -> Duration {
        self.next.max(now)
    }

    /// Reserves the next permit for a request at `now`: the time it may be
    /// sent, [`Pacer::next_permit`]. [`Budget`] reserves only when that time
    /// has come, so a `429` in between cannot find a reservation to void.
    pub fn reserve(&mut self, now: Duration) -> Duration {
        let rate = self.rate(now);
        let slot = self.next_permit(now);
        self.next = slot + emission_interval(rate);
        slot
    }

    /// A `429` answered at `now`, asking to wait `retry_after` (if given):
    /// lowers the rate and pauses every permit until the wait is over.
    pub fn throttled(&mut self, now: Duration, retry_after: Option<Duration>) {
        let rate = self.rate(now);
        if self.lowered_at.is_none_or(|at| now >= at + Duration::from_secs(1)) {
            self.rate = (rate / 2.0).max(self.floor);
            self.lowered_at = Some(now);
        }
        let resume = now + retry_after.unwrap_or_else(|| emission_interval(self.rate));
        self.next = self.next.max(resume);
    }
}

/// Which requests go first when several wait for a permit: the highest
/// class, and within a class the one that asked first.
///
/// The class travels from the reconcile to the HTTP layer in a task-local
/// ([`with_priority`]); a request made outside of one is [`Priority::Changed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// A refresh nothing asked for: an object's slot in the full-refresh
    /// interval, or the sync of every object after a start when its status
    /// shows it already synced its generation.
    Periodic,
    /// A refresh something asked for: a change-detection scan (its list
    /// calls and the refreshes it triggers), or a retry after a failure.
    Changed,
    /// A new or edited ExternalSecret, or one whose Secret is missing:
    /// someone is waiting for it.
    Urgent,
}

tokio::task_local! {
    static PRIORITY: Priority;
}

/// Runs `future` with its Secrets Manager requests in class `priority`.
pub async fn with_priority<F: Future>(priority: Priority, future: F) -> F::Output {
    PRIORITY.scope(priority, future).await
}

/// The class of requests made by the current task: set by
/// [`with_priority`], [`Priority::Changed`] outside of it.
pub fn current_priority() -> Priority {
    PRIORITY.try_with(|priority| *priority).unwrap_or(Priority::Changed)
}

/// Where a waiter stands in the queue: its class first (highest first),
/// then its arrival.
type Ticket = (Reverse<Priority>, u64);

/// The pacer and the waiters for its permits.
#[derive(Debug)]
struct State {
    pacer: Pacer,
    /// Every waiter, best first, with what wakes it.
    waiters: BTreeMap<Ticket, Arc<Notify>>,
    /// The arrival number of the next waiter.
    arrivals: u64,
}

impl State {
    /// Wakes the first waiter, which alone watches the pacer.
    fn wake_first(&self) {
        if let Some(first) = self.waiters.values().next() {
            first.notify_one();
        }
    }
}

/// The shared budget of one Secrets Manager instance: [`Pacer`] on tokio's
/// clock, with a priority queue of waiters.
///
/// Only the first waiter (highest [`Priority`], then first come) watches
/// the pacer; it takes the permit when its time comes and wakes the next.
/// A waiter of a higher class that arrives meanwhile goes to the front and
/// gets the next permit. Permits are reserved only when granted, so the
/// pacing (burst 1, `429` halving, `Retry-After` pause, recovery) is the
/// pacer's alone, whatever the order.
#[derive(Debug)]
pub struct Budget {
    origin: Instant,
    state: Mutex<State>,
}

impl Budget {
    /// A budget of `config`.
    ///
    /// # Panics
    /// If the rate is not positive and finite (`IbmSecretsManager` refuses
    /// such a configuration before).
    pub fn new(config: &BudgetConfig) -> Self {
        let state = State { pacer: Pacer::new(config), waiters: BTreeMap::new(), arrivals: 0 };
        Self { origin: Instant::now(), state: Mutex::new(state) }
    }

    /// The configured rate, per second.
    pub fn target_rate(&self) -> f64 {
        self.state().pacer.target_rate()
    }

    /// The current rate, per second (lower than the target after a `429`).
    pub fn rate(&self) -> f64 {
        let now = self.now();
        self.state().pacer.rate(now)
    }

    /// Waits for a permit to send one request of class `priority`. A
    /// cancelled wait leaves the queue.
    pub async fn acquire(&self, priority: Priority) {
        let wake = Arc::new(Notify::new());
        let ticket = {
            let mut state = self.state();
            let ticket = (Reverse(priority), state.arrivals);
            state.arrivals += 1;
            // If this waiter goes first, the loop below sees so at once; the
            // one it overtook sees it when its sleep ends.
            state.waiters.insert(ticket, Arc::clone(&wake));
            ticket
        };
        let mut queued = Queued { budget: self, ticket: Some(ticket) };
        loop {
            let due = {
                let mut state = self.state();
                let now = self.now();
                let first = state.waiters.keys().next() == Some(&ticket);
                let due = first.then(|| state.pacer.next_permit(now));
                if due.is_some_and(|due| due <= now) {
                    state.pacer.reserve(now);
                    state.waiters.remove(&ticket);
                    queued.ticket = None;
                    state.wake_first();
                    return;
                }
                due
            };
            match due {
                Some(due) => {
                    // Woken early when overtaken or paused by a `429`.
                    tokio::select! {
                        () = tokio::time::sleep_until(self.origin + due) => {}
                        () = wake.notified() => {}
                    }
                }
                None => wake.notified().await,
            }
        }
    }

    /// Reports a `429`, with the wait its `Retry-After` asks for.
    pub fn throttled(&self, retry_after: Option<Duration>) {
        let now = self.now();
        let mut state = self.state();
        state.pacer.throttled(now, retry_after);
        state.wake_first();
        tracing::warn!(
            rate = state.pacer.rate(now),
            ?retry_after,
            "Secrets Manager throttled a request; lowering the request rate"
        );
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A waiter's place in the queue; dropping it (a cancelled wait) leaves
/// the queue and, if it was first, hands the watch to the next waiter.
struct Queued<'a> {
    budget: &'a Budget,
    ticket: Option<Ticket>,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let mut state = self.budget.state();
            state.waiters.remove(&ticket);
            state.wake_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn config(rate_limit: f64, share: f64) -> BudgetConfig {
        BudgetConfig::new(rate_limit, share)
    }

    #[test]
    fn permits_are_evenly_spaced() {
        let mut pacer = Pacer::new(&config(10.0, 0.8));
        let slots: Vec<Duration> = (0..17).map(|_| pacer.reserve(Duration::ZERO)).collect();
        assert_eq!(slots[0], Duration::ZERO);
        assert_eq!(slots[1], Duration::from_millis(125));
        assert_eq!(slots[16], 2 * SECOND);
        assert_eq!(slots.iter().filter(|slot| **slot < SECOND).count(), 8);
        // Idle time is not saved up: no burst after a pause.
        assert_eq!(pacer.next_permit(10 * SECOND), 10 * SECOND);
        assert_eq!(pacer.reserve(10 * SECOND), 10 * SECOND);
        assert_eq!(pacer.next_permit(10 * SECOND), 10 * SECOND + Duration::from_millis(125));
        assert_eq!(pacer.reserve(10 * SECOND), 10 * SECOND + Duration::from_millis(125));
    }

    #[test]
    fn rounding_never_admits_an_extra_permit() {
        let mut pacer = Pacer::new(&config(3.0, 1.0));
        let slots: Vec<Duration> = (0..4).map(|_| pacer.reserve(Duration::ZERO)).collect();
        assert!(slots[3] >= SECOND, "{slots:?}");
    }

    #[test]
    fn throttling_halves_pauses_and_recovers() {
        let mut pacer = Pacer::new(&config(20.0, 1.0));
        pacer.reserve(Duration::ZERO);
        pacer.throttled(Duration::ZERO, Some(2 * SECOND));
        assert!((pacer.rate(Duration::ZERO) - 10.0).abs() < 1e-9);
        assert_eq!(pacer.reserve(Duration::ZERO), 2 * SECOND, "paused until Retry-After");

        // A volley of 429s within a second lowers the rate once.
        pacer.throttled(Duration::from_millis(10), None);
        assert!((pacer.rate(Duration::from_millis(10)) - 10.0).abs() < 1e-2);
        for second in 2..8 {
            pacer.throttled(second * SECOND, None);
        }
        assert!((pacer.rate(7 * SECOND) - 2.5).abs() < 1e-9, "never below an eighth");
        // Linear recovery: (20 - 2.5) / 30 s per second.
        let halfway = pacer.rate(22 * SECOND);
        assert!((halfway - 11.25).abs() < 1e-6, "{halfway}");
        assert!((pacer.rate(60 * SECOND) - 20.0).abs() < 1e-9);
    }

    #[test]
    #[should_panic(expected = "must be positive")]
    fn zero_rate_is_refused() {
        let _ = Pacer::new(&config(20.0, 0.0));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_are_paced() {
        let budget = Arc::new(Budget::new(&config(10.0, 0.8)));
        let start = Instant::now();
        let tasks: Vec<_> = (0..24)
            .map(|_| {
                let budget = Arc::clone(&budget);
                tokio::spawn(async move {
                    budget.acquire(Priority::Changed).await;
                    Instant::now() - start
                })
            })
            .collect();
        let mut granted = Vec::new();
        for task in tasks {
            granted.push(task.await.unwrap());
        }
        granted.sort();
        for window in granted.windows(2) {
            assert!(window[1].saturating_sub(window[0]) >= Duration::from_millis(125), "{granted:?}");
        }
        assert_eq!(granted.last().copied(), Some(Duration::from_millis(125 * 23)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_pending_waiters() {
        let budget = Arc::new(Budget::new(&config(10.0, 1.0)));
        budget.acquire(Priority::Changed).await;
        let waiter = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move {
                budget.acquire(Priority::Changed).await;
                Instant::now()
            })
        };
        tokio::task::yield_now().await;
        let throttled_at = Instant::now();
        budget.throttled(Some(3 * SECOND));
        let granted = waiter.await.unwrap();
        assert!(granted >= throttled_at + 3 * SECOND, "the reservation made before the 429 waited");
        assert!((budget.rate() - 5.0).abs() < 1.0);
        assert!((budget.target_rate() - 10.0).abs() < 1e-9);
    }

    /// Spawns a waiter of `priority` that reports `label` and its grant
    /// time on `granted`, and lets it queue.
    async fn spawn_waiter(
        budget: &Arc<Budget>,
        priority: Priority,
        label: String,
        granted: &tokio::sync::mpsc::UnboundedSender<(String, Instant)>,
    ) -> tokio::task::JoinHandle<()> {
        let (budget, granted) = (Arc::clone(budget), granted.clone());
        let task = tokio::spawn(async move {
            budget.acquire(priority).await;
            let _ = granted.send((label, Instant::now()));
        });
        tokio::task::yield_now().await;
        task
    }

    #[tokio::test(start_paused = true)]
    async fn urgent_overtakes_queued_periodic_waiters() {
        let budget = Arc::new(Budget::new(&config(10.0, 1.0)));
        let (granted, mut grants) = tokio::sync::mpsc::unbounded_channel();
        budget.acquire(Priority::Periodic).await;
        for index in 0..20 {
            spawn_waiter(&budget, Priority::Periodic, format!("periodic-{index:02}"), &granted).await;
        }
        spawn_waiter(&budget, Priority::Changed, "changed".into(), &granted).await;
        spawn_waiter(&budget, Priority::Urgent, "urgent".into(), &granted).await;
        drop(granted);
        let mut order = Vec::new();
        while let Some((label, _)) = grants.recv().await {
            order.push(label);
        }
        let periodic: Vec<String> = (0..20).map(|index| format!("periodic-{index:02}")).collect();
        assert_eq!(order[..2], ["urgent", "changed"], "{order:?}");
        assert_eq!(order[2..], periodic[..], "first come, first served within a class");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_leaves_the_queue() {
        let budget = Arc::new(Budget::new(&config(10.0, 1.0)));
        let (granted, mut grants) = tokio::sync::mpsc::unbounded_channel();
        budget.acquire(Priority::Periodic).await;
        // The first in line, then one behind it, are cancelled while they
        // wait.
        let first = spawn_waiter(&budget, Priority::Urgent, "first".into(), &granted).await;
        let second = spawn_waiter(&budget, Priority::Periodic, "second".into(), &granted).await;
        let third = spawn_waiter(&budget, Priority::Periodic, "third".into(), &granted).await;
        first.abort();
        second.abort();
        drop(granted);
        let start = Instant::now();
        let (label, at) = grants.recv().await.expect("the third waiter is granted");
        assert_eq!(label, "third");
        assert_eq!(at - start, Duration::from_millis(100), "granted at the next permit");
        third.await.unwrap();
        assert!(grants.recv().await.is_none());
        assert!(budget.state().waiters.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn mixed_classes_stay_within_the_rate() {
        let budget = Arc::new(Budget::new(&config(10.0, 0.8)));
        let (granted, mut grants) = tokio::sync::mpsc::unbounded_channel();
        let classes = [Priority::Periodic, Priority::Changed, Priority::Urgent];
        let mut tasks = Vec::new();
        for index in 0..60u64 {
            let priority = classes[usize::try_from(index * 7 % 3).unwrap()];
            tasks.push(spawn_waiter(&budget, priority, format!("{priority:?}"), &granted).await);
            // Arrivals keep coming while earlier waiters are served.
            tokio::time::sleep(Duration::from_millis(index % 4 * 40)).await;
        }
        drop(granted);
        let mut times = Vec::new();
        while let Some((_, at)) = grants.recv().await {
            times.push(at);
        }
        assert_eq!(times.len(), 60);
        times.sort();
        for (last, at) in times.iter().enumerate() {
            let in_window = times[..=last].iter().filter(|earlier| **earlier + SECOND > *at).count();
            assert!(in_window <= 8, "{in_window} permits in the second before {at:?}");
        }
        for window in times.windows(2) {
            assert!(window[1] - window[0] >= Duration::from_millis(125), "{times:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_class_travels_in_a_task_local() {
        assert_eq!(current_priority(), Priority::Changed, "the default");
        let inner = with_priority(Priority::Urgent, async {
            tokio::task::yield_now().await;
            current_priority()
        })
        .await;
        assert_eq!(inner, Priority::Urgent);
        assert_eq!(with_priority(Priority::Periodic, async { current_priority() }).await, Priority::Periodic);
    }
}
