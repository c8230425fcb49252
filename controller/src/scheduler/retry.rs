//! The retry delay after a failed sync.
//!
//! Failures back off exponentially from a minimum delay, doubling per
//! consecutive failure of the same object, capped at the (effective) poll
//! interval (a failing object is never polled less often than a healthy
//! one), with "equal jitter": the delay is uniformly drawn from `[d/2, d]`,
//! so objects that failed together (an outage) do not retry in lockstep.

use std::time::Duration;

/// The delay before retry number `failures` (1 for the first failure).
///
/// `jitter` is a number in `[0, 1)`, drawn by the caller (so this stays
/// pure); 0 gives the shortest delay, `d/2`.
pub fn retry_delay(failures: u32, min: Duration, cap: Duration, jitter: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(30);
    let full = min.saturating_mul(1 << exponent).min(cap).max(min.min(cap));
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// [`retry_delay`] with a random jitter.
pub fn jittered_retry_delay(failures: u32, min: Duration, cap: Duration) -> Duration {
    retry_delay(failures, min, cap, rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(500);
    const CAP: Duration = Duration::from_secs(10);

    #[test]
    fn doubles_then_caps() {
        let top = |failures| retry_delay(failures, MIN, CAP, 1.0);
        assert_eq!(top(1), MIN);
        assert_eq!(top(2), MIN * 2);
        assert_eq!(top(3), MIN * 4);
        assert_eq!(top(6), CAP);
        assert_eq!(top(u32::MAX), CAP);
    }

    #[test]
    fn jitter_stays_in_upper_half() {
        for failures in 1..40 {
            let low = retry_delay(failures, MIN, CAP, 0.0);
            let high = retry_delay(failures, MIN, CAP, 0.999);
            assert!(low <= high && high <= CAP, "{failures}: {low:?} {high:?}");
            assert!(low * 2 + Duration::from_nanos(1) >= retry_delay(failures, MIN, CAP, 1.0));
        }
    }

    #[test]
    fn cap_below_min_wins() {
        assert_eq!(retry_delay(1, CAP, MIN, 1.0), MIN);
    }

    #[test]
    fn random_delay_is_bounded() {
        for failures in [1, 3, 10] {
            let delay = jittered_retry_delay(failures, MIN, CAP);
            assert!(delay >= MIN / 2 && delay <= CAP);
        }
    }
}
