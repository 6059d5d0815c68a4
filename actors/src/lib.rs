//! The gateway's actors and the vocabulary they share.
//!
//! Each actor owns one concern and its storage (memory, or Redis behind the same
//! messages). Read-mostly state is published as a lock-free snapshot (`snapshot::View`);
//! this crate has no actix-web types.

pub mod analytics;
pub mod auth;
pub mod balancer;
pub mod cache;
pub mod circuit;
pub mod health_check;
pub mod membership;
pub mod names;
pub mod queue;
pub mod ratelimit;
pub mod redis;
pub mod registry;
pub mod snapshot;
pub mod spec;
pub mod status;
pub mod units;

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
