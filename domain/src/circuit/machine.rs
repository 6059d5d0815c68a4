//! One breaker's state machine, `closed → open → half_open → closed`, with the clock
//! passed in. It is the memory backend and the per-node fallback, and it mirrors
//! `actors/lua/circuit.lua` (the Redis backend) field for field: the JSON stored in Redis
//! is this struct. Its fields may come from Redis, so arithmetic on them saturates: a
//! corrupt record cannot panic the breaker actor.

use serde::{Deserialize, Serialize};

use crate::spec::CircuitBreakerSpec;

/// Whether a closed breaker trips: `consecutive_failures` in a row, or a failure ratio
/// of at least `failure_ratio` over a window holding at least `min_requests` requests.
pub fn should_trip(spec: &CircuitBreakerSpec, requests: u32, failures: u32, consecutive: u32) -> bool {
    let by_count = spec.consecutive_failures > 0 && consecutive >= spec.consecutive_failures;
    let by_ratio =
        requests >= spec.min_requests.max(1) && f64::from(failures) >= spec.failure_ratio * f64::from(requests);
    by_count || by_ratio
}

/// Breaker state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Traffic flows.
    #[default]
    Closed,
    /// No traffic until `until_ms`.
    Open,
    /// A limited number of probes may go through.
    HalfOpen,
}

impl CircuitState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// Value of the `gateway_circuit_state` gauge (0 closed, 1 open, 2 half-open).
    pub fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }
}

/// The shared record of one breaker (times in Unix milliseconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    /// Current state.
    pub state: CircuitState,
    /// While open: when probing may start.
    pub until_ms: u64,
    /// When it last opened (0 = never).
    pub opened_ms: u64,
    /// When the current half-open round started.
    pub since_ms: u64,
    /// Probes granted in this half-open round (cluster-wide).
    pub probes: u32,
    /// Probes of this round that succeeded.
    pub ok: u32,
}

impl Machine {
    fn open(&mut self, now: u64, open_for: u64) {
        *self = Self { state: CircuitState::Open, until_ms: now.saturating_add(open_for), opened_ms: now, ..*self };
        self.probes = 0;
        self.ok = 0;
    }

    /// Opens a closed breaker. Returns whether the state changed.
    pub fn trip(&mut self, now: u64, open_for: u64) -> bool {
        if self.state != CircuitState::Closed {
            return false;
        }
        self.open(now, open_for);
        true
    }

    /// Asks for one probe: an open breaker past `until_ms` turns half-open; a half-open
    /// one grants up to `limit` probes per round. Returns `(granted, state changed)`.
    pub fn probe(&mut self, now: u64, open_for: u64, limit: u32) -> (bool, bool) {
        let mut changed = false;
        if self.state == CircuitState::Open && now >= self.until_ms {
            self.state = CircuitState::HalfOpen;
            self.since_ms = now;
            self.probes = 0;
            self.ok = 0;
            changed = true;
        }
        // A round whose probes never reported (their node died): start it over.
        if self.state == CircuitState::HalfOpen && self.probes >= limit && now >= self.since_ms.saturating_add(open_for)
        {
            self.since_ms = now;
            self.probes = 0;
            self.ok = 0;
        }
        if self.state == CircuitState::HalfOpen && self.probes < limit {
            self.probes += 1;
            return (true, changed);
        }
        (false, changed)
    }

    /// Records a probe's outcome: a failure re-opens, `limit` successes close.
    /// Returns whether the state changed.
    pub fn probe_result(&mut self, ok: bool, now: u64, open_for: u64, limit: u32) -> bool {
        if self.state != CircuitState::HalfOpen {
            return false;
        }
        if !ok {
            self.open(now, open_for);
            return true;
        }
        self.ok = self.ok.saturating_add(1);
        if self.ok >= limit {
            *self = Self { state: CircuitState::Closed, opened_ms: self.opened_ms, ..Self::default() };
            return true;
        }
        false
    }

    /// Gives back a probe slot whose request showed nothing about the upstream (the
    /// client failed it): another request may probe in its place.
    pub fn release_probe(&mut self) {
        if self.state == CircuitState::HalfOpen {
            self.probes = self.probes.saturating_sub(1);
        }
    }

    /// Closes the breaker and forgets its history. Returns whether the state changed.
    pub fn reset(&mut self) -> bool {
        let changed = self.state != CircuitState::Closed;
        *self = Self::default();
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_FOR: u64 = 30_000;

    fn spec(json: &str) -> CircuitBreakerSpec {
        let v: serde_json::Value = serde_json::from_str(json).expect("json");
        serde_json::from_value(v).expect("spec")
    }

    #[test]
    fn the_ratio_counts_only_with_enough_volume() {
        let s = spec(r#"{"failure_ratio": 0.5, "min_requests": 20, "consecutive_failures": 0}"#);
        assert!(!should_trip(&s, 19, 19, 19), "below min_requests nothing trips");
        assert!(should_trip(&s, 20, 10, 1));
        assert!(!should_trip(&s, 20, 9, 1));
    }

    #[test]
    fn consecutive_failures_trip_regardless_of_volume() {
        let s = spec(r#"{"min_requests": 1000, "consecutive_failures": 5}"#);
        assert!(!should_trip(&s, 4, 4, 4));
        assert!(should_trip(&s, 5, 5, 5));
        let off = spec(r#"{"min_requests": 1000, "consecutive_failures": 0}"#);
        assert!(!should_trip(&off, 50, 50, 50), "0 turns the consecutive rule off");
    }

    #[test]
    fn failures_are_every_5xx_unless_listed() {
        let s = spec("{}");
        assert!(s.is_failure(500) && s.is_failure(503) && !s.is_failure(404) && !s.is_failure(200));
        let listed = spec(r#"{"failure_statuses": [502, 503, 429]}"#);
        assert!(listed.is_failure(429) && !listed.is_failure(500));
    }

    #[test]
    fn a_closed_breaker_trips_once() {
        let mut m = Machine::default();
        assert!(m.trip(1_000, OPEN_FOR));
        assert_eq!(m.state, CircuitState::Open);
        assert_eq!(m.until_ms, 31_000);
        assert_eq!(m.opened_ms, 1_000);
        assert!(!m.trip(2_000, OPEN_FOR), "tripping an open breaker changes nothing");
        assert_eq!(m.until_ms, 31_000);
    }

    #[test]
    fn no_probe_is_granted_before_open_for_has_passed() {
        let mut m = Machine::default();
        m.trip(0, OPEN_FOR);
        assert_eq!(m.probe(29_999, OPEN_FOR, 3), (false, false));
        assert_eq!(m.state, CircuitState::Open);
    }

    #[test]
    fn half_open_grants_exactly_the_configured_probes() {
        let mut m = Machine::default();
        m.trip(0, OPEN_FOR);
        assert_eq!(m.probe(30_000, OPEN_FOR, 3), (true, true));
        assert_eq!(m.state, CircuitState::HalfOpen);
        assert_eq!(m.probe(30_001, OPEN_FOR, 3), (true, false));
        assert_eq!(m.probe(30_002, OPEN_FOR, 3), (true, false));
        assert_eq!(m.probe(30_003, OPEN_FOR, 3), (false, false));
    }

    #[test]
    fn all_probes_succeeding_close_the_breaker() {
        let mut m = Machine::default();
        m.trip(0, OPEN_FOR);
        for _ in 0..2 {
            assert!(m.probe(30_000, OPEN_FOR, 2).0);
        }
        assert!(!m.probe_result(true, 30_100, OPEN_FOR, 2));
        assert!(m.probe_result(true, 30_200, OPEN_FOR, 2));
        assert_eq!(m.state, CircuitState::Closed);
        assert_eq!(m.probes, 0);
    }

    #[test]
    fn a_failed_probe_reopens_for_another_period() {
        let mut m = Machine::default();
        m.trip(0, OPEN_FOR);
        assert!(m.probe(30_000, OPEN_FOR, 3).0);
        assert!(m.probe_result(false, 30_500, OPEN_FOR, 3));
        assert_eq!(m.state, CircuitState::Open);
        assert_eq!(m.until_ms, 60_500);
        assert_eq!(m.probe(60_499, OPEN_FOR, 3), (false, false));
    }

    #[test]
    fn a_round_whose_probes_never_report_starts_over() {
        let mut m = Machine::default();
        m.trip(0, OPEN_FOR);
        assert!(m.probe(30_000, OPEN_FOR, 1).0);
        assert!(!m.probe(40_000, OPEN_FOR, 1).0);
        assert!(m.probe(60_000, OPEN_FOR, 1).0, "the lost probe's round expired");
    }

    #[test]
    fn a_released_probe_neither_closes_nor_reopens_and_frees_its_slot() {
        let mut m = Machine::default();
        m.trip(0, OPEN_FOR);
        assert!(m.probe(30_000, OPEN_FOR, 1).0);
        assert!(!m.probe(30_001, OPEN_FOR, 1).0);
        m.release_probe();
        assert_eq!((m.state, m.ok), (CircuitState::HalfOpen, 0));
        assert!(m.probe(30_002, OPEN_FOR, 1).0, "the slot is free again");
        let mut closed = Machine::default();
        closed.release_probe();
        assert_eq!(closed, Machine::default());
    }

    #[test]
    fn late_results_outside_half_open_are_ignored() {
        let mut m = Machine::default();
        assert!(!m.probe_result(false, 5, OPEN_FOR, 3));
        assert_eq!(m.state, CircuitState::Closed);
    }

    #[test]
    fn reset_closes_from_any_state() {
        let mut m = Machine::default();
        m.trip(0, OPEN_FOR);
        assert!(m.reset());
        assert_eq!(m, Machine::default());
        assert!(!m.reset());
    }

    #[test]
    fn the_json_form_matches_the_lua_script() {
        let m: Machine =
            serde_json::from_str(r#"{"state":"half_open","until_ms":5,"opened_ms":1,"since_ms":6,"probes":2,"ok":1}"#)
                .expect("parses");
        assert_eq!(m.state, CircuitState::HalfOpen);
        assert_eq!((m.until_ms, m.probes, m.ok), (5, 2, 1));
        // cjson writes whole numbers of this size without exponent; floats are accepted.
        let m: Machine = serde_json::from_str(r#"{"state":"open","until_ms":1764094000000}"#).expect("parses");
        assert_eq!(m.until_ms, 1_764_094_000_000);
    }

    #[test]
    fn absurd_fields_from_redis_do_not_overflow() {
        let mut m = Machine {
            state: CircuitState::HalfOpen,
            since_ms: u64::MAX,
            probes: 9,
            ok: u32::MAX,
            ..Machine::default()
        };
        assert_eq!(m.probe(5, OPEN_FOR, 1), (false, false), "the round has not timed out");
        assert!(m.probe_result(true, 5, OPEN_FOR, 1), "ok saturates and the breaker closes");
        let mut m = Machine::default();
        assert!(m.trip(u64::MAX, OPEN_FOR));
        assert_eq!(m.until_ms, u64::MAX);
    }
}
