//! Forwarding one request to an upstream endpoint with awc: pooled keep-alive
//! connections, streaming bodies both ways, hop-by-hop headers removed, forwarding
//! headers added, the service timeout applied, and retries of idempotent requests on
//! connect errors only (each retry to the balancer's next pick).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodyStream, SizedStream};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use actors::balancer::{Endpoint, InFlight};
use actors::circuit::Breakers;
use actors::registry::Route;
use awc::error::{ConnectError, SendRequestError};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::error::GatewayError;
use crate::names;
use crate::pipeline::forwarded::ClientAddr;
use crate::pipeline::limits::{BodyKind, FaultSlot, LimitedBody, Limits};

/// Idle time after which pooled upstream connections are dropped. Below Node's default
/// `keepAliveTimeout` (5 s) so we never reuse a connection the upstream is closing.
const POOL_IDLE: Duration = Duration::from_secs(4);
/// Bodies of idempotent requests up to this size are buffered so they can be retried.
const REPLAY_MAX: u64 = 64 * 1024;

/// Builds the TLS settings for `https://` upstreams: the Mozilla root set (webpki-roots)
/// plus the PEM certificates of `extra_ca` (a private CA, `node.upstream_ca_file`).
pub fn tls_config(extra_ca: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca {
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut &pem[..]) {
            let cert = cert.map_err(|e| format!("invalid PEM: {e}"))?;
            roots.add(cert).map_err(|e| format!("invalid CA certificate: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("no certificate found in the PEM file".into());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Builds the per-worker upstream client.
pub fn client(tls: Arc<rustls::ClientConfig>) -> awc::Client {
    let connector = awc::Connector::new()
        .rustls_0_23(tls)
        .timeout(Duration::from_secs(5))
        .conn_keep_alive(POOL_IDLE)
        .conn_lifetime(Duration::from_secs(300))
        .limit(0);
    awc::Client::builder()
        .connector(connector)
        .disable_redirects()
        .no_default_headers()
        // Proxied requests time out through `tokio::time::timeout` (no boxed timer per
        // request); jobs set their own timeout on the request.
        .disable_timeout()
        .finish()
}

/// Everything the proxy needs to know about one request.
pub struct Forward<'a> {
    /// The client request.
    pub req: &'a HttpRequest,
    /// The matched route.
    pub route: &'a Route,
    /// Path to request upstream (prefix stripped as configured, after normalization).
    pub upstream_path: &'a str,
    /// Client address and forwarding header values.
    pub addr: &'a ClientAddr,
    /// The request id.
    pub request_id: &'a HeaderValue,
    /// `Via` value of this node (`1.1 gw-1`).
    pub via: &'a HeaderValue,
    /// Consistent-hash input, when the balancer needs one.
    pub hash_key: Option<&'a [u8]>,
    /// Node limits (body size, request deadline).
    pub limits: &'a Limits,
    /// When the request arrived (the body deadline counts from here).
    pub started: Instant,
    /// The verified caller, sent upstream as `X-Consumer-Id` / `X-Consumer-Tier`.
    pub identity: Option<&'a actors::auth::Identity>,
    /// The node's breakers (used when the service has `[services.circuit_breaker]`).
    pub breakers: Option<&'a Breakers>,
    /// Set by the cache: the client's conditional headers are replaced by these
    /// validators (revalidation) or dropped (`None` inside), so a storable answer comes back.
    pub conditional: Option<&'a Conditional>,
    /// W3C `traceparent` to send instead of the client's (set when traces are exported).
    pub traceparent: Option<&'a HeaderValue>,
}

/// The cache's own validators for a conditional request upstream.
#[derive(Debug, Default, Clone)]
pub struct Conditional {
    /// Sent as `If-None-Match`.
    pub etag: Option<HeaderValue>,
    /// Sent as `If-Modified-Since`.
    pub last_modified: Option<HeaderValue>,
}

/// What happened upstream, for metrics and the access log.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The endpoint that answered (or failed last).
    pub endpoint: Option<Arc<Endpoint>>,
    /// Time until the upstream's response head.
    pub upstream_time: Option<Duration>,
    /// Attempts made.
    pub attempts: u32,
    /// When the last attempt was sent (for the upstream span).
    pub sent_at: Option<Instant>,
}

enum Body {
    Empty,
    Buffered(Bytes),
    Stream(LimitedBody<web::Payload>, Option<u64>),
}

fn is_idempotent(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE)
}

/// Sends the request upstream and turns the answer into the client response.
/// `payload` may be `None` for requests without a body (background refreshes).
pub async fn forward(
    fw: Forward<'_>,
    payload: Option<web::Payload>,
    kind: BodyKind,
    client: &awc::Client,
    outcome: &mut Outcome,
) -> Result<HttpResponse, GatewayError> {
    let method = fw.req.method();
    let fault = FaultSlot::default();
    let deadline = tokio::time::Instant::from_std(fw.started + fw.limits.request_timeout);
    let retries = if is_idempotent(method) { fw.route.spec.retries } else { 0 };
    let mut body = match (kind, payload) {
        (BodyKind::Empty, _) | (_, None) => Body::Empty,
        (kind, Some(payload)) => {
            let limited = LimitedBody::new(payload, fw.limits.max_body, deadline, fault.clone());
            match kind {
                BodyKind::Sized(n) if retries > 0 && n <= REPLAY_MAX => {
                    Body::Buffered(read_all(limited, &fault, fw.limits).await?)
                }
                BodyKind::Sized(n) => Body::Stream(limited, Some(n)),
                _ => Body::Stream(limited, None),
            }
        }
    };
    let attempts = match body {
        Body::Stream(..) => 1,
        _ => 1 + retries,
    };
    // Built once; only a retry (rare) pays for a copy.
    let mut headers = Some(upstream_headers(&fw));
    let timeout = fw.route.spec.timeout.get();
    let mut tried: Vec<Arc<str>> = Vec::new();
    let breaker = fw.breakers.zip(fw.route.spec.circuit_breaker.as_ref());
    for attempt in 1..=attempts {
        let (endpoint, probe) = choose(&fw, &tried, breaker.map(|(b, _)| b)).await?;
        let in_flight = InFlight::start(Arc::clone(&endpoint));
        outcome.endpoint = Some(Arc::clone(&endpoint));
        outcome.attempts = attempt;

        let mut creq = client.request(method.clone(), upstream_url(&fw, &endpoint)).no_decompress();
        *creq.headers_mut() = match headers.take() {
            Some(h) if attempt == attempts => h,
            Some(h) => {
                headers = Some(h.clone());
                h
            }
            None => upstream_headers(&fw),
        };
        // The endpoint's Host, prepared once (awc would format it per request).
        if let Ok(host) = HeaderValue::from_maybe_shared(endpoint.host_header.clone()) {
            creq.headers_mut().insert(header::HOST, host);
        }
        let sent_at = Instant::now();
        let sending = match std::mem::replace(&mut body, Body::Empty) {
            // `None`, not `()`: no `Content-Length: 0` on requests that had no body.
            Body::Empty => creq.send_body(actix_web::body::None::new()),
            Body::Buffered(b) => {
                body = Body::Buffered(b.clone());
                creq.send_body(b)
            }
            Body::Stream(s, Some(n)) => creq.send_body(SizedStream::new(n, s)),
            Body::Stream(s, None) => creq.send_body(BodyStream::new(s)),
        };
        // Until the response head arrives, as awc's own timeout would.
        let result = tokio::time::timeout(timeout, sending).await.unwrap_or(Err(SendRequestError::Timeout));
        outcome.upstream_time = Some(sent_at.elapsed());
        outcome.sent_at = Some(sent_at);
        match result {
            Ok(res) => {
                if let Some((b, spec)) = breaker {
                    b.record(&fw.route.name, &endpoint, !spec.is_failure(res.status().as_u16()), probe);
                }
                return Ok(respond(res, in_flight, method, fw.via));
            }
            Err(e) => {
                if let Some(f) = fault.get() {
                    // The client's fault (body too large or too slow), not the upstream's.
                    if probe && let Some((b, _)) = breaker {
                        b.record(&fw.route.name, &endpoint, true, true);
                    }
                    return Err(f.into_error(fw.limits));
                }
                if let Some((b, _)) = breaker {
                    b.record(&fw.route.name, &endpoint, false, probe);
                }
                let retriable = matches!(e, SendRequestError::Connect(_));
                let err = classify(e, timeout, &endpoint);
                tracing::warn!(
                    service = %fw.route.name, endpoint = %endpoint.id, attempt, error = %err,
                    "upstream request failed"
                );
                if !retriable || attempt == attempts {
                    return Err(err);
                }
                tried.push(Arc::clone(&endpoint.id));
            }
        }
    }
    Err(no_healthy_upstream(fw.route))
}

/// The endpoint for the next attempt and whether it is a half-open probe. With a breaker,
/// an instance whose open period has run out gets this request as a probe when the
/// cluster still has one to give; otherwise only instances with closed breakers are used.
async fn choose(
    fw: &Forward<'_>,
    tried: &[Arc<str>],
    breakers: Option<&Breakers>,
) -> Result<(Arc<Endpoint>, bool), GatewayError> {
    let pool = &fw.route.pool;
    if let Some(breakers) = breakers {
        let now = actors::now_unix_ms();
        for ep in pool.endpoints() {
            if ep.is_selectable()
                && ep.circuit().probe_due(now)
                && !tried.contains(&ep.id)
                && breakers.probe(&fw.route.name, ep).await
            {
                return Ok((Arc::clone(ep), true));
            }
        }
    }
    // Services without a breaker ignore the cells (one may keep a state from an old config).
    let usable = |e: &Endpoint| breakers.is_none() || e.circuit().admits();
    pool.pick(fw.hash_key, tried, usable)
        .or_else(|| if tried.is_empty() { None } else { pool.pick(fw.hash_key, &[], usable) })
        .map(|e| (e, false))
        .ok_or_else(|| no_healthy_upstream(fw.route))
}

/// 503 with `Retry-After`: seconds until the earliest breaker goes half-open when
/// breakers took instances out, else the health-check interval.
fn no_healthy_upstream(route: &Route) -> GatewayError {
    let now = actors::now_unix_ms();
    let breaker_wait = route
        .spec
        .circuit_breaker
        .is_some()
        .then(|| route.pool.endpoints().iter().filter_map(|e| e.circuit().open_until()).min())
        .flatten()
        .map(|until| until.saturating_sub(now).div_ceil(1000));
    let retry_after = breaker_wait
        .or_else(|| route.spec.health_check.as_ref().map(|h| h.interval.get().as_secs_f64().ceil() as u64))
        .unwrap_or(1);
    GatewayError::NoHealthyUpstream { service: route.name.to_string(), retry_after: retry_after.max(1) }
}

async fn read_all(
    mut body: LimitedBody<web::Payload>,
    fault: &FaultSlot,
    limits: &Limits,
) -> Result<Bytes, GatewayError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => buf.extend_from_slice(&c),
            Err(e) => {
                return Err(match fault.get() {
                    Some(f) => f.into_error(limits),
                    None => GatewayError::BadRequest(format!("could not read the request body: {e}")),
                });
            }
        }
    }
    Ok(buf.freeze())
}

fn classify(e: SendRequestError, timeout: Duration, ep: &Endpoint) -> GatewayError {
    match e {
        SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout) => {
            GatewayError::UpstreamTimeout(timeout)
        }
        SendRequestError::Connect(c) => GatewayError::UpstreamUnavailable(format!("cannot connect to {}: {c}", ep.id)),
        other => GatewayError::UpstreamUnavailable(format!("{} failed: {other}", ep.id)),
    }
}

fn upstream_url(fw: &Forward<'_>, ep: &Endpoint) -> String {
    endpoint_url(ep, fw.upstream_path, fw.req.query_string())
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus ones a proxy must not pass on.
const HOP_BY_HOP: [&HeaderName; 9] = [
    &header::CONNECTION,
    &names::KEEP_ALIVE,
    &names::PROXY_CONNECTION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
];

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// Extra hop-by-hop names listed in the `Connection` header.
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect()
}

fn upstream_headers(fw: &Forward<'_>) -> HeaderMap {
    let src = fw.req.headers();
    let listed = connection_listed(src);
    let mut out = HeaderMap::with_capacity(src.len() + 6);
    for (name, value) in src.iter() {
        let drop = is_hop_by_hop(name)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::EXPECT
            || name == names::X_CONSUMER_ID
            || name == names::X_CONSUMER_TIER
            || name == names::X_FORWARDED_FOR
            || name == names::X_FORWARDED_PROTO
            || name == names::X_FORWARDED_HOST
            || name == names::X_REAL_IP
            || name == names::X_REQUEST_ID
            || (name == names::FORWARDED && !fw.addr.peer_trusted)
            || (fw.conditional.is_some() && (name == header::IF_NONE_MATCH || name == header::IF_MODIFIED_SINCE))
            || (fw.traceparent.is_some() && name == names::TRACEPARENT)
            || listed.contains(name);
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    out.insert(names::X_FORWARDED_FOR.clone(), fw.addr.forwarded_for.clone());
    out.insert(names::X_FORWARDED_PROTO.clone(), fw.addr.forwarded_proto.clone());
    if let Some(h) = &fw.addr.forwarded_host {
        out.insert(names::X_FORWARDED_HOST.clone(), h.clone());
    }
    if let Some(ip) = &fw.addr.real_ip {
        out.insert(names::X_REAL_IP.clone(), ip.clone());
    }
    if let Some(id) = fw.identity {
        if let Ok(v) = HeaderValue::from_str(&id.consumer) {
            out.insert(names::X_CONSUMER_ID.clone(), v);
        }
        if let Some(v) = id.tier.as_deref().and_then(|t| HeaderValue::from_str(t).ok()) {
            out.insert(names::X_CONSUMER_TIER.clone(), v);
        }
    }
    if let Some(c) = fw.conditional {
        if let Some(v) = &c.etag {
            out.insert(header::IF_NONE_MATCH, v.clone());
        }
        if let Some(v) = &c.last_modified {
            out.insert(header::IF_MODIFIED_SINCE, v.clone());
        }
    }
    out.insert(names::X_REQUEST_ID.clone(), fw.request_id.clone());
    if let Some(tp) = fw.traceparent {
        out.insert(names::TRACEPARENT.clone(), tp.clone());
    }
    append_via(&mut out, src.get(header::VIA), fw.via);
    out
}

fn append_via(out: &mut HeaderMap, existing: Option<&HeaderValue>, via: &HeaderValue) {
    let value = match existing.and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.is_empty() => {
            HeaderValue::from_str(&format!("{prev}, {}", via.to_str().unwrap_or_default()))
                .unwrap_or_else(|_| via.clone())
        }
        _ => via.clone(),
    };
    out.insert(header::VIA, value);
}

/// Keeps an endpoint counted as busy until the response body has been sent.
struct Tracked<S> {
    inner: S,
    _in_flight: InFlight,
}

impl<S: Stream<Item = Result<Bytes, PayloadError>> + Unpin> Stream for Tracked<S> {
    type Item = Result<Bytes, PayloadError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

fn respond<S>(res: awc::ClientResponse<S>, in_flight: InFlight, method: &Method, via: &HeaderValue) -> HttpResponse
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static,
{
    let status = res.status();
    // The upstream's header map becomes ours: no per-header copies.
    let mut headers = HeaderMap::new();
    let res = res.map_body(|head, payload| {
        headers = std::mem::take(&mut head.headers);
        payload
    });
    let no_body = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let length =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    for name in connection_listed(&headers) {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    // Content-Length is re-derived from the body we send; a 304 keeps the upstream's.
    if status != StatusCode::NOT_MODIFIED {
        headers.remove(header::CONTENT_LENGTH);
    }
    let prev_via = headers.get(header::VIA).cloned();
    append_via(&mut headers, prev_via.as_ref(), via);
    let mut response = if no_body {
        match length {
            // HEAD: announce the length; the codec sends no body for HEAD.
            Some(n) if *method == Method::HEAD => {
                let empty = futures_util::stream::empty::<Result<Bytes, PayloadError>>();
                HttpResponse::with_body(status, SizedStream::new(n, empty)).map_into_boxed_body()
            }
            _ => HttpResponse::with_body(status, actix_web::body::None::new()).map_into_boxed_body(),
        }
    } else {
        let body = Tracked { inner: res, _in_flight: in_flight };
        match length {
            Some(n) => HttpResponse::with_body(status, SizedStream::new(n, body)).map_into_boxed_body(),
            None => HttpResponse::with_body(status, BodyStream::new(body)).map_into_boxed_body(),
        }
    };
    *response.headers_mut() = headers;
    response
}

// ---- Queued jobs (SPEC §9): the same header rules, balancer and timeouts, with the
// request captured at enqueue time and the answer buffered as the job's result.

/// The headers the proxy would send upstream for this request (stored with a job).
pub fn job_headers(fw: &Forward<'_>) -> HeaderMap {
    upstream_headers(fw)
}

/// Reads the whole request body within `node.max_body` and the request deadline.
pub async fn buffer_body(fw: &Forward<'_>, payload: web::Payload, kind: BodyKind) -> Result<Bytes, GatewayError> {
    if kind == BodyKind::Empty {
        return Ok(Bytes::new());
    }
    let fault = FaultSlot::default();
    let deadline = tokio::time::Instant::from_std(fw.started + fw.limits.request_timeout);
    read_all(LimitedBody::new(payload, fw.limits.max_body, deadline, fault.clone()), &fault, fw.limits).await
}

/// `origin + base path + path [+ ? query]` for an endpoint (proxied requests and jobs).
pub fn endpoint_url(ep: &Endpoint, path: &str, query: &str) -> String {
    let base = ep.url.base_path();
    let path = if !base.is_empty() && path == "/" { "" } else { path };
    let mut url = String::with_capacity(ep.origin.len() + base.len() + path.len() + query.len() + 2);
    url.push_str(&ep.origin);
    url.push_str(base);
    url.push_str(path);
    if url.len() == ep.origin.len() {
        url.push('/');
    }
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// Runs one queued job: the route's balancer picks an endpoint, the stored request goes
/// out with the service timeout, and the answer (at most `max_body` bytes, hop-by-hop
/// headers removed) comes back as the job's result.
pub async fn send_job(
    client: &awc::Client,
    route: &Route,
    job: &actors::queue::JobRequest,
    max_body: u64,
    breakers: Option<&Breakers>,
) -> actors::queue::RunOutcome {
    use actors::queue::{JobResult, RunOutcome};
    let breaker = breakers.zip(route.spec.circuit_breaker.as_ref());
    let Some(endpoint) = route.pool.pick(None, &[], |e| breaker.is_none() || e.circuit().admits()) else {
        return RunOutcome::Failed(format!("no healthy upstream for service {}", route.name));
    };
    let _in_flight = InFlight::start(Arc::clone(&endpoint));
    let r = &job.request;
    let Ok(method) = Method::from_bytes(r.method.as_bytes()) else {
        return RunOutcome::Failed(format!("invalid method {:?}", r.method));
    };
    let timeout = route.spec.timeout.get();
    let mut creq = client.request(method, endpoint_url(&endpoint, &r.path, &r.query)).timeout(timeout).no_decompress();
    let headers = creq.headers_mut();
    for (name, value) in &r.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            headers.append(n, v);
        }
    }
    let sent = if r.body.is_empty() {
        creq.send_body(actix_web::body::None::new()).await
    } else {
        creq.send_body(Bytes::copy_from_slice(&r.body)).await
    };
    if let Some((b, spec)) = breaker {
        let ok = sent.as_ref().is_ok_and(|res| !spec.is_failure(res.status().as_u16()));
        b.record(&route.name, &endpoint, ok, false);
    }
    let mut res = match sent {
        Ok(res) => res,
        Err(e) => {
            let err = classify(e, timeout, &endpoint);
            tracing::warn!(service = %route.name, endpoint = %endpoint.id, job = %job.id, error = %err, "queued job failed upstream");
            return RunOutcome::Failed(err.to_string());
        }
    };
    let body = match res.body().limit(usize::try_from(max_body).unwrap_or(usize::MAX)).await {
        Ok(b) => b,
        Err(e) => return RunOutcome::Failed(format!("{} answered an unreadable body: {e}", endpoint.id)),
    };
    let listed = connection_listed(res.headers());
    let headers = res
        .headers()
        .iter()
        .filter(|(n, _)| !is_hop_by_hop(n) && **n != header::CONTENT_LENGTH && !listed.contains(n))
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str().to_string(), v.to_string())))
        .collect();
    RunOutcome::Answered(JobResult { status: res.status().as_u16(), headers, body: body.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_recognised() {
        assert!(is_hop_by_hop(&header::CONNECTION));
        assert!(is_hop_by_hop(&header::TRANSFER_ENCODING));
        assert!(is_hop_by_hop(&names::KEEP_ALIVE));
        assert!(!is_hop_by_hop(&header::CONTENT_TYPE));
    }

    #[test]
    fn connection_listed_names_are_collected() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, X-Secret-Hop"));
        let l = connection_listed(&h);
        assert!(l.contains(&HeaderName::from_static("x-secret-hop")));
    }
}
