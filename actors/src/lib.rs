//! The gateway's actors, their request-path handles, and their Redis and memory backends.
//!
//! Each concern has one folder: the actor and its handle in `mod.rs`, the Redis side in
//! `store.rs`; `redis/` is the shared connection, key, script and event layer. Read-mostly
//! state is published as a lock-free snapshot (`snapshot::View`); this crate has no
//! actix-web types. `CircuitBreaker`, `CacheManager` and `RateLimiter` run under
//! `supervise::start`: a panic restarts them in place behind the same address.
//!
//! The pure vocabulary (config shapes, units, balancing, snapshots, the cache's HTTP rules
//! and record format, the breaker state machine) lives in the `domain` crate. It is
//! re-exported here at its old paths (`actors::spec`, `actors::units`, `actors::balancer`,
//! `actors::snapshot`, `actors::cache::{entry, key, policy}`), so dependents need not name
//! `domain`.

pub use domain::{balancer, hex, snapshot, spec, units};

pub mod analytics;
pub mod auth;
pub mod cache;
pub mod circuit;
pub mod health_check;
pub mod membership;
pub mod names;
pub mod queue;
pub mod ratelimit;
pub mod redis;
pub mod registry;
pub mod status;
pub mod supervise;
#[cfg(test)]
mod test_redis;

/// Current time as RFC 3339 with milliseconds (UTC).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Current time in whole seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    now_unix_ms() / 1000
}

/// Current time in milliseconds since the Unix epoch.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
