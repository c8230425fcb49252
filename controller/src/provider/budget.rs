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

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

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
    /// Bumped by every `429`; reservations made earlier are void.
    epoch: u64,
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
            epoch: 0,
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

    /// Reserves the next permit for a request at `now`: the time it may be
    /// sent (not before `now`) and the epoch the reservation belongs to.
    pub fn reserve(&mut self, now: Duration) -> (Duration, u64) {
        let rate = self.rate(now);
        let slot = self.next.max(now);
        self.next = slot + emission_interval(rate);
        (slot, self.epoch)
    }

    /// Whether a reservation of `epoch` still holds (no `429` since).
    pub fn is_current(&self, epoch: u64) -> bool {
        self.epoch == epoch
    }

    /// A `429` answered at `now`, asking to wait `retry_after` (if given):
    /// lowers the rate, pauses every permit until the wait is over and voids
    /// the reservations made so far.
    pub fn throttled(&mut self, now: Duration, retry_after: Option<Duration>) {
        let rate = self.rate(now);
        if self.lowered_at.is_none_or(|at| now >= at + Duration::from_secs(1)) {
            self.rate = (rate / 2.0).max(self.floor);
            self.lowered_at = Some(now);
        }
        let resume = now + retry_after.unwrap_or_else(|| emission_interval(self.rate));
        self.next = resume;
        self.epoch += 1;
    }
}

/// The shared budget of one Secrets Manager instance: [`Pacer`] on tokio's
/// clock.
#[derive(Debug)]
pub struct Budget {
    origin: Instant,
    pacer: Mutex<Pacer>,
}

impl Budget {
    /// A budget of `config`.
    ///
    /// # Panics
    /// If the rate is not positive and finite (`IbmSecretsManager` refuses
    /// such a configuration before).
    pub fn new(config: &BudgetConfig) -> Self {
        Self { origin: Instant::now(), pacer: Mutex::new(Pacer::new(config)) }
    }

    /// The configured rate, per second.
    pub fn target_rate(&self) -> f64 {
        self.pacer().target_rate()
    }

    /// The current rate, per second (lower than the target after a `429`).
    pub fn rate(&self) -> f64 {
        let now = self.now();
        self.pacer().rate(now)
    }

    /// Waits for a permit to send one request.
    pub async fn acquire(&self) {
        loop {
            let (slot, epoch) = {
                let now = self.now();
                self.pacer().reserve(now)
            };
            tokio::time::sleep_until(self.origin + slot).await;
            if self.pacer().is_current(epoch) {
                return;
            }
        }
    }

    /// Reports a `429`, with the wait its `Retry-After` asks for.
    pub fn throttled(&self, retry_after: Option<Duration>) {
        let now = self.now();
        let mut pacer = self.pacer();
        pacer.throttled(now, retry_after);
        tracing::warn!(
            rate = pacer.rate(now),
            ?retry_after,
            "Secrets Manager throttled a request; lowering the request rate"
        );
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn pacer(&self) -> std::sync::MutexGuard<'_, Pacer> {
        self.pacer.lock().unwrap_or_else(PoisonError::into_inner)
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
        let slots: Vec<Duration> = (0..17).map(|_| pacer.reserve(Duration::ZERO).0).collect();
        assert_eq!(slots[0], Duration::ZERO);
        assert_eq!(slots[1], Duration::from_millis(125));
        assert_eq!(slots[16], 2 * SECOND);
        assert_eq!(slots.iter().filter(|slot| **slot < SECOND).count(), 8);
        // Idle time is not saved up: no burst after a pause.
        let (later, _) = pacer.reserve(10 * SECOND);
        assert_eq!(later, 10 * SECOND);
        assert_eq!(pacer.reserve(10 * SECOND).0, 10 * SECOND + Duration::from_millis(125));
    }

    #[test]
    fn rounding_never_admits_an_extra_permit() {
        let mut pacer = Pacer::new(&config(3.0, 1.0));
        let slots: Vec<Duration> = (0..4).map(|_| pacer.reserve(Duration::ZERO).0).collect();
        assert!(slots[3] >= SECOND, "{slots:?}");
    }

    #[test]
    fn throttling_halves_pauses_and_recovers() {
        let mut pacer = Pacer::new(&config(20.0, 1.0));
        let (_, epoch) = pacer.reserve(Duration::ZERO);
        pacer.throttled(Duration::ZERO, Some(2 * SECOND));
        assert!(!pacer.is_current(epoch), "reservations before the 429 are void");
        assert!((pacer.rate(Duration::ZERO) - 10.0).abs() < 1e-9);
        assert_eq!(pacer.reserve(Duration::ZERO).0, 2 * SECOND, "paused until Retry-After");

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
                    budget.acquire().await;
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
        budget.acquire().await;
        let waiter = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move {
                budget.acquire().await;
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
}
