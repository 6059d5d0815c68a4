//! The request pipeline of SPEC §4, top to bottom. Each step returns
//! `Result<_, GatewayError>`; the entry point turns errors into JSON and records the
//! outcome (metrics, access log) once.
//!
//! Steps that need later actors plug in between routing and the balancer, in this
//! order: auth, rate limit, queue (`crate::queue`), cache.

pub mod cache;
pub mod expect;
pub mod forwarded;
pub mod limits;
pub mod logout;
mod normalize;
mod observe;
pub mod ratelimit;
pub mod request_id;

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, Uri};
use actix_web::{HttpRequest, HttpResponse, web};
use actors::analytics::{Analytics, LimiterResult};
use actors::auth::{AuthError, AuthView, Identity, UNKNOWN_KID};
use actors::registry::{Route, RoutesView};
use actors::spec::{AuthMode, HashKey};
use ipnet::IpNet;

use crate::error::{GatewayError, Rejected};
use crate::names;
use crate::otlp::{RequestSpans, Step};
use crate::proxy::{self, Forward, Outcome};
use forwarded::ClientAddr;
use limits::Limits;

/// Longest a request waits for a JWKS refetch triggered by an unknown `kid`.
const JWKS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

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
    /// Write one access-log line per request.
    pub access_log: bool,
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
        access_log: bool,
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

/// What one request did, for metrics and the access log.
#[derive(Default)]
pub struct Trace {
    /// Matched service.
    pub service: Option<Arc<str>>,
    /// Verified consumer.
    pub consumer: Option<String>,
    /// Rate-limit headers for the response.
    pub quota: Option<ratelimit::QuotaHeaders>,
    /// Upstream outcome.
    pub upstream: Outcome,
    /// Whether the service caches (every response then carries `X-Cache-Status`).
    pub cached: bool,
    /// What the cache step did.
    pub cache: Option<cache::CacheStatus>,
    /// What the rate limiter said.
    pub limiter: LimiterResult,
    /// Span timings, when traces are exported.
    pub spans: Option<Box<RequestSpans>>,
}

impl Trace {
    /// The start of a step, read only when traces are exported (a clock read saved).
    fn clock(&self) -> Option<Instant> {
        self.spans.is_some().then(Instant::now)
    }

    /// Records a child span for `step` from `from` until now (no-op without tracing).
    fn step(&mut self, step: Step, from: Option<Instant>) {
        if let (Some(s), Some(from)) = (&mut self.spans, from) {
            s.step(step, from);
        }
    }
}

/// actix-web handler for every proxied path.
pub async fn entry(
    req: HttpRequest,
    payload: web::Payload,
    cx: web::Data<Pipeline>,
    client: web::Data<proxy::Upstream>,
) -> HttpResponse {
    let started = Instant::now();
    let request_id = request_id::of(&req);
    let mut trace = Trace::default();
    if cx.otlp.is_some() {
        trace.spans = Some(Box::new(RequestSpans::start(req.headers().get(&names::TRACEPARENT), started)));
    }
    let mut response = match run(&req, payload, &cx, &client, &request_id, started, &mut trace).await {
        Ok(res) => res,
        Err(error) => Rejected { request_id: request_id.clone(), error }.to_response(),
    };
    observe::record(&cx, &req, &request_id, &mut trace, response.status(), started);
    let headers = response.headers_mut();
    headers.insert(names::X_REQUEST_ID.clone(), request_id);
    for (name, value) in trace.quota.take().into_iter().flatten() {
        headers.insert(name, value);
    }
    if trace.service.is_some() {
        headers.insert(names::X_GATEWAY_NODE.clone(), cx.node_header.clone());
    }
    if trace.cached {
        let status = trace.cache.unwrap_or(cache::CacheStatus::Bypass);
        headers.insert(names::X_CACHE_STATUS.clone(), HeaderValue::from_static(status.as_str()));
    }
    response
}

async fn run(
    req: &HttpRequest,
    payload: web::Payload,
    cx: &web::Data<Pipeline>,
    client: &web::Data<proxy::Upstream>,
    request_id: &HeaderValue,
    started: Instant,
    trace: &mut Trace,
) -> Result<HttpResponse, GatewayError> {
    limits::check_headers(req, &cx.limits)?;
    if passed_through(req.headers(), &cx.node_id) {
        return Err(GatewayError::LoopDetected(cx.node_id.to_string()));
    }
    let path = normalize::path(req.path());
    let route = route(req, &path, &cx.routes)?;
    trace.service = Some(Arc::clone(&route.name));
    trace.cached = route.spec.cache.is_some() && cx.cache.is_some();
    let auth_started = trace.clock();
    let identity = match (authenticate(req, &route, cx), &cx.jwks) {
        // A kid nobody knows yet: the identity provider may have rotated its keys. Refetch
        // the JWKS (at most once per few seconds; concurrent callers share it) and retry.
        (Err(GatewayError::Unauthorized(AuthError::InvalidToken(UNKNOWN_KID))), Some(jwks)) => {
            let _ = jwks.send(crate::jwks::RefreshJwks::UnknownKid).timeout(JWKS_WAIT).await;
            authenticate(req, &route, cx)
        }
        (result, _) => result,
    };
    trace.step(Step::Auth, auth_started);
    let identity = identity?;
    trace.consumer = identity.as_ref().map(|i| i.consumer.clone());
    let addr = forwarded::client_addr(req, &cx.trusted_proxies);
    if let Some(rl) = &cx.rate_limits {
        let limit_started = trace.clock();
        let decision = ratelimit::check(rl, req, &route, identity.as_ref(), &addr).await;
        if !route.spec.rate_limit.0.is_empty() {
            trace.step(Step::Limiter, limit_started);
        }
        match decision {
            Ok(quota) => {
                trace.limiter = if quota.is_some() { LimiterResult::Allowed } else { LimiterResult::Unlimited };
                trace.quota = quota;
            }
            Err((error, quota)) => {
                trace.limiter = match error {
                    GatewayError::RateLimited { .. } => LimiterResult::Limited,
                    _ => LimiterResult::Unavailable,
                };
                trace.quota = Some(quota);
                return Err(error);
            }
        }
    }
    let body = limits::body_kind(req, &cx.limits)?;
    let hash_key = hash_key(req, &route, &addr, identity.as_ref());
    let upstream_path = route.upstream_path(&path);
    let traceparent = trace.spans.as_ref().map(|s| s.upstream_header.clone());
    let forward = Forward {
        req,
        route: &route,
        upstream_path,
        addr: &addr,
        request_id,
        via: &cx.via,
        hash_key: hash_key.as_deref(),
        limits: &cx.limits,
        started,
        identity: identity.as_ref(),
        breakers: cx.breakers.as_ref(),
        conditional: None,
        traceparent: traceparent.as_ref(),
    };
    if let (Some(spec), Some(queues)) = (crate::queue::matching(&route, req, &path), &cx.queues) {
        return crate::queue::enqueue(&forward, spec, queues, payload, body).await;
    }
    if let (Some(layer), Some(spec)) = (&cx.cache, route.spec.cache.as_ref()) {
        let step = cache::Step { fw: forward, path: &path, spec, payload, kind: body };
        let refresh = || cache::Refresh {
            cx: cx.clone(),
            client: client.clone(),
            req: req.clone(),
            route: Arc::clone(&route),
            upstream_path: upstream_path.to_string(),
            addr: addr.clone(),
            request_id: request_id.clone(),
            hash_key: hash_key.clone(),
            identity: identity.clone(),
        };
        let cache_started = trace.clock();
        let served = cache::serve(layer, step, client, &mut trace.upstream, &mut trace.cache, refresh).await;
        trace.step(Step::Cache, cache_started);
        return served;
    }
    proxy::forward(forward, Some(payload), body, client, &mut trace.upstream).await
}

/// Whether `Via` names this node as a hop already (`1.1 <node-id>`, as the proxy adds
/// it): the request went out through this node and came back. Each hop's `received-by`
/// is compared whole, so `gw-1` is not found in `1.1 gw-10`. Requests without `Via` pay
/// one header lookup.
fn passed_through(headers: &HeaderMap, node_id: &str) -> bool {
    headers.get_all(header::VIA).any(|v| via_names(v.as_bytes(), node_id.as_bytes()))
}

/// Whether one `Via` value lists `node` as a hop's `received-by`.
fn via_names(value: &[u8], node: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|hop| {
        let mut parts = hop.split(u8::is_ascii_whitespace).filter(|p| !p.is_empty());
        parts.next().is_some() && parts.next() == Some(node)
    })
}

/// Longest-prefix (then Host) match over the current route table.
fn route(req: &HttpRequest, path: &str, routes: &RoutesView) -> Result<Arc<Route>, GatewayError> {
    route_head(req.headers(), req.uri(), path, routes)
}

fn route_head(headers: &HeaderMap, uri: &Uri, path: &str, routes: &RoutesView) -> Result<Arc<Route>, GatewayError> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| uri.host());
    routes.load().find(path, host).cloned().ok_or_else(|| GatewayError::RouteNotFound(path.to_string()))
}

/// The service's `auth` step: the verified identity (`None` for `auth = none`), with
/// revocations, disabled consumers and permissions applied.
fn authenticate(req: &HttpRequest, route: &Route, cx: &Pipeline) -> Result<Option<Identity>, GatewayError> {
    authenticate_head(req.headers(), req.method(), route, cx)
}

/// `authenticate` over a request head (also used before `100 Continue`, see `expect`).
fn authenticate_head(
    headers: &HeaderMap,
    method: &Method,
    route: &Route,
    cx: &Pipeline,
) -> Result<Option<Identity>, GatewayError> {
    let Some(identity) = identify_head(headers, route, cx)? else {
        return Ok(None);
    };
    if !cx.auth.load().dir.permitted(&identity.consumer, &route.name, method.as_str()) {
        return Err(GatewayError::Forbidden(format!(
            "consumer {:?} may not {} {}",
            identity.consumer, method, route.name
        )));
    }
    Ok(Some(identity))
}

/// Verifies the credentials `route`'s auth mode asks for (revocations and disabled
/// consumers applied, permissions not): `None` for `auth = none`.
pub(crate) fn identify(req: &HttpRequest, route: &Route, cx: &Pipeline) -> Result<Option<Identity>, GatewayError> {
    identify_head(req.headers(), route, cx)
}

fn identify_head(headers: &HeaderMap, route: &Route, cx: &Pipeline) -> Result<Option<Identity>, GatewayError> {
    if route.spec.auth == AuthMode::None {
        return Ok(None);
    }
    let unauthorized = GatewayError::Unauthorized;
    let auth = cx.auth.load();
    let bearer = bearer_of(headers);
    let api_key = headers.get(&cx.api_key_header);
    let verify_jwt = |token: &str| {
        let jwt = auth.jwt.as_ref().ok_or(unauthorized(AuthError::InvalidToken("no JWT keys configured")))?;
        let id = jwt.verify(token).map_err(unauthorized)?;
        auth.dir.check_token(id, token).map_err(unauthorized)
    };
    let verify_key = |key: &HeaderValue| auth.dir.api_key(key.as_bytes()).map_err(unauthorized);
    let identity = match (route.spec.auth, bearer, api_key) {
        (AuthMode::Jwt | AuthMode::Any, Some(token), _) => verify_jwt(token)?,
        (AuthMode::ApiKey | AuthMode::Any, _, Some(key)) => verify_key(key)?,
        _ => return Err(unauthorized(AuthError::MissingCredentials)),
    };
    Ok(Some(identity))
}

/// `Authorization: Bearer <token>`, scheme case-insensitive.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    bearer_of(req.headers())
}

fn bearer_of(headers: &HeaderMap) -> Option<&str> {
    // from_utf8 (vectorised) rather than to_str (a check per byte): tokens are long, and
    // anything but base64url fails verification anyway.
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// The consistent-hash input for the route's balancer, if it hashes.
fn hash_key(req: &HttpRequest, route: &Route, addr: &ClientAddr, identity: Option<&Identity>) -> Option<Vec<u8>> {
    let actors::spec::BalancerKind::ConsistentHash(key) = route.pool.kind() else {
        return None;
    };
    let ip = || addr.ip.map(|ip| ip.to_string().into_bytes());
    match key {
        HashKey::Ip => ip(),
        // Anonymous requests hash on the client address.
        HashKey::Consumer => identity.map(|i| i.consumer.as_bytes().to_vec()).or_else(ip),
        HashKey::Header(name) => req.headers().get(name.as_str()).map(|v| v.as_bytes().to_vec()),
        HashKey::Cookie(name) => cookie(req, name).map(String::into_bytes),
    }
}

fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::{static_value, via_names};

    #[test]
    fn via_finds_this_node_as_a_whole_hop_only() {
        assert!(via_names(b"1.1 gw-1", b"gw-1"));
        assert!(via_names(b"1.0 proxy, 1.1 gw-1 (gateway)", b"gw-1"));
        assert!(via_names(b"HTTP/1.1  gw-1,1.1 other", b"gw-1"));
        assert!(!via_names(b"1.1 gw-10", b"gw-1"));
        assert!(!via_names(b"1.1 xgw-1", b"gw-1"));
        assert!(!via_names(b"1.1 gw-1x, 1.1 gw", b"gw-1"));
        assert!(!via_names(b"gw-1", b"gw-1"), "a bare token is the protocol, not the hop");
        assert!(!via_names(b"", b"gw-1"));
    }

    #[test]
    fn static_values_keep_the_text_and_refuse_what_a_header_cannot_carry() {
        assert_eq!(static_value("1.1 node-a".into()).expect("valid").as_bytes(), b"1.1 node-a");
        assert_eq!(static_value("nœud".into()).expect("obs-text is allowed").as_bytes(), "nœud".as_bytes());
        assert!(static_value("bad\nvalue".into()).is_none());
    }
}
