//! Even spreading: every object's stable phase within the poll interval and
//! its next slot.
//!
//! The phase is a fraction of the interval taken from a 64-bit FNV-1a hash
//! of the object's uid, finished with MurmurHash3's `fmix64` so the high
//! bits (which pick the phase) depend on every byte: fixed across
//! processes, Rust versions and restarts (unlike `std`'s `DefaultHasher`),
//! and uniform over uids. Slots are counted from the Unix epoch, so two replicas, or
//! one replica before and after a restart, agree on them.

use std::time::Duration;

/// The phase of object `uid`: a fraction of the interval, as a 64-bit
/// fixed-point number (`phase / 2^64`).
pub fn phase(uid: &str) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut hash = uid.bytes().fold(OFFSET_BASIS, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME));
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// Where `phase` falls within `interval`.
pub fn offset(phase: u64, interval: Duration) -> Duration {
    let nanos = (u128::from(phase) * interval.as_nanos()) >> 64;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// How long from `now` (since the Unix epoch) until the first slot
/// `offset(phase) + k·interval` that lies at least half an interval ahead,
/// so a sync that ran a little early is not repeated at once.
pub fn until_next_slot(phase: u64, interval: Duration, now: Duration) -> Duration {
    let period = interval.as_nanos();
    if period == 0 {
        return Duration::ZERO;
    }
    let offset = offset(phase, interval).as_nanos();
    let earliest = now.as_nanos() + period / 2;
    let k = earliest.saturating_sub(offset).div_ceil(period);
    let slot = offset + k * period;
    Duration::from_nanos(u64::try_from(slot - now.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(30);

    #[test]
    fn phase_is_stable_and_spread() {
        assert_eq!(
            phase("3f1c1a52-0d7e-4b71-9a4e-1e0c4a9b7f10"),
            phase("3f1c1a52-0d7e-4b71-9a4e-1e0c4a9b7f10")
        );
        assert_ne!(phase("uid-0001"), phase("uid-0002"));
        // 1000 uids over 10 buckets: each holds roughly its share.
        let mut buckets = [0u32; 10];
        for i in 0..1000 {
            let offset = offset(phase(&format!("uid-{i:04}")), INTERVAL);
            buckets[usize::try_from(offset.as_secs() / 3).unwrap()] += 1;
        }
        assert!(buckets.iter().all(|count| (50..150).contains(count)), "{buckets:?}");
    }

    #[test]
    fn next_slot_is_half_to_one_and_a_half_intervals_away() {
        let base = Duration::from_secs(1_700_000_010);
        for step in 0..100u32 {
            let now = base + Duration::from_millis(u64::from(step) * 437);
            let phase = phase(&format!("uid-{step}"));
            let delay = until_next_slot(phase, INTERVAL, now);
            assert!(delay >= INTERVAL / 2 && delay < INTERVAL * 3 / 2, "{delay:?}");
            assert_eq!((now + delay).as_nanos() % INTERVAL.as_nanos(), offset(phase, INTERVAL).as_nanos());
            // At its slot, the next one is a whole interval later.
            assert_eq!(until_next_slot(phase, INTERVAL, now + delay), INTERVAL);
        }
        assert_eq!(until_next_slot(1, Duration::ZERO, base), Duration::ZERO);
    }
}
