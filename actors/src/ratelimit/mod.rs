//! Rate limiting: every policy that applies to a request is decided together — in Redis
//! by one Lua script on the Redis clock (cluster-wide, exact), in process in memory mode —
//! and a request rejected by one policy consumes from none.
//!
//! The request path calls `Limiter::check` directly (no mailbox hop); Redis trouble is
//! handled per policy's `failure_mode`: `local` (this node's share of the limit), `open`
//! (admit) or `closed` (refuse with `redis_unavailable`).

mod batch;
mod memory;
mod policy;

use std::sync::{Arc, LazyLock};

use redis::Script;

pub use memory::{MemCheck, MemoryLimiter};
pub use policy::{PolicyRegistry, RatePolicy};

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

/// Counters known to be exhausted: id → (blocked until ms, the refusing verdict).
type BlockedShard = std::sync::Mutex<std::collections::HashMap<String, (u64, Verdict)>>;

/// The limiter handle the request path uses (cheap to clone).
#[derive(Clone)]
pub struct Limiter {
    store: Option<Store>,
    memory: Arc<MemoryLimiter>,
    status: NodeStatus,
    /// Local fast path: counters known to be exhausted until a time (ms), so a client that
    /// keeps hammering a full limit costs no Redis round trip (as Envoy's ratelimit does).
    blocked: Arc<Vec<BlockedShard>>,
    /// The latest "blocked until" (ms) ever remembered: before it passes, look the counters
    /// up; after, nothing can be blocked and the lookup (a key string and a lock) is skipped.
    blocked_until: Arc<std::sync::atomic::AtomicU64>,
}

fn counter_id(policy: &str, key: &str) -> String {
    format!("{policy}\u{1f}{key}")
}

/// The memory form of a policy; `nodes` divides the limit (local fallback).
fn mem_check<'a>(id: &'a str, spec: &PolicySpec, nodes: u64) -> MemCheck<'a> {
    MemCheck {
        id,
        algorithm: spec.algorithm,
        limit: (spec.limit / nodes.max(1)).max(1),
        window_ms: (spec.window.get().as_millis() as u64).max(1),
        burst: spec.burst / nodes.max(1),
    }
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

/// One request's counters and policies for `ratelimit.lua`.
fn encode(store: &Store, checks: &[Check<'_>]) -> batch::Encoded {
    checks
        .iter()
        .map(|c| batch::Part {
            def: batch::PolicyDef {
                algorithm: algorithm_name(c.spec.algorithm),
                limit: c.spec.limit,
                window_ms: (c.spec.window.get().as_millis() as u64).max(1),
                burst: c.spec.burst,
            },
            counter: store.keys().rate_limit(c.policy, c.key),
            // Only sliding_log keeps member ids in a sequence hash.
            seq: (c.spec.algorithm == Algorithm::SlidingLog).then(|| store.keys().rate_limit_seq(c.policy, c.key)),
        })
        .collect()
}

/// One request's part of the script's reply: allowed, then three numbers per policy.
fn decode(reply: &[i64], policies: usize) -> Option<Outcome> {
    if reply.len() != 1 + 3 * policies {
        return None;
    }
    let verdicts = (0..policies)
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
    Some(Outcome { allowed: reply[0] == 1, verdicts })
}

impl Limiter {
    /// A limiter over Redis (`store`) or, without one, in memory.
    pub fn new(store: Option<Store>, status: NodeStatus) -> Self {
        let blocked = (0..16).map(|_| std::sync::Mutex::new(std::collections::HashMap::new())).collect();
        Self {
            store,
            memory: Arc::new(MemoryLimiter::default()),
            status,
            blocked: Arc::new(blocked),
            blocked_until: Arc::default(),
        }
    }

    fn blocked_shard(&self, id: &str) -> &BlockedShard {
        &self.blocked[crate::balancer::hash64(id.as_bytes()) as usize % self.blocked.len()]
    }

    /// A refusal known locally: some policy's counter is exhausted until later.
    fn known_refusal(&self, checks: &[Check<'_>], now: u64) -> Option<Outcome> {
        if now >= self.blocked_until.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let mut refused = false;
        let verdicts = checks
            .iter()
            .map(|c| {
                let id = counter_id(c.policy, c.key);
                let shard = self.blocked_shard(&id).lock().unwrap_or_else(|e| e.into_inner());
                match shard.get(&id) {
                    Some((until, v)) if *until > now => {
                        refused = true;
                        Verdict {
                            retry_ms: until - now,
                            reset_ms: v.reset_ms.saturating_sub(v.retry_ms) + (until - now),
                            ..*v
                        }
                    }
                    _ => Verdict { allowed: true, remaining: c.spec.limit, reset_ms: 0, retry_ms: 0 },
                }
            })
            .collect();
        refused.then_some(Outcome { allowed: false, verdicts })
    }

    fn remember_refusals(&self, checks: &[Check<'_>], outcome: &Outcome, now: u64) {
        for (c, v) in checks.iter().zip(&outcome.verdicts) {
            if !v.allowed && v.retry_ms > 0 {
                let id = counter_id(c.policy, c.key);
                let mut shard = self.blocked_shard(&id).lock().unwrap_or_else(|e| e.into_inner());
                if shard.len() > 100_000 {
                    shard.retain(|_, (until, _)| *until > now);
                }
                shard.insert(id, (now + v.retry_ms, *v));
                self.blocked_until.fetch_max(now + v.retry_ms, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// A counter's state without counting a request (`remaining` before any request).
    pub async fn peek(&self, policy: &str, spec: &PolicySpec, key: &str) -> Result<Verdict, LimitError> {
        let Some(store) = &self.store else {
            let id = counter_id(policy, key);
            return Ok(self.memory.peek(&mem_check(&id, spec, 1), crate::now_unix_ms()));
        };
        let out = self.script(store, "peek", &[Check { policy, spec, key }]).await.ok_or(LimitError::Unavailable)?;
        out.verdicts.first().copied().ok_or(LimitError::Unavailable)
    }

    /// Forgets a counter (admin reset), locally and in Redis.
    pub async fn reset(&self, policy: &str, key: &str) -> Result<(), LimitError> {
        let id = counter_id(policy, key);
        self.memory.reset(&id);
        self.blocked_shard(&id).lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        if let Some(store) = &self.store {
            let (k, seq) = (store.keys().rate_limit(policy, key), store.keys().rate_limit_seq(policy, key));
            store.query::<()>(redis::cmd("DEL").arg(&k).arg(&seq)).await.map_err(|_| LimitError::Unavailable)?;
        }
        Ok(())
    }

    /// One atomic script call when every counter shares a slot (always outside Cluster);
    /// on Redis Cluster, policies keyed by different values live in different slots, so
    /// they are decided one key value after another, and after a refusal the rest are only
    /// peeked: never over-admits, though a refused request may have consumed from the
    /// policies decided before the refusing one.
    async fn script(&self, store: &Store, mode: &str, checks: &[Check<'_>]) -> Option<Outcome> {
        let first = checks.first()?.key;
        if !store.is_cluster() || checks.iter().all(|c| c.key == first) {
            return self.script_one(store, mode, checks).await;
        }
        let mut keys: Vec<&str> = Vec::new();
        for c in checks {
            if !keys.contains(&c.key) {
                keys.push(c.key);
            }
        }
        let mut verdicts: Vec<Option<Verdict>> = vec![None; checks.len()];
        let mut allowed = true;
        for key in keys {
            let (idx, group): (Vec<usize>, Vec<Check<'_>>) =
                checks.iter().enumerate().filter(|(_, c)| c.key == key).map(|(i, c)| (i, Check { ..*c })).unzip();
            let group_mode = if allowed { mode } else { "peek" };
            let out = self.script_one(store, group_mode, &group).await?;
            allowed &= out.allowed;
            for (i, v) in idx.into_iter().zip(out.verdicts) {
                verdicts[i] = Some(v);
            }
        }
        Some(Outcome { allowed, verdicts: verdicts.into_iter().collect::<Option<Vec<_>>>()? })
    }

    /// One request's decision in one script call: `decide` joins this thread's shared call
    /// of the turn (`batch`), `peek` runs on its own.
    async fn script_one(&self, store: &Store, mode: &str, checks: &[Check<'_>]) -> Option<Outcome> {
        let request = encode(store, checks);
        let reply = if mode == "decide" {
            // On Cluster every key of one call must share a slot: group by key value.
            let group = if store.is_cluster() { checks.first()?.key.to_owned() } else { String::new() };
            batch::decide(store, group, request).await?
        } else {
            batch::call(store, mode, std::slice::from_ref(&request)).await?.pop()?
        };
        decode(&reply, checks.len())
    }

    /// Decides a request against `checks` (all-or-nothing).
    pub async fn check(&self, checks: &[Check<'_>]) -> Result<Outcome, LimitError> {
        let Some(store) = &self.store else {
            return Ok(self.local(checks, 1));
        };
        let now = crate::now_unix_ms();
        if let Some(refused) = self.known_refusal(checks, now) {
            return Ok(refused);
        }
        match self.script(store, "decide", checks).await {
            Some(outcome) => {
                self.status.set_degraded("ratelimit", false);
                if !outcome.allowed {
                    self.remember_refusals(checks, &outcome, now);
                }
                Ok(outcome)
            }
            None => {
                self.status.set_degraded("ratelimit", true);
                self.fallback(checks)
            }
        }
    }

    /// Decides `checks` strictly — cluster-wide in Redis, or in process in memory mode —
    /// with no failure-mode fallback and no `/health` change: for callers that wait and try
    /// again rather than fall back (the queue's start permits).
    pub async fn decide_strict(&self, checks: &[Check<'_>]) -> Result<Outcome, LimitError> {
        let Some(store) = &self.store else {
            return Ok(self.local(checks, 1));
        };
        let now = crate::now_unix_ms();
        if let Some(refused) = self.known_refusal(checks, now) {
            return Ok(refused);
        }
        let outcome = self.script(store, "decide", checks).await.ok_or(LimitError::Unavailable)?;
        if !outcome.allowed {
            self.remember_refusals(checks, &outcome, now);
        }
        Ok(outcome)
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
        let mem: Vec<MemCheck<'_>> = checks.iter().zip(&ids).map(|(c, id)| mem_check(id, c.spec, nodes)).collect();
        self.memory.check(&mem, crate::now_unix_ms())
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

/// Read a counter without counting a request.
#[derive(actix::Message)]
#[rtype(result = "Result<(PolicySpec, Verdict), RateLimitAdminError>")]
pub struct ReadCounter {
    /// Policy name.
    pub policy: String,
    /// Key value.
    pub key: String,
}

/// Reset a counter.
#[derive(actix::Message)]
#[rtype(result = "Result<(), RateLimitAdminError>")]
pub struct ResetCounter {
    /// Policy name.
    pub policy: String,
    /// Key value.
    pub key: String,
}

/// Why an admin rate-limit call failed.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitAdminError {
    /// No such policy.
    #[error("rate-limit policy {0:?} not found")]
    UnknownPolicy(String),
    /// Redis could not answer.
    #[error("{0}")]
    Unavailable(#[from] LimitError),
}

/// `RateLimiter`: the admin front of the `Limiter` handle. It owns no limiter state: the
/// request path decides through `Limiter` (no mailbox hop per request) and the counters
/// live in Redis or in the handle's memory limiter; the actor serves the admin reads and
/// resets, checking the policy name against the node's shared `PolicyRegistry`.
pub struct RateLimiter {
    limiter: Limiter,
    policies: PolicyRegistry,
}

impl RateLimiter {
    /// An actor over `limiter` with the node's `policies`.
    pub fn new(limiter: Limiter, policies: PolicyRegistry) -> Self {
        Self { limiter, policies }
    }

    /// The request-path handle.
    pub fn handle(&self) -> Limiter {
        self.limiter.clone()
    }
}

impl actix::Actor for RateLimiter {
    type Context = actix::Context<Self>;
}

/// Nothing to repair after a panic: the state is in the `Limiter` handle.
impl actix::Supervised for RateLimiter {}

impl actix::Handler<ReadCounter> for RateLimiter {
    type Result = actix::ResponseFuture<Result<(PolicySpec, Verdict), RateLimitAdminError>>;
    fn handle(&mut self, msg: ReadCounter, _: &mut Self::Context) -> Self::Result {
        let limiter = self.limiter.clone();
        let spec = self.policies.get(&msg.policy).map(|p| p.spec.clone());
        Box::pin(async move {
            let spec = spec.ok_or_else(|| RateLimitAdminError::UnknownPolicy(msg.policy.clone()))?;
            let v = limiter.peek(&msg.policy, &spec, &msg.key).await?;
            Ok((spec, v))
        })
    }
}

impl actix::Handler<ResetCounter> for RateLimiter {
    type Result = actix::ResponseFuture<Result<(), RateLimitAdminError>>;
    fn handle(&mut self, msg: ResetCounter, _: &mut Self::Context) -> Self::Result {
        let limiter = self.limiter.clone();
        let known = self.policies.contains(&msg.policy);
        Box::pin(async move {
            if !known {
                return Err(RateLimitAdminError::UnknownPolicy(msg.policy));
            }
            Ok(limiter.reset(&msg.policy, &msg.key).await?)
        })
    }
}
