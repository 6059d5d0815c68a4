//! The Redis guard (SPEC §8): a breaker around Redis itself, shared by every actor of a
//! node. After `TRIP_AFTER` consecutive connection failures or timeouts it opens: calls
//! fail at once (`StoreError::Unavailable`) for `COOLDOWN`, so a slow or paused Redis
//! costs requests nothing and each actor serves its fallback. Then one call at a time is
//! let through as a probe; the first success closes the guard.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Consecutive failures (errors of the connection, or timeouts) that open the guard.
pub const TRIP_AFTER: u32 = 3;
/// How long the guard stays open before a probe.
pub const COOLDOWN: Duration = Duration::from_secs(1);

/// Lock-free guard state.
#[derive(Debug, Default)]
pub struct RedisGuard {
    failures: AtomicU32,
    /// 0 = closed; otherwise calls before this time (Unix ms) are refused.
    open_until_ms: AtomicU64,
}

impl RedisGuard {
    /// Whether a call may go to Redis now. While open, lets one probe through per
    /// cooldown once the cooldown has passed.
    pub fn admit(&self, now_ms: u64) -> bool {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        if now_ms < until {
            return false;
        }
        let next = now_ms + COOLDOWN.as_millis() as u64;
        self.open_until_ms.compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Records a call Redis answered. Returns whether this closed the guard.
    pub fn success(&self) -> bool {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        self.open_until_ms.load(Ordering::Acquire) != 0 && self.open_until_ms.swap(0, Ordering::AcqRel) != 0
    }

    /// Records a lost connection or a timeout. Returns whether this opened the guard.
    pub fn failure(&self, now_ms: u64) -> bool {
        let n = self.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let until = now_ms + COOLDOWN.as_millis() as u64;
        if self.open_until_ms.load(Ordering::Acquire) != 0 {
            // A failed probe: stay open for another cooldown.
            self.open_until_ms.store(until, Ordering::Release);
            return false;
        }
        n >= TRIP_AFTER && self.open_until_ms.compare_exchange(0, until, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Whether the guard is open (calls are being refused or probed).
    pub fn is_open(&self) -> bool {
        self.open_until_ms.load(Ordering::Acquire) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_refuses_until_the_cooldown_ends() {
        let g = RedisGuard::default();
        assert!(!g.failure(1_000));
        assert!(!g.failure(1_001));
        assert!(g.failure(1_002), "the third failure in a row opens");
        assert!(g.is_open());
        assert!(!g.admit(1_500));
        assert!(g.admit(2_002), "one probe after the cooldown");
        assert!(!g.admit(2_003), "only one");
        assert!(g.success(), "the probe's success closes it");
        assert!(g.admit(2_004));
    }

    #[test]
    fn a_success_resets_the_count_and_a_failed_probe_reopens() {
        let g = RedisGuard::default();
        g.failure(0);
        g.failure(0);
        assert!(!g.success());
        assert!(!g.failure(0), "the count started over");
        g.failure(0);
        assert!(g.failure(0));
        assert!(g.admit(1_000));
        assert!(!g.failure(1_000), "a failed probe keeps it open");
        assert!(!g.admit(1_500));
        assert!(g.admit(2_000));
    }
}
