//! `Ctx`: one routed request as the phases see and shape it.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::HeaderValue;
use actix_web::{HttpRequest, web};
use actors::analytics::LimiterResult;
use actors::auth::Identity;
use actors::registry::Route;

use super::cache::CacheStatus;
use super::forwarded::ClientAddr;
use super::limits::Limits;
use super::ratelimit::QuotaHeaders;
use crate::otlp::{RequestSpans, Step};
use crate::proxy::Outcome;

/// One routed request: what it is (filled in before the policies run) and what the phases
/// found out (filled in as they run). Decoration and the log read it at the end.
pub struct Ctx<'r> {
    /// The client request.
    pub req: &'r HttpRequest,
    /// Its `X-Request-Id` (the client's valid one, or generated).
    pub request_id: HeaderValue,
    /// When it arrived.
    pub started: Instant,
    /// The normalized client path (dot segments resolved).
    pub path: Cow<'r, str>,
    /// The matched route.
    pub route: Arc<Route>,
    /// The trusted client address and forwarding values.
    pub addr: ClientAddr,
    /// The node's limits with the service's `max_body`.
    pub limits: Limits,
    /// The client's body, until the phase that consumes it takes it.
    pub payload: Option<web::Payload>,
    /// The verified caller (`None`: anonymous, `auth = none`).
    pub identity: Option<Identity>,
    /// Rate-limit headers for the answer (`None`: the service is not limited).
    pub quota: Option<QuotaHeaders>,
    /// What the rate limiter said.
    pub limiter: LimiterResult,
    /// What the cache did (`None`: the service does not cache, or the cache never ran).
    pub cache: Option<CacheStatus>,
    /// What happened upstream.
    pub upstream: Outcome,
    /// Span timings (`None`: traces are not exported).
    pub spans: Option<Box<RequestSpans>>,
}

impl<'r> Ctx<'r> {
    /// The start of a step, read only when traces are exported (a clock read saved).
    pub fn clock(&self) -> Option<Instant> {
        self.spans.is_some().then(Instant::now)
    }

    /// Records a child span for `step` from `from` until now (no-op without tracing).
    pub fn step(&mut self, step: Step, from: Option<Instant>) {
        if let (Some(s), Some(from)) = (&mut self.spans, from) {
            s.step(step, from);
        }
    }

    /// `X-Cache-Status` of the answer: `None` when the service does not cache (or the
    /// node has no cache); `BYPASS` when the cache never ran (refused before it).
    pub fn cache_status(&self, node: &super::Pipeline) -> Option<CacheStatus> {
        (self.route.spec.cache.is_some() && node.cache.is_some()).then(|| self.cache.unwrap_or(CacheStatus::Bypass))
    }

    /// The consumer id of the verified caller.
    pub fn consumer(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.consumer.as_str())
    }
}
