//! Upper bounds of the node-level durations and sizes (the table is in ARCHITECTURE.md,
//! "Bounds"). Parsing already refuses durations above a year and sizes above 64 GiB;
//! these are the tighter bounds of fields whose meaning calls for one. Services are
//! bounded by `ServiceSpec::validate`.

use actors::spec::FieldError;
use actors::units::bounds::{MAX_BODY, MAX_HEADER_BYTES, MAX_PERIOD, MAX_REDIS_TIMEOUT, MAX_TIMEOUT};
use actors::units::{at_most, size_at_most};

use super::Config;

/// Checks every bounded field of `c`; the error names the field.
pub fn check(c: &Config) -> Result<(), FieldError> {
    let n = &c.node;
    size_at_most("node.max_body", n.max_body, MAX_BODY)?;
    size_at_most("node.max_header_bytes", n.max_header_bytes, MAX_HEADER_BYTES)?;
    at_most("node.request_timeout", n.request_timeout.get(), MAX_TIMEOUT)?;
    at_most("node.shutdown_grace", n.shutdown_grace.get(), MAX_TIMEOUT)?;
    at_most("node.keep_alive", n.keep_alive.get(), MAX_TIMEOUT)?;
    if let Some(r) = &c.redis {
        at_most("redis.connect_timeout", r.connect_timeout.get(), MAX_REDIS_TIMEOUT)?;
        at_most("redis.command_timeout", r.command_timeout.get(), MAX_REDIS_TIMEOUT)?;
    }
    if let Some(j) = &c.auth.jwt {
        at_most("auth.jwt.leeway", j.leeway.get(), MAX_TIMEOUT)?;
        at_most("auth.jwt.jwks_refresh", j.jwks_refresh.get(), MAX_PERIOD)?;
    }
    at_most("cache.l1_ttl", c.cache.l1_ttl.get(), MAX_PERIOD)?;
    size_at_most("cache.max_object", c.cache.max_object, MAX_BODY)?;
    size_at_most("cache.compress_above", c.cache.compress_above, MAX_BODY)?;
    Ok(())
}
