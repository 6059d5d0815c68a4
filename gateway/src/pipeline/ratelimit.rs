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
    pub policies: HashMap<String, Policy>,
    /// Tier → policy name.
    pub tiers: HashMap<String, String>,
}

/// A policy with what the request path needs of it prepared once.
pub struct Policy {
    /// The policy.
    pub spec: PolicySpec,
    /// Its `RateLimit-Policy` item (`"name";q=100;w=60`).
    header: String,
    /// The same item as a header value, and `X-RateLimit-Limit`, made once (clones are free).
    header_value: Option<HeaderValue>,
    limit_value: HeaderValue,
    /// `gateway_ratelimit_decisions_total{policy, result}`: allowed, limited.
    decisions: [metrics::Counter; 2],
}

impl RateLimits {
    /// The rate-limit step over `limiter` with the configured policies and tiers.
    pub fn new(
        limiter: Limiter,
        policies: impl IntoIterator<Item = (String, PolicySpec)>,
        tiers: HashMap<String, String>,
    ) -> Self {
        let policies = policies
            .into_iter()
            .map(|(name, spec)| {
                let header = format!("\"{name}\";q={};w={}", spec.limit, spec.window.get().as_secs().max(1));
                let label = Arc::<str>::from(name.as_str());
                let decisions = ["allowed", "limited"].map(|result| {
                    metrics::counter!(crate::names::M_RATELIMIT_DECISIONS, "policy" => Arc::clone(&label), "result" => result)
                });
                let header_value = super::static_value(header.clone());
                let limit_value =
                    super::static_value(spec.limit.to_string()).unwrap_or_else(|| HeaderValue::from(spec.limit));
                (name, Policy { spec, header, header_value, limit_value, decisions })
            })
            .collect();
        Self { limiter, policies, tiers }
    }
}

/// Headers to add to the response of a limited request.
pub type QuotaHeaders = Vec<(HeaderName, HeaderValue)>;

fn key_value(spec: &PolicySpec, req: &HttpRequest, route: &Route, id: Option<&Identity>, addr: &ClientAddr) -> String {
    let ip = || addr.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
    let part = |p: &KeyPart| match p {
        KeyPart::Consumer => id.map(|i| i.consumer.clone()).unwrap_or_else(ip),
        KeyPart::Ip => ip(),
        KeyPart::Route => route.name.to_string(),
        KeyPart::Header(h) => req
            .headers()
            .get(h.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| "-".into()),
    };
    match spec.key.0.as_slice() {
        [one] => part(one),
        parts => parts.iter().map(part).collect::<Vec<_>>().join("+"),
    }
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
    let specs: Vec<(&str, &Policy, String)> = chosen
        .iter()
        .filter_map(|n| {
            limits.policies.get(n.as_str()).map(|p| (n.as_str(), p, key_value(&p.spec, req, route, identity, addr)))
        })
        .collect();
    if specs.is_empty() {
        return Ok(None);
    }
    let checks: Vec<Check<'_>> = specs.iter().map(|(n, p, k)| Check { policy: n, spec: &p.spec, key: k }).collect();
    let outcome = match limits.limiter.check(&checks).await {
        Ok(o) => o,
        Err(LimitError::Unavailable) => {
            return Err((GatewayError::RedisUnavailable("rate limiter storage is unavailable".into()), Vec::new()));
        }
    };
    for ((_, policy, _), v) in specs.iter().zip(&outcome.verdicts) {
        policy.decisions[usize::from(!v.allowed)].increment(1);
    }
    // Report the policy with the fewest requests left.
    let (i, tightest) =
        outcome.verdicts.iter().enumerate().min_by_key(|(_, v)| v.remaining).map(|(i, v)| (i, *v)).unwrap_or_default();
    let (name, policy, _) = &specs[i];
    let reset = secs(tightest.reset_ms);
    let policy_header = match specs.as_slice() {
        [(_, only, _)] => only.header_value.clone(),
        all => {
            HeaderValue::from_str(&all.iter().map(|(_, p, _)| p.header.as_str()).collect::<Vec<_>>().join(", ")).ok()
        }
    };
    let mut headers: QuotaHeaders = Vec::with_capacity(5);
    headers.push((HeaderName::from_static("x-ratelimit-limit"), policy.limit_value.clone()));
    headers.push((HeaderName::from_static("x-ratelimit-remaining"), HeaderValue::from(tightest.remaining)));
    headers.push((HeaderName::from_static("x-ratelimit-reset"), HeaderValue::from(reset)));
    if let Some(v) = policy_header {
        headers.push((HeaderName::from_static("ratelimit-policy"), v));
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{name}\";r={};t={reset}", tightest.remaining)) {
        headers.push((HeaderName::from_static("ratelimit"), v));
    }
    if outcome.allowed {
        Ok(Some(headers))
    } else {
        let retry = outcome.verdicts.iter().filter(|v| !v.allowed).map(|v| secs(v.retry_ms)).max().unwrap_or(1);
        Err((GatewayError::RateLimited { retry_after: retry }, headers))
    }
}
