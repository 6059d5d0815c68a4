//! Rate limiting: every policy that applies to a request is decided together — in Redis
//! by one Lua script on the Redis clock (cluster-wide, exact), in process in memory mode —
//! and a request rejected by one policy consumes from none.
//!
//! The request path calls `Limiter::check` directly (no mailbox hop); Redis trouble is
//! handled per policy's `failure_mode`: `local` (this node's share of the limit), `open`
//! (admit) or `closed` (refuse with `redis_unavailable`).

mod memory;

use std::sync::{Arc, LazyLock};

use redis::Script;

pub use memory::{MemCheck, MemoryLimiter};

use crate::redis::Store;
use crate::spec::{Algorithm, FailureMode, PolicySpec};
use crate::status::NodeStatus;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/ratelimit.lua")));

/// The decision of one policy.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Verdict {
    /// Whether this policy admits the request.
    pub allowed: bool,
    /// Requests left in the window after this one (0 when refused).
    pub remaining: u64,
    /// Milliseconds until the window resets / the bucket is full.
    pub reset_ms: u64,
    /// Milliseconds until a refused request could pass (0 when allowed).
    pub retry_ms: u64,
}

impl Verdict {
    fn new(allowed: bool, remaining: f64, reset_ms: f64, retry_ms: f64) -> Self {
        let left = if allowed { remaining - 1.0 } else { remaining };
        Self {
            allowed,
            remaining: left.max(0.0) as u64,
            reset_ms: reset_ms.max(0.0) as u64,
            retry_ms: if allowed { 0 } else { retry_ms.max(1.0) as u64 },
        }
    }
}

/// The decision for a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// All policies admit it.
    pub allowed: bool,
    /// Per policy, in the order asked.
    pub verdicts: Vec<Verdict>,
}

/// One policy to apply, with the key value built from the request.
pub struct Check<'a> {
    /// Policy name.
    pub policy: &'a str,
    /// The policy.
    pub spec: &'a PolicySpec,
    /// Key value (`alice`, `10.0.0.7`, `alice+users`).
    pub key: &'a str,
}

/// Why no decision could be made.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// Redis is unavailable and a policy's failure mode is `closed`.
    #[error("rate limiter storage unavailable")]
    Unavailable,
}

/// The limiter handle the request path uses (cheap to clone).
#[derive(Clone)]
pub struct Limiter {
    store: Option<Store>,
    memory: Arc<MemoryLimiter>,
    status: NodeStatus,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn counter_id(policy: &str, key: &str) -> String {
    format!("{policy}\u{1f}{key}")
}

fn algorithm_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::FixedWindow => "fixed_window",
        Algorithm::SlidingWindow => "sliding_window",
        Algorithm::SlidingLog => "sliding_log",
        Algorithm::TokenBucket => "token_bucket",
        Algorithm::Gcra => "gcra",
    }
}

impl Limiter {
    /// A limiter over Redis (`store`) or, without one, in memory.
    pub fn new(store: Option<Store>, status: NodeStatus) -> Self {
        Self { store, memory: Arc::new(MemoryLimiter::default()), status }
    }

    /// Decides a request against `checks` (all-or-nothing).
    pub async fn check(&self, checks: &[Check<'_>]) -> Result<Outcome, LimitError> {
        let Some(store) = &self.store else {
            return Ok(self.local(checks, 1));
        };
        let keys: Vec<String> = checks.iter().map(|c| store.keys().rate_limit(c.policy, c.key)).collect();
        let mut args: Vec<Vec<u8>> = vec![checks.len().to_string().into_bytes()];
        for c in checks {
            args.push(algorithm_name(c.spec.algorithm).as_bytes().to_vec());
            args.push(c.spec.limit.to_string().into_bytes());
            args.push((c.spec.window.get().as_millis() as u64).max(1).to_string().into_bytes());
            args.push(c.spec.burst.to_string().into_bytes());
        }
        let arg_refs: Vec<&dyn crate::redis::ToRedisArgsDyn> =
            args.iter().map(|a| a as &dyn crate::redis::ToRedisArgsDyn).collect();
        match store.script::<Vec<i64>>(&SCRIPT, &keys, &arg_refs).await {
            Ok(reply) if reply.len() == 1 + 3 * checks.len() => {
                self.status.set_degraded("ratelimit", false);
                let verdicts = (0..checks.len())
                    .map(|i| {
                        let r = &reply[1 + 3 * i..4 + 3 * i];
                        Verdict {
                            allowed: r[2] == 0,
                            remaining: r[0].max(0) as u64,
                            reset_ms: r[1].max(0) as u64,
                            retry_ms: r[2].max(0) as u64,
                        }
                    })
                    .collect();
                Ok(Outcome { allowed: reply[0] == 1, verdicts })
            }
            Ok(_) | Err(_) => {
                self.status.set_degraded("ratelimit", true);
                self.fallback(checks)
            }
        }
    }

    fn fallback(&self, checks: &[Check<'_>]) -> Result<Outcome, LimitError> {
        if checks.iter().any(|c| c.spec.failure_mode == FailureMode::Closed) {
            return Err(LimitError::Unavailable);
        }
        let local: Vec<&Check<'_>> = checks.iter().filter(|c| c.spec.failure_mode == FailureMode::Local).collect();
        let nodes = u64::from(self.status.live_nodes());
        let mut outcome = self.local_refs(&local, nodes);
        // `open` policies admit; report them as untouched.
        let mut verdicts = Vec::with_capacity(checks.len());
        let mut it = outcome.verdicts.drain(..);
        for c in checks {
            verdicts.push(if c.spec.failure_mode == FailureMode::Local {
                it.next().unwrap_or(Verdict { allowed: true, remaining: c.spec.limit, reset_ms: 0, retry_ms: 0 })
            } else {
                Verdict { allowed: true, remaining: c.spec.limit, reset_ms: 0, retry_ms: 0 }
            });
        }
        Ok(Outcome { allowed: outcome.allowed, verdicts })
    }

    fn local(&self, checks: &[Check<'_>], nodes: u64) -> Outcome {
        let refs: Vec<&Check<'_>> = checks.iter().collect();
        self.local_refs(&refs, nodes)
    }

    fn local_refs(&self, checks: &[&Check<'_>], nodes: u64) -> Outcome {
        let ids: Vec<String> = checks.iter().map(|c| counter_id(c.policy, c.key)).collect();
        let mem: Vec<MemCheck<'_>> = checks
            .iter()
            .zip(&ids)
            .map(|(c, id)| MemCheck {
                id,
                algorithm: c.spec.algorithm,
                limit: (c.spec.limit / nodes.max(1)).max(1),
                window_ms: (c.spec.window.get().as_millis() as u64).max(1),
                burst: c.spec.burst / nodes.max(1),
            })
            .collect();
        self.memory.check(&mem, now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::HumanDuration;

    fn policy(algorithm: Algorithm, limit: u64, window_ms: u64) -> PolicySpec {
        PolicySpec {
            algorithm,
            limit,
            window: HumanDuration::millis(window_ms),
            burst: 0,
            key: Default::default(),
            failure_mode: FailureMode::Local,
        }
    }

    #[test]
    fn every_algorithm_admits_exactly_the_limit_then_refuses() {
        for alg in [
            Algorithm::FixedWindow,
            Algorithm::SlidingWindow,
            Algorithm::SlidingLog,
            Algorithm::TokenBucket,
            Algorithm::Gcra,
        ] {
            let mem = MemoryLimiter::default();
            let now = 1_000_000_000 * 60; // start of a window
            let check = MemCheck { id: "p", algorithm: alg, limit: 5, window_ms: 60_000, burst: 0 };
            let admitted = (0..10).filter(|_| mem.check(std::slice::from_ref(&check), now).allowed).count();
            assert_eq!(admitted, 5, "{alg:?}");
            let refused = mem.check(std::slice::from_ref(&check), now);
            assert!(!refused.allowed);
            assert!(refused.verdicts[0].retry_ms >= 1, "{alg:?}");
            assert_eq!(refused.verdicts[0].remaining, 0, "{alg:?}");
        }
    }

    #[test]
    fn a_request_refused_by_one_policy_consumes_from_none() {
        let mem = MemoryLimiter::default();
        let wide = MemCheck { id: "wide", algorithm: Algorithm::FixedWindow, limit: 100, window_ms: 60_000, burst: 0 };
        let narrow =
            MemCheck { id: "narrow", algorithm: Algorithm::FixedWindow, limit: 2, window_ms: 60_000, burst: 0 };
        let now = 60_000 * 1000;
        for _ in 0..2 {
            assert!(mem.check(&[wide.clone_ref(), narrow.clone_ref()], now).allowed);
        }
        for _ in 0..5 {
            assert!(!mem.check(&[wide.clone_ref(), narrow.clone_ref()], now).allowed);
        }
        let o = mem.check(std::slice::from_ref(&wide), now);
        assert_eq!(o.verdicts[0].remaining, 100 - 3, "refused requests took from the wide policy");
    }

    #[test]
    fn policies_come_back_after_their_window() {
        let mem = MemoryLimiter::default();
        let c = MemCheck { id: "p", algorithm: Algorithm::SlidingWindow, limit: 3, window_ms: 1000, burst: 0 };
        let t0 = 10_000;
        for _ in 0..3 {
            assert!(mem.check(std::slice::from_ref(&c), t0).allowed);
        }
        assert!(!mem.check(std::slice::from_ref(&c), t0 + 10).allowed);
        assert!(mem.check(std::slice::from_ref(&c), t0 + 2500).allowed);
        let _ = policy(Algorithm::Gcra, 1, 1);
    }
}
