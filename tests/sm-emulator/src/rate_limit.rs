//! The per-instance request limit: at most N admitted requests in any sliding second.
//!
//! Every Secrets Manager request is admitted or refused when it arrives. An admitted
//! request consumes quota whatever it is answered (a `404` or an injected `503` too), so
//! that the guarantee tests check holds exactly: in any closed one-second window of
//! arrival instants, at most N requests got an answer other than `429`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Arrival instants within the last `span` (inclusive).
#[derive(Debug)]
pub(crate) struct SlidingWindow {
    span: Duration,
    arrivals: VecDeque<Instant>,
}

impl SlidingWindow {
    pub(crate) fn new(span: Duration) -> Self {
        Self { span, arrivals: VecDeque::new() }
    }

    /// How many recorded arrivals lie in `[now - span, now]`; `now` must not go backwards.
    pub(crate) fn count_at(&mut self, now: Instant) -> usize {
        while self.arrivals.front().is_some_and(|first| now.duration_since(*first) > self.span) {
            self.arrivals.pop_front();
        }
        self.arrivals.len()
    }

    /// Records an arrival at `now`.
    pub(crate) fn push(&mut self, now: Instant) {
        self.arrivals.push_back(now);
    }
}

/// Admits at most `limit` requests in any one-second window; `0` admits everything.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: u32,
    window: SlidingWindow,
}

impl RateLimiter {
    pub(crate) fn new(limit: u32) -> Self {
        Self { limit, window: SlidingWindow::new(Duration::from_secs(1)) }
    }

    /// Admits a request arriving at `now` if fewer than `limit` were admitted in the
    /// second up to and including `now`.
    pub(crate) fn try_admit(&mut self, now: Instant) -> bool {
        if self.limit == 0 {
            return true;
        }
        let admitted = self.window.count_at(now) < self.limit as usize;
        if admitted {
            self.window.push(now);
        }
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_limit_per_sliding_second() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(3);
        let at = |ms| start + Duration::from_millis(ms);
        assert!(limiter.try_admit(at(0)));
        assert!(limiter.try_admit(at(10)));
        assert!(limiter.try_admit(at(500)));
        assert!(!limiter.try_admit(at(900)));
        // Exactly one second after the first admission it still counts (closed window).
        assert!(!limiter.try_admit(at(1000)));
        assert!(limiter.try_admit(at(1001)));
        assert!(!limiter.try_admit(at(1010)));
        assert!(limiter.try_admit(at(1011)));
    }

    #[test]
    fn zero_means_unlimited() {
        let mut limiter = RateLimiter::new(0);
        let now = Instant::now();
        assert!((0..10_000).all(|_| limiter.try_admit(now)));
    }
}
