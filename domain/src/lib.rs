//! The gateway's vocabulary, pure: what a service, a policy, a duration or a cache
//! entry *is*, and the rules that need no I/O — endpoint selection, the breaker state
//! machine, HTTP cache freshness.
//!
//! Invariant: nothing here does I/O, spawns, or knows actix or Redis. The `actors` crate
//! (mailboxes and Redis) and the `gateway` crate (HTTP) build on these types; `actors`
//! re-exports every module at its old path (`actors::spec`, `actors::cache::policy`, …).

pub mod balancer;
pub mod cache;
pub mod circuit;
pub mod snapshot;
pub mod spec;
pub mod units;

/// Lower-case hex of `bytes` (ids, digests, generated secrets).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}
