//! The rate-limit step: picks the policies (the service's, or the one its consumer's tier
//! maps to), builds each policy's key from the request, asks the limiter once for all of
//! them, and prepares the `X-RateLimit-*` and IETF `RateLimit-Policy` / `RateLimit` headers
//! (reporting the policy with the fewest requests left).

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header::{HeaderName, HeaderValue};
use actors::auth::Identity;
use actors::ratelimit::{Check, LimitError, Limiter};
use actors::registry::Route;
use actors::spec::{KeyPart, PolicySpec};

use super::forwarded::ClientAddr;
use crate::error::GatewayError;

/// Rate-limit settings of the node.
pub struct RateLimits {
    /// The limiter.
    pub limiter: Limiter,
    /// Policies by name.
    pub policies: HashMap<String, PolicySpec>,
    /// Tier → policy name.
    pub tiers: HashMap<String, String>,
}

/// Headers to add to the response of a limited request.
pub type QuotaHeaders = Vec<(HeaderName, HeaderValue)>;

fn key_value(spec: &PolicySpec, req: &HttpRequest, route: &Route, id: Option<&Identity>, addr: &ClientAddr) -> String {
    let ip = || addr.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
    let parts: Vec<String> = spec
        .key
        .0
        .iter()
        .map(|p| match p {
            KeyPart::Consumer => id.map(|i| i.consumer.clone()).unwrap_or_else(ip),
            KeyPart::Ip => ip(),
            KeyPart::Route => route.name.to_string(),
            KeyPart::Header(h) => req
                .headers()
                .get(h.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .unwrap_or_else(|| "-".into()),
        })
        .collect();
    parts.join("+")
}

fn secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

/// Decides the request; `Ok(None)` when the service is not limited.
pub async fn check(
    limits: &RateLimits,
    req: &HttpRequest,
    route: &Route,
    identity: Option<&Identity>,
    addr: &ClientAddr,
) -> Result<Option<QuotaHeaders>, (GatewayError, QuotaHeaders)> {
    let names = &route.spec.rate_limit.0;
    if names.is_empty() {
        return Ok(None);
    }
    let tiered = identity.and_then(|i| i.tier.as_ref()).and_then(|t| limits.tiers.get(t));
    let chosen: Vec<&String> = match tiered {
        Some(p) => vec![p],
        None => names.iter().collect(),
    };
    let specs: Vec<(&str, &PolicySpec, String)> = chosen
        .iter()
        .filter_map(|n| {
            limits.policies.get(n.as_str()).map(|s| (n.as_str(), s, key_value(s, req, route, identity, addr)))
        })
        .collect();
    if specs.is_empty() {
        return Ok(None);
    }
    let checks: Vec<Check<'_>> = specs.iter().map(|(p, s, k)| Check { policy: p, spec: s, key: k }).collect();
    let outcome = match limits.limiter.check(&checks).await {
        Ok(o) => o,
        Err(LimitError::Unavailable) => {
            return Err((GatewayError::RedisUnavailable("rate limiter storage is unavailable".into()), Vec::new()));
        }
    };
    for ((policy, _, _), v) in specs.iter().zip(&outcome.verdicts) {
        let result: &'static str = if v.allowed { "allowed" } else { "limited" };
        metrics::counter!(crate::names::M_RATELIMIT_DECISIONS, "policy" => Arc::<str>::from(*policy), "result" => result)
            .increment(1);
    }
    // Report the policy with the fewest requests left.
    let (i, tightest) =
        outcome.verdicts.iter().enumerate().min_by_key(|(_, v)| v.remaining).map(|(i, v)| (i, *v)).unwrap_or_default();
    let (name, spec, _) = &specs[i];
    let reset = secs(tightest.reset_ms);
    let policy_header = specs
        .iter()
        .map(|(n, s, _)| format!("\"{n}\";q={};w={}", s.limit, s.window.get().as_secs().max(1)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut headers: QuotaHeaders = Vec::with_capacity(5);
    let mut add = |n: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.push((HeaderName::from_static(n), v));
        }
    };
    add("x-ratelimit-limit", spec.limit.to_string());
    add("x-ratelimit-remaining", tightest.remaining.to_string());
    add("x-ratelimit-reset", reset.to_string());
    add("ratelimit-policy", policy_header);
    add("ratelimit", format!("\"{name}\";r={};t={reset}", tightest.remaining));
    if outcome.allowed {
        Ok(Some(headers))
    } else {
        let retry = outcome.verdicts.iter().filter(|v| !v.allowed).map(|v| secs(v.retry_ms)).max().unwrap_or(1);
        Err((GatewayError::RateLimited { retry_after: retry }, headers))
    }
}
