//! Header and metric names, in one place.

use actix_web::http::header::HeaderName;

/// Request id echoed on every response and sent upstream.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Node that proxied the response.
pub static X_GATEWAY_NODE: HeaderName = HeaderName::from_static("x-gateway-node");
/// Client address chain.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// Client-facing scheme.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// Client-facing host.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// The trusted client address.
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// RFC 7239 forwarding header (stripped from untrusted peers).
pub static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
/// Verified consumer id sent upstream (client copies are stripped).
pub static X_CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");
/// Verified consumer tier sent upstream (client copies are stripped).
pub static X_CONSUMER_TIER: HeaderName = HeaderName::from_static("x-consumer-tier");
/// Makes enqueueing a job idempotent per consumer (SPEC §9).
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Legacy keep-alive header that is hop-by-hop.
pub static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
/// Non-standard hop-by-hop header some clients send.
pub static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// W3C trace context (continued from the client, sent upstream with our span as parent).
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Cache outcome on every response of a caching service.
pub static X_CACHE_STATUS: HeaderName = HeaderName::from_static("x-cache-status");

/// Requests answered, by service, method and status.
pub const M_REQUESTS: &str = "gateway_requests_total";
/// Total time in the gateway (histogram, seconds).
pub const M_REQUEST_DURATION: &str = "gateway_request_duration_seconds";
/// Time until the upstream's response head (histogram, seconds).
pub const M_UPSTREAM_DURATION: &str = "gateway_upstream_duration_seconds";
pub use actors::names::{
    M_DEGRADED, M_QUEUE_DEPTH, M_QUEUE_JOBS, M_RATELIMIT_DECISIONS, M_REDIS_DURATION, M_REDIS_ERRORS,
    M_REGISTRY_VERSION,
};
/// actix-http errors caused by malformed client requests (logged as a summary only).
pub const M_CLIENT_PROTOCOL_ERRORS: &str = "gateway_client_protocol_errors_total";
/// Cache lookups by service and result (`hit` / `miss` / `bypass` / `stale`).
pub const M_CACHE_REQUESTS: &str = "gateway_cache_requests_total";
/// Access-log lines dropped because the writer fell behind or the output failed.
pub const M_ACCESS_LOG_DROPPED: &str = "gateway_access_log_dropped_total";
