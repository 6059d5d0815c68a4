//! `CircuitCell`: the per-endpoint atomics the request path reads and counts into. The
//! `CircuitBreaker` actor (`actors::circuit`) is the only writer of the state and the only
//! caller of the methods marked "actor only"; requests only count outcomes.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use super::machine::CircuitState;

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// Lock-free view of one endpoint's breaker plus the outcome counters of the current
/// window bucket.
#[derive(Debug, Default)]
pub struct CircuitCell {
    state: AtomicU8,
    /// Open: when probing may start. Half-open: when to ask for a probe again.
    until_ms: AtomicU64,
    consecutive: AtomicU32,
    total: AtomicU32,
    failed: AtomicU32,
}

impl CircuitCell {
    /// Current state as this node knows it.
    pub fn state(&self) -> CircuitState {
        match self.state.load(Ordering::Acquire) {
            OPEN => CircuitState::Open,
            HALF_OPEN => CircuitState::HalfOpen,
            _ => CircuitState::Closed,
        }
    }

    /// Whether ordinary traffic may go to the endpoint (the breaker is closed).
    pub fn admits(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
    }

    /// Whether the endpoint is due a probe: not closed and past its wait.
    pub fn probe_due(&self, now_ms: u64) -> bool {
        self.state.load(Ordering::Acquire) != CLOSED && now_ms >= self.until_ms.load(Ordering::Relaxed)
    }

    /// While open: when probing may start.
    pub fn open_until(&self) -> Option<u64> {
        (self.state.load(Ordering::Acquire) == OPEN).then(|| self.until_ms.load(Ordering::Relaxed))
    }

    /// Counts one ordinary request's outcome; returns the consecutive failures so far.
    pub fn record(&self, ok: bool) -> u32 {
        self.total.fetch_add(1, Ordering::Relaxed);
        if ok {
            if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
            0
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.consecutive.fetch_add(1, Ordering::Relaxed) + 1
        }
    }

    /// Publishes a state (actor only).
    pub fn set(&self, state: CircuitState, until_ms: u64) {
        self.until_ms.store(until_ms, Ordering::Relaxed);
        let v = match state {
            CircuitState::Closed => CLOSED,
            CircuitState::Open => OPEN,
            CircuitState::HalfOpen => HALF_OPEN,
        };
        self.state.store(v, Ordering::Release);
    }

    /// `(total, failed)` counted since the last `take_bucket` (actor only).
    pub fn current(&self) -> (u32, u32) {
        (self.total.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }

    /// Takes the current bucket's counts and starts a new one (actor only).
    pub fn take_bucket(&self) -> (u32, u32) {
        (self.total.swap(0, Ordering::Relaxed), self.failed.swap(0, Ordering::Relaxed))
    }

    /// Forgets all counts after a transition (actor only).
    pub fn clear_counts(&self) {
        self.take_bucket();
        self.consecutive.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_failures_reset_on_success() {
        let c = CircuitCell::default();
        assert_eq!(c.record(false), 1);
        assert_eq!(c.record(false), 2);
        assert_eq!(c.record(true), 0);
        assert_eq!(c.record(false), 1);
        assert_eq!(c.current(), (4, 3));
        assert_eq!(c.take_bucket(), (4, 3));
        assert_eq!(c.current(), (0, 0));
    }

    #[test]
    fn only_a_closed_breaker_admits_traffic() {
        let c = CircuitCell::default();
        assert!(c.admits());
        c.set(CircuitState::Open, 1_000);
        assert!(!c.admits());
        assert!(!c.probe_due(999));
        assert!(c.probe_due(1_000));
        assert_eq!(c.open_until(), Some(1_000));
        c.set(CircuitState::HalfOpen, 0);
        assert!(!c.admits());
        assert!(c.probe_due(5));
        assert_eq!(c.open_until(), None);
    }
}
