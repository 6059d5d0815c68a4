//! The rate-limit step: picks the policies (the service's, or the one its consumer's tier
//! maps to), builds each policy's key from the request, asks the limiter once for all of
//! them, and prepares the `X-RateLimit-*` and IETF `RateLimit-Policy` / `RateLimit` headers
//! (reporting the policy with the fewest requests left).

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header::{HeaderName, HeaderValue};
use actors::analytics::LimiterResult;
use actors::auth::Identity;
use actors::ratelimit::{Check, LimitError, Limiter, PolicyRegistry, RatePolicy};
use actors::registry::{Route, RouteLimits};
use actors::spec::{KeyPart, PolicySpec};

use super::forwarded::ClientAddr;
use super::phase::{Flow, Policy};
use super::{Ctx, Pipeline};
use crate::error::GatewayError;
use crate::otlp::Step;

/// Rate-limit settings of the node.
pub struct RateLimits {
    /// The limiter.
    pub limiter: Limiter,
    /// Tier → its policy (resolved at start; the config refuses unknown names).
    pub tiers: HashMap<String, Arc<RatePolicy>>,
}

impl RateLimits {
    /// The rate-limit step over `limiter`, with tiers resolved against `policies`. A tier
    /// naming an unknown policy is an error (the config check refuses it first).
    pub fn new(limiter: Limiter, policies: &PolicyRegistry, tiers: HashMap<String, String>) -> Result<Self, String> {
        let tiers = tiers
            .into_iter()
            .map(|(tier, name)| match policies.get(&name) {
                Some(p) => Ok((tier, Arc::clone(p))),
                None => Err(format!("tier {tier:?} names unknown rate-limit policy {name:?}")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { limiter, tiers })
    }
}

/// The rate-limit policy: one limiter call for every policy that applies, sets
/// `cx.quota` and `cx.limiter`.
pub struct RateLimit;

impl Policy for RateLimit {
    async fn request(node: &Pipeline, cx: &mut Ctx<'_>) -> Result<Flow, GatewayError> {
        let Some(rl) = &node.rate_limits else { return Ok(Flow::Continue) };
        let started = cx.clock();
        let decision = check(rl, cx.req, &cx.route, cx.identity.as_ref(), &cx.addr).await;
        if !cx.route.spec.rate_limit.0.is_empty() {
            cx.step(Step::Limiter, started);
        }
        match decision {
            Ok(quota) => {
                cx.limiter = if quota.is_some() { LimiterResult::Allowed } else { LimiterResult::Unlimited };
                cx.quota = quota;
                Ok(Flow::Continue)
            }
            Err((error, quota)) => {
                cx.limiter = match error {
                    GatewayError::RateLimited { .. } => LimiterResult::Limited,
                    _ => LimiterResult::Unavailable,
                };
                cx.quota = Some(quota);
                Err(error)
            }
        }
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
    let own = match &route.limits {
        RouteLimits::Policies(list) if list.is_empty() => return Ok(None),
        RouteLimits::Policies(list) => list,
        RouteLimits::Unknown(name) => {
            return Err((
                GatewayError::PolicyUnavailable(format!("rate-limit policy {name:?} is not defined on this node")),
                Vec::new(),
            ));
        }
    };
    let tiered = identity.and_then(|i| i.tier.as_ref()).and_then(|t| limits.tiers.get(t));
    let chosen: &[Arc<RatePolicy>] = match tiered {
        Some(p) => std::slice::from_ref(p),
        None => own,
    };
    let specs: Vec<(&RatePolicy, String)> =
        chosen.iter().map(|p| (&**p, key_value(&p.spec, req, route, identity, addr))).collect();
    let checks: Vec<Check<'_>> = specs.iter().map(|(p, k)| Check { policy: &p.name, spec: &p.spec, key: k }).collect();
    let outcome = match limits.limiter.check(&checks).await {
        Ok(o) => o,
        Err(LimitError::Unavailable) => {
            return Err((GatewayError::RedisUnavailable("rate limiter storage is unavailable".into()), Vec::new()));
        }
    };
    for ((policy, _), v) in specs.iter().zip(&outcome.verdicts) {
        policy.count(v.allowed);
    }
    // Report the policy with the fewest requests left.
    let (i, tightest) =
        outcome.verdicts.iter().enumerate().min_by_key(|(_, v)| v.remaining).map(|(i, v)| (i, *v)).unwrap_or_default();
    let (policy, _) = &specs[i];
    let reset = secs(tightest.reset_ms);
    let policy_header = match specs.as_slice() {
        [(only, _)] => only.header_value.clone(),
        all => HeaderValue::from_str(&all.iter().map(|(p, _)| p.header.as_str()).collect::<Vec<_>>().join(", ")).ok(),
    };
    let mut headers: QuotaHeaders = Vec::with_capacity(5);
    headers.push((HeaderName::from_static("x-ratelimit-limit"), policy.limit_value.clone()));
    headers.push((HeaderName::from_static("x-ratelimit-remaining"), HeaderValue::from(tightest.remaining)));
    headers.push((HeaderName::from_static("x-ratelimit-reset"), HeaderValue::from(reset)));
    if let Some(v) = policy_header {
        headers.push((HeaderName::from_static("ratelimit-policy"), v));
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\";r={};t={reset}", policy.name, tightest.remaining)) {
        headers.push((HeaderName::from_static("ratelimit"), v));
    }
    if outcome.allowed {
        Ok(Some(headers))
    } else {
        let retry = outcome.verdicts.iter().filter(|v| !v.allowed).map(|v| secs(v.retry_ms)).max().unwrap_or(1);
        Err((GatewayError::RateLimited { retry_after: retry }, headers))
    }
}
