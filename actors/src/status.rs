//! `NodeStatus`: lock-free flags every actor updates and `/health` / `/ready` read —
//! Redis reachability, which actors are on their fallback, whether the registry has
//! loaded, and the live node count last seen.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};

/// Actors that can run on a fallback (names as shown in `/health`).
pub const ACTORS: [&str; 7] = ["registry", "ratelimit", "cache", "circuit", "queue", "auth", "analytics"];

const MEMORY: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Redis as the node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisState {
    /// No Redis configured.
    Memory,
    /// Reachable.
    Up,
    /// Configured but unreachable.
    Down,
}

impl RedisState {
    /// `memory`, `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

struct Inner {
    redis: AtomicU8,
    degraded: AtomicU32,
    /// Actors whose `gateway_degraded` gauge has been written at least once.
    reported: AtomicU32,
    registry_loaded: AtomicBool,
    live_nodes: AtomicU32,
    leader: AtomicBool,
    auth_loaded: AtomicBool,
    jwks_pending: AtomicBool,
}

/// Shared status board (cheap to clone).
#[derive(Clone)]
pub struct NodeStatus(Arc<Inner>);

impl NodeStatus {
    /// Memory mode: nothing to wait for, ready at once.
    pub fn memory() -> Self {
        Self(Arc::new(Inner {
            redis: AtomicU8::new(MEMORY),
            degraded: AtomicU32::new(0),
            reported: AtomicU32::new(0),
            registry_loaded: AtomicBool::new(true),
            live_nodes: AtomicU32::new(1),
            leader: AtomicBool::new(true),
            auth_loaded: AtomicBool::new(true),
            jwks_pending: AtomicBool::new(false),
        }))
    }

    /// Redis mode: down and not loaded until proven otherwise.
    pub fn redis() -> Self {
        Self(Arc::new(Inner {
            redis: AtomicU8::new(DOWN),
            degraded: AtomicU32::new(1),
            reported: AtomicU32::new(0),
            registry_loaded: AtomicBool::new(false),
            live_nodes: AtomicU32::new(1),
            leader: AtomicBool::new(false),
            auth_loaded: AtomicBool::new(false),
            jwks_pending: AtomicBool::new(false),
        }))
    }

    /// Redis state.
    pub fn redis_state(&self) -> RedisState {
        match self.0.redis.load(Ordering::Relaxed) {
            MEMORY => RedisState::Memory,
            UP => RedisState::Up,
            _ => RedisState::Down,
        }
    }

    /// Records Redis reachability (no-op in memory mode).
    pub fn set_redis_up(&self, up: bool) {
        let want = if up { UP } else { DOWN };
        if self.0.redis.load(Ordering::Relaxed) == want {
            return;
        }
        let _ = self.0.redis.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            (v != MEMORY).then_some(if up { UP } else { DOWN })
        });
    }

    /// Marks `actor` (one of `ACTORS`) as on / off its fallback.
    pub fn set_degraded(&self, actor: &str, degraded: bool) {
        if let Some(i) = ACTORS.iter().position(|a| *a == actor) {
            let bit = 1u32 << i;
            let before = if degraded {
                self.0.degraded.fetch_or(bit, Ordering::Relaxed)
            } else {
                self.0.degraded.fetch_and(!bit, Ordering::Relaxed)
            };
            // The request path calls this on every decision: touch the metrics registry
            // (a lookup by name and labels) only when the state changes.
            let changed = (before & bit != 0) != degraded;
            let first = self.0.reported.fetch_or(bit, Ordering::Relaxed) & bit == 0;
            if changed || first {
                // The state as it is now, in case another thread changed it meanwhile.
                let now = self.0.degraded.load(Ordering::Relaxed) & bit != 0;
                metrics::gauge!(crate::names::M_DEGRADED, "actor" => ACTORS[i]).set(if now { 1.0 } else { 0.0 });
            }
        }
    }

    /// Actors currently on their fallback.
    pub fn degraded(&self) -> Vec<&'static str> {
        let bits = self.0.degraded.load(Ordering::Relaxed);
        ACTORS.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, a)| *a).collect()
    }

    /// Records that the registry loaded from its source of truth.
    pub fn set_registry_loaded(&self) {
        self.0.registry_loaded.store(true, Ordering::Relaxed);
    }

    /// Whether the registry has loaded at least once.
    pub fn registry_loaded(&self) -> bool {
        self.0.registry_loaded.load(Ordering::Relaxed)
    }

    /// Records that consumers, keys and revocations loaded.
    pub fn set_auth_loaded(&self) {
        self.0.auth_loaded.store(true, Ordering::Relaxed);
    }

    /// Records whether the first JWKS fetch is still outstanding.
    pub fn set_jwks_pending(&self, pending: bool) {
        self.0.jwks_pending.store(pending, Ordering::Relaxed);
    }

    /// Ready to serve: registry and revocations loaded, the first JWKS fetch attempted,
    /// Redis reachable (or memory mode).
    pub fn ready(&self) -> bool {
        self.registry_loaded()
            && self.0.auth_loaded.load(Ordering::Relaxed)
            && !self.0.jwks_pending.load(Ordering::Relaxed)
            && self.redis_state() != RedisState::Down
    }

    /// Live nodes last counted in the membership set (at least 1).
    pub fn live_nodes(&self) -> u32 {
        self.0.live_nodes.load(Ordering::Relaxed).max(1)
    }

    /// Records the live node count.
    pub fn set_live_nodes(&self, n: u32) {
        self.0.live_nodes.store(n.max(1), Ordering::Relaxed);
    }

    /// Whether this node holds the leader lease (always true in memory mode).
    pub fn is_leader(&self) -> bool {
        self.0.leader.load(Ordering::Relaxed)
    }

    /// Records leadership.
    pub fn set_leader(&self, leader: bool) {
        self.0.leader.store(leader, Ordering::Relaxed);
    }
}
