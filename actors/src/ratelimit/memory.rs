//! The same five algorithms in process: memory mode, and the `local` fallback when Redis
//! cannot answer (then with the limit divided by the live node count). Check-then-commit
//! across all policies of a request, like the Lua script.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::spec::Algorithm;

use super::{Outcome, Verdict};

/// Counter state of one (policy, key).
#[derive(Clone, Debug)]
enum State {
    Window { win: u64, cur: f64, prev: f64 },
    Log(Vec<u64>),
    Bucket { tokens: f64, ts: u64 },
    Gcra { tat: f64 },
}

/// One policy applied to one key, as the memory backend sees it.
pub struct MemCheck<'a> {
    /// Counter identity (policy + key).
    pub id: &'a str,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Limit (already divided for the local fallback).
    pub limit: u64,
    /// Window in ms.
    pub window_ms: u64,
    /// Bucket capacity (0 = limit).
    pub burst: u64,
}

impl MemCheck<'_> {
    /// A copy borrowing the same id.
    pub fn clone_ref(&self) -> Self {
        MemCheck {
            id: self.id,
            algorithm: self.algorithm,
            limit: self.limit,
            window_ms: self.window_ms,
            burst: self.burst,
        }
    }
}

/// In-process counters, sharded to keep lock hold times short.
pub struct MemoryLimiter {
    shards: Vec<Mutex<HashMap<String, State>>>,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self { shards: (0..32).map(|_| Mutex::new(HashMap::new())).collect() }
    }
}

fn eval(c: &MemCheck<'_>, state: Option<&State>, now: u64) -> (Verdict, State) {
    let (limit, w) = (c.limit as f64, c.window_ms.max(1) as f64);
    let nowf = now as f64;
    match c.algorithm {
        Algorithm::FixedWindow | Algorithm::SlidingWindow => {
            let win = now / c.window_ms.max(1);
            let (cur, prev) = match state {
                Some(State::Window { win: w0, cur, prev }) if *w0 == win => (*cur, *prev),
                Some(State::Window { win: w0, cur, .. }) if *w0 + 1 == win => (0.0, *cur),
                _ => (0.0, 0.0),
            };
            let elapsed = nowf - (win as f64) * w;
            let reset = w - elapsed;
            let (ok, remaining, retry, next) = if c.algorithm == Algorithm::FixedWindow {
                let ok = cur < limit;
                (ok, limit - cur, reset, State::Window { win, cur: cur + 1.0, prev: 0.0 })
            } else {
                let est = prev * (w - elapsed) / w + cur;
                let ok = est + 1.0 <= limit;
                let retry = if cur + 1.0 > limit {
                    reset
                } else if prev > 0.0 {
                    (w * (1.0 - (limit - 1.0 - cur) / prev) - elapsed).ceil()
                } else {
                    0.0
                };
                (ok, (limit - est).floor(), retry, State::Window { win, cur: cur + 1.0, prev })
            };
            (Verdict::new(ok, remaining, reset, retry), next)
        }
        Algorithm::SlidingLog => {
            let mut log = match state {
                Some(State::Log(l)) => l.iter().copied().filter(|t| *t + c.window_ms > now).collect(),
                _ => Vec::new(),
            };
            let ok = (log.len() as f64) < limit;
            let reset = log.first().map_or(w, |t| (*t + c.window_ms) as f64 - nowf);
            let remaining = limit - log.len() as f64;
            log.push(now);
            (Verdict::new(ok, remaining, reset, reset), State::Log(log))
        }
        Algorithm::TokenBucket => {
            let cap = if c.burst > 0 { c.burst as f64 } else { limit };
            let per = w / limit;
            let tokens = match state {
                Some(State::Bucket { tokens, ts }) => (tokens + (nowf - *ts as f64) / per).min(cap),
                _ => cap,
            };
            let ok = tokens >= 1.0;
            let v = Verdict::new(ok, tokens.floor(), ((cap - tokens) * per).ceil(), ((1.0 - tokens) * per).ceil());
            (v, State::Bucket { tokens: tokens - 1.0, ts: now })
        }
        Algorithm::Gcra => {
            let cap = if c.burst > 0 { c.burst as f64 } else { limit };
            let per = w / limit;
            let tat = match state {
                Some(State::Gcra { tat }) => tat.max(nowf),
                _ => nowf,
            };
            let tau = per * (cap - 1.0);
            let ok = tat - nowf <= tau;
            let remaining = ((tau - (tat - nowf)) / per).floor() + 1.0;
            let v = Verdict::new(ok, remaining, (tat - nowf).ceil(), (tat - tau - nowf).ceil());
            (v, State::Gcra { tat: tat + per })
        }
    }
}

impl MemoryLimiter {
    fn shard(&self, id: &str) -> &Mutex<HashMap<String, State>> {
        let h = crate::balancer::hash64(id.as_bytes()) as usize;
        &self.shards[h % self.shards.len()]
    }

    /// What `check` would report for one counter, changing nothing (`remaining` before
    /// any request).
    pub fn peek(&self, c: &MemCheck<'_>, now: u64) -> Verdict {
        let guard = self.shard(c.id).lock().unwrap_or_else(|e| e.into_inner());
        let (mut v, _) = eval(c, guard.get(c.id), now);
        if v.allowed {
            v.remaining += 1;
        }
        v
    }

    /// Forgets a counter.
    pub fn reset(&self, id: &str) {
        self.shard(id).lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Decides a request against `checks` at time `now` (ms).
    pub fn check(&self, checks: &[MemCheck<'_>], now: u64) -> Outcome {
        let mut verdicts = Vec::with_capacity(checks.len());
        let mut next = Vec::with_capacity(checks.len());
        for c in checks {
            let guard = self.shard(c.id).lock().unwrap_or_else(|e| e.into_inner());
            let (v, s) = eval(c, guard.get(c.id), now);
            verdicts.push(v);
            next.push(s);
        }
        let allowed = verdicts.iter().all(|v| v.allowed);
        if allowed {
            for (c, s) in checks.iter().zip(next) {
                self.shard(c.id).lock().unwrap_or_else(|e| e.into_inner()).insert(c.id.to_string(), s);
            }
        }
        Outcome { allowed, verdicts }
    }
}

#[cfg(test)]
mod properties {
    //! Randomized checks of each algorithm against what it promises, over many seeded
    //! request sequences (a small xorshift generator keeps them reproducible).
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Admitted request times for a random arrival sequence.
    fn run(alg: Algorithm, limit: u64, window_ms: u64, burst: u64, seed: u64) -> Vec<u64> {
        let mem = MemoryLimiter::default();
        let mut rng = Rng(seed | 1);
        let c = MemCheck { id: "k", algorithm: alg, limit, window_ms, burst };
        let mut now = 1_000_000u64;
        let mut admitted = Vec::new();
        for _ in 0..2000 {
            now += rng.next() % (window_ms / 10).max(2);
            if mem.check(std::slice::from_ref(&c), now).allowed {
                admitted.push(now);
            }
        }
        admitted
    }

    #[test]
    fn fixed_window_never_admits_more_than_the_limit_per_window() {
        for seed in 1..40 {
            let admitted = run(Algorithm::FixedWindow, 7, 1000, 0, seed);
            let mut per_window: HashMap<u64, u64> = HashMap::new();
            for t in &admitted {
                *per_window.entry(t / 1000).or_default() += 1;
            }
            assert!(per_window.values().all(|n| *n <= 7), "seed {seed}: {per_window:?}");
        }
    }

    #[test]
    fn sliding_log_never_admits_more_than_the_limit_in_any_window() {
        for seed in 1..40 {
            let admitted = run(Algorithm::SlidingLog, 5, 1000, 0, seed);
            for (i, t) in admitted.iter().enumerate() {
                let in_window = admitted[..=i].iter().filter(|s| **s + 1000 > *t).count();
                assert!(in_window <= 5, "seed {seed}: {in_window} in the window ending {t}");
            }
        }
    }

    #[test]
    fn buckets_never_admit_more_than_burst_plus_rate_times_elapsed() {
        for alg in [Algorithm::TokenBucket, Algorithm::Gcra] {
            for seed in 1..40 {
                let (limit, window, burst) = (10u64, 1000u64, 4u64);
                let admitted = run(alg, limit, window, burst, seed);
                let Some(first) = admitted.first() else { continue };
                for (i, t) in admitted.iter().enumerate() {
                    let bound = burst as f64 + (t - first) as f64 * limit as f64 / window as f64 + 1.0;
                    assert!((i + 1) as f64 <= bound, "{alg:?} seed {seed}: {} admitted by {t}, bound {bound}", i + 1);
                }
            }
        }
    }

    #[test]
    fn sliding_window_stays_within_its_documented_bound() {
        // The weighted estimate never lets more than 2 x limit through in any window
        // length, and never more than the limit within one fixed window.
        for seed in 1..40 {
            let admitted = run(Algorithm::SlidingWindow, 6, 1000, 0, seed);
            for (i, t) in admitted.iter().enumerate() {
                let in_window = admitted[..=i].iter().filter(|s| **s + 1000 > *t).count();
                assert!(in_window <= 12, "seed {seed}: {in_window}");
            }
            let mut per_window: HashMap<u64, u64> = HashMap::new();
            for t in &admitted {
                *per_window.entry(t / 1000).or_default() += 1;
            }
            assert!(per_window.values().all(|n| *n <= 6), "seed {seed}: {per_window:?}");
        }
    }
}
