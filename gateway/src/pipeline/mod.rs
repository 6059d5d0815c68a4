//! The request pipeline of SPEC §4 as explicit phases over one request context (`Ctx`),
//! in the manner of pingora's `ProxyHttp`:
//!
//! 1. request filter and route (`route`): header limits, loop detection, the route;
//! 2. the policies' request phases, in the order of `Policies` (authenticate, rate
//!    limit, queue, ...), each going on or answering;
//! 3. the upstream phase (`upstream`): the cache, else the proxy;
//! 4. the policies' response phases (reverse order);
//! 5. decorate: `Via`, `X-Gateway-Node`, `X-Request-Id`, quota and cache headers, once,
//!    whoever answered;
//! 6. log (`observe`): metrics, access log, analytics, traces.
//!
//! A step answers with a response or a `GatewayError`, which becomes the JSON of SPEC §4.

pub mod auth;
pub mod cache;
mod context;
pub mod cors;
pub mod expect;
pub mod forwarded;
pub mod ip;
pub mod limits;
pub mod logout;
pub mod methods;
mod normalize;
mod observe;
mod phase;
pub mod queue;
pub mod ratelimit;
pub mod request_id;
mod route;
mod upstream;

pub use context::Ctx;
pub use phase::Flow;

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use actors::analytics::{Analytics, LimiterResult};
use actors::auth::AuthView;
use actors::registry::RoutesView;
use ipnet::IpNet;

use crate::error::Rejected;
use crate::names;
use crate::otlp::RequestSpans;
use crate::proxy::{self, Outcome};
use limits::Limits;
use phase::Policy;

/// The policies, in the order their request phases run after routing (their response
/// phases run in reverse). Adding a policy: a module implementing `phase::Policy`, and
/// its type in this list. Why this order: docs/decisions/pipeline-phases.md ("Where the
/// access policies go").
type Policies = (ip::IpRules, cors::Cors, methods::Methods, auth::Authenticate, ratelimit::RateLimit, queue::Enqueue);

/// Shared, read-only request-path context (one per node, shared by all workers).
pub struct Pipeline {
    /// This node's id.
    pub node_id: Arc<str>,
    /// `X-Gateway-Node` value.
    pub node_header: HeaderValue,
    /// `Via` value (`1.1 <node>`).
    pub via: HeaderValue,
    /// Current route table.
    pub routes: RoutesView,
    /// Request limits.
    pub limits: Limits,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The access log (`None`: off).
    pub access_log: Option<crate::access_log::AccessLog>,
    /// Verification inputs (keys, later consumers and revocations).
    pub auth: AuthView,
    /// Header carrying API keys.
    pub api_key_header: HeaderName,
    /// The JWKS fetcher, when `auth.jwt.jwks_url` is set.
    pub jwks: Option<actix::Addr<crate::jwks::JwksFetcher>>,
    /// Rate limiting (policies, tiers, the limiter).
    pub rate_limits: Option<ratelimit::RateLimits>,
    /// Per-instance circuit breakers.
    pub breakers: Option<actors::circuit::Breakers>,
    /// The response cache (services with `[services.cache]`).
    pub cache: Option<cache::CacheLayer>,
    /// The job queue of services with `[services.queue]`.
    pub queues: Option<actors::queue::Queues>,
    /// Usage analytics (a no-op handle when disabled).
    pub analytics: Analytics,
    /// OTLP trace export, when `[telemetry] otlp_endpoint` is set.
    pub otlp: Option<crate::otlp::Exporter>,
}

impl Pipeline {
    /// Builds the context for node `node_id`.
    pub fn new(
        node_id: &str,
        routes: RoutesView,
        limits: Limits,
        trusted_proxies: Vec<IpNet>,
        access_log: Option<crate::access_log::AccessLog>,
        auth: AuthView,
        api_key_header: HeaderName,
    ) -> Self {
        let node_header = static_value(node_id.to_string()).unwrap_or_else(|| HeaderValue::from_static("gateway"));
        let via = static_value(format!("1.1 {node_id}")).unwrap_or_else(|| HeaderValue::from_static("1.1 gateway"));
        Self {
            node_id: node_id.into(),
            node_header,
            via,
            routes,
            limits,
            trusted_proxies,
            access_log,
            auth,
            api_key_header,
            jwks: None,
            rate_limits: None,
            breakers: None,
            cache: None,
            queues: None,
            analytics: Analytics::default(),
            otlp: None,
        }
    }
}

/// A header value over a string that lives as long as the process, so that cloning it
/// (twice per request for `Via` and `X-Gateway-Node`) touches no reference count. Only for
/// values made once per node start (the node id never changes at run time).
fn static_value(s: String) -> Option<HeaderValue> {
    // `from_static` accepts visible ASCII and tabs only (and panics otherwise).
    if !s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return HeaderValue::from_str(&s).ok();
    }
    Some(HeaderValue::from_static(Box::leak(s.into_boxed_str())))
}

/// actix-web handler for every proxied path: runs the phases and answers.
pub async fn entry(
    req: HttpRequest,
    payload: web::Payload,
    node: web::Data<Pipeline>,
    client: web::Data<proxy::Upstream>,
) -> HttpResponse {
    let started = Instant::now();
    let request_id = request_id::of(&req);
    let spans =
        node.otlp.is_some().then(|| Box::new(RequestSpans::start(req.headers().get(&names::TRACEPARENT), started)));
    let (path, route) = match route::admit(&node, req.headers(), req.uri(), req.path()) {
        Ok(routed) => routed,
        Err(error) => {
            let mut res = Rejected { request_id: request_id.clone(), error }.to_response();
            observe::unrouted(&node, &req, &request_id, spans, &res, started);
            res.headers_mut().insert(names::X_REQUEST_ID.clone(), request_id);
            return res;
        }
    };
    let mut cx = Ctx {
        addr: forwarded::client_addr(&req, &node.trusted_proxies),
        limits: node.limits.for_service(&route.spec),
        req: &req,
        request_id,
        started,
        path,
        route,
        payload: Some(payload),
        identity: None,
        quota: None,
        limiter: LimiterResult::default(),
        cache: None,
        upstream: Outcome::default(),
        spans,
    };
    let (mut res, relayed) = match run(&node, &client, &mut cx).await {
        Ok(answer) => answer,
        Err(error) => (Rejected { request_id: cx.request_id.clone(), error }.to_response(), false),
    };
    Policies::response(&node, &cx, &mut res);
    decorate(&node, &mut cx, &mut res, relayed);
    observe::record(&node, &mut cx, &res, relayed);
    res
}

/// The policies' request phases, then the upstream phase: the answer, and whether it is
/// the upstream's (or the cache's copy of one) rather than the gateway's own.
async fn run(
    node: &web::Data<Pipeline>,
    client: &web::Data<proxy::Upstream>,
    cx: &mut Ctx<'_>,
) -> Result<(HttpResponse, bool), crate::error::GatewayError> {
    if let Flow::Respond(res) = Policies::request(node, cx).await? {
        return Ok((res, false));
    }
    upstream::serve(node, client, cx).await.map(|res| (res, true))
}

/// The decorate phase: the headers the gateway adds to every answer of a routed request.
fn decorate(node: &Pipeline, cx: &mut Ctx<'_>, res: &mut HttpResponse, relayed: bool) {
    let headers = res.headers_mut();
    if relayed {
        proxy::append_via(headers, &node.via);
    }
    headers.insert(names::X_REQUEST_ID.clone(), cx.request_id.clone());
    for (name, value) in cx.quota.take().into_iter().flatten() {
        headers.insert(name, value);
    }
    headers.insert(names::X_GATEWAY_NODE.clone(), node.node_header.clone());
    if let Some(status) = cx.cache_status(node) {
        headers.insert(names::X_CACHE_STATUS.clone(), HeaderValue::from_static(status.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::static_value;

    #[test]
    fn static_values_keep_the_text_and_refuse_what_a_header_cannot_carry() {
        assert_eq!(static_value("1.1 node-a".into()).expect("valid").as_bytes(), b"1.1 node-a");
        assert_eq!(static_value("nœud".into()).expect("obs-text is allowed").as_bytes(), "nœud".as_bytes());
        assert!(static_value("bad\nvalue".into()).is_none());
    }
}
