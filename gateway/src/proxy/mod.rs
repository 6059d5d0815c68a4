//! Forwarding one request to an upstream endpoint: pooled keep-alive connections,
//! streaming bodies both ways, hop-by-hop headers removed, forwarding headers added, the
//! service timeout applied, and retries of idempotent requests on connect errors only
//! (each retry to the balancer's next pick). Plain `http://` endpoints go through the
//! lean client in `h1`; `https://` ones through awc with rustls.

pub(crate) mod h1;
mod headers;
mod health;
mod jobs;
mod respond;

pub use headers::append_via;
pub use health::UpstreamProbe;
pub use jobs::{buffer_body, endpoint_url, job_headers, send_job};

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{BodyStream, SizedStream};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use actors::balancer::{Endpoint, InFlight};
use actors::circuit::{Breakers, CallOutcome};
use actors::registry::Route;
use actors::spec::Scheme;
use awc::error::{ConnectError, SendRequestError};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::error::GatewayError;
use crate::pipeline::forwarded::ClientAddr;
use crate::pipeline::limits::{BodyKind, FaultSlot, LimitedBody, Limits};

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
        .conn_keep_alive(h1::POOL_IDLE)
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

/// The request target for `path` and `query` on `ep`, in pieces: base path, path, `?`,
/// query. A bare `/` under a base path adds nothing (`/v1`, not `/v1/`); with neither, the
/// target is `/`. Shared by the h1 request line and awc/job URLs.
fn target<'a>(ep: &'a Endpoint, path: &'a str, query: &'a str) -> [&'a str; 4] {
    let base = ep.url.base_path();
    let path = match (base.is_empty(), path) {
        (false, "/") => "",
        (true, "") => "/",
        _ => path,
    };
    [base, path, if query.is_empty() { "" } else { "?" }, query]
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
    let deadline = tokio::time::Instant::from_std(actors::units::deadline_after(fw.started, fw.limits.request_timeout));
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
    let streamed = matches!(body, Body::Stream(..));
    let attempts = if streamed { 1 } else { 1 + retries };
    let timeout = fw.route.spec.timeout.get();
    let mut tried: Vec<Arc<str>> = Vec::new();
    let breaker = fw.breakers.zip(fw.route.spec.circuit_breaker.as_ref());
    for attempt in 1..=attempts {
        let (endpoint, probe) = choose(&fw, &tried, breaker.map(|(b, _)| b)).await?;
        let in_flight = InFlight::start(Arc::clone(&endpoint));
        outcome.endpoint = Some(Arc::clone(&endpoint));
        outcome.attempts = attempt;
        let sent_at = Instant::now();
        // The service timeout runs from the request fully sent until the response head;
        // a streamed upload is the client's time (bounded by the request deadline).
        let upload = streamed.then_some((&fault, deadline));
        let result = match endpoint.url.scheme() {
            Scheme::Http => within(send_h1(&fw, &endpoint, &mut body), timeout, upload).await,
            Scheme::Https => within(send_awc(&fw, &endpoint, &mut body, client), timeout, upload).await,
        };
        outcome.upstream_time = Some(sent_at.elapsed());
        outcome.sent_at = Some(sent_at);
        match result {
            Ok(answer) => {
                if let Some((b, spec)) = breaker {
                    let outcome = if spec.is_failure(answer.status.as_u16()) {
                        CallOutcome::Failure
                    } else {
                        CallOutcome::Success
                    };
                    b.record(&fw.route.name, &endpoint, outcome, probe);
                }
                return Ok(respond::respond(answer, in_flight, method, fw.via));
            }
            Err(e) => {
                let client_fault = fault.get();
                if client_fault.is_some() || e.is_request_body() {
                    // The client's fault (body too large, too slow, cut off or broken), not
                    // the upstream's: no breaker failure, and a probe slot is given back
                    // (never counted as a successful probe: the upstream never answered).
                    if let Some((b, _)) = breaker {
                        b.record(&fw.route.name, &endpoint, CallOutcome::Neutral, probe);
                    }
                    return Err(match client_fault {
                        Some(f) => f.into_error(fw.limits),
                        None => e.into_error(timeout, &endpoint),
                    });
                }
                if let Some((b, _)) = breaker {
                    b.record(&fw.route.name, &endpoint, CallOutcome::Failure, probe);
                }
                let retriable = e.is_connect();
                let err = e.into_error(timeout, &endpoint);
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

/// Runs one attempt under the service `timeout`. Without a streamed body (`upload` is
/// `None`) the timeout covers the whole attempt. With one, it covers the upstream's time
/// only — connecting and sending the head, then waiting for the answer once the body is
/// complete — and not the upload: the client has until the request `deadline` for that
/// (its body stream fails with 408 after it), and an upstream that stops reading the
/// upload gets the service timeout past that deadline.
async fn within<F>(
    attempt: F,
    timeout: Duration,
    upload: Option<(&FaultSlot, tokio::time::Instant)>,
) -> Result<Answer, Failure>
where
    F: std::future::Future<Output = Result<Answer, Failure>>,
{
    let Some((slot, deadline)) = upload else {
        return tokio::time::timeout(timeout, attempt).await.unwrap_or(Err(Failure::Timeout));
    };
    let mut attempt = std::pin::pin!(attempt);
    let start = tokio::time::Instant::now();
    let mut until = start + timeout;
    loop {
        if let Ok(result) = tokio::time::timeout_at(until, attempt.as_mut()).await {
            return result;
        }
        // Checked at least once per `timeout` while the upload runs.
        let now = tokio::time::Instant::now();
        until = match (slot.started_at(), slot.complete_at()) {
            (Some(began), Some(done)) => done + timeout.saturating_sub(began.saturating_duration_since(start)),
            (Some(_), None) => (now + timeout).min(deadline + timeout),
            (None, _) => start + timeout,
        };
        if until <= now {
            return Err(Failure::Timeout);
        }
    }
}

/// An upstream's answer, whichever client fetched it; headers already cleaned.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    /// The declared body length (announced on HEAD answers).
    length: Option<u64>,
    body: AnswerBody,
}

enum AnswerBody {
    Empty,
    Full(Bytes),
    H1(h1::ResponseBody),
    /// The response, and body bytes already taken from it (`first_bytes`).
    Awc(awc::ClientResponse, Option<Bytes>),
}

/// Why one attempt failed.
enum Failure {
    Timeout,
    H1(h1::Error),
    Awc(SendRequestError),
    /// The answer arrived but cannot be passed on (a status outside 100–599).
    Invalid(&'static str),
}

impl Failure {
    /// Nothing reached the upstream: another endpoint may be tried.
    fn is_connect(&self) -> bool {
        match self {
            Self::Timeout | Self::Invalid(_) => false,
            Self::H1(e) => e.is_connect(),
            Self::Awc(e) => matches!(e, SendRequestError::Connect(_)),
        }
    }

    /// The request body coming from the client failed, not the upstream.
    fn is_request_body(&self) -> bool {
        matches!(self, Self::H1(h1::Error::Body(_)) | Self::Awc(SendRequestError::Body(_)))
    }

    fn into_error(self, timeout: Duration, ep: &Endpoint) -> GatewayError {
        match self {
            Self::H1(h1::Error::Body(e)) => unreadable_body(e),
            Self::Awc(SendRequestError::Body(e)) => unreadable_body(e),
            Self::Timeout | Self::H1(h1::Error::ConnectTimeout) => GatewayError::UpstreamTimeout(timeout),
            Self::H1(h1::Error::Connect(e)) => {
                GatewayError::UpstreamUnavailable(format!("cannot connect to {}: {e}", ep.id))
            }
            Self::H1(e) => GatewayError::UpstreamUnavailable(format!("{} failed: {e}", ep.id)),
            Self::Invalid(msg) => {
                GatewayError::UpstreamUnavailable(format!("{} failed: invalid response: {msg}", ep.id))
            }
            Self::Awc(e) => classify(e, timeout, ep),
        }
    }
}

/// The request body for one attempt; a buffered body stays for the next one.
fn take_body(body: &mut Body) -> h1::SendBody<LimitedBody<web::Payload>> {
    match std::mem::replace(body, Body::Empty) {
        Body::Empty => h1::SendBody::Empty,
        Body::Buffered(b) => {
            *body = Body::Buffered(b.clone());
            h1::SendBody::Full(b)
        }
        Body::Stream(s, n) => h1::SendBody::Stream(s, n),
    }
}

/// Whether the client framed its (empty) body with a `Content-Length`.
fn declares_length(fw: &Forward<'_>) -> bool {
    fw.req.headers().contains_key(header::CONTENT_LENGTH)
}

/// One attempt to a plain-HTTP endpoint: the head is written straight from the request.
async fn send_h1(fw: &Forward<'_>, ep: &Endpoint, body: &mut Body) -> Result<Answer, Failure> {
    let method = fw.req.method();
    let send = take_body(body);
    let framing = match &send {
        // A client's `Content-Length: 0` is kept (some servers want a length on POST).
        h1::SendBody::Empty if declares_length(fw) => h1::Framing::Length(0),
        h1::SendBody::Empty => h1::Framing::None,
        h1::SendBody::Full(b) => h1::Framing::Length(b.len() as u64),
        h1::SendBody::Stream(_, Some(n)) => h1::Framing::Length(*n),
        h1::SendBody::Stream(_, None) => h1::Framing::Chunked,
    };
    let mut head = h1::Head::new(method, ep, fw.upstream_path, fw.req.query_string());
    headers::each_upstream_header(fw, |n, v| head.header(n, v));
    let res = h1::send(ep, head.finish(framing), send, method, is_idempotent(method)).await.map_err(Failure::H1)?;
    let body = match res.body {
        h1::Body::Empty => AnswerBody::Empty,
        h1::Body::Full(b) => AnswerBody::Full(b),
        // A stalled body ends after the service timeout of silence.
        h1::Body::Stream(s) => AnswerBody::H1(s.idle_timeout(fw.route.spec.timeout.get())),
    };
    Ok(Answer { status: res.status, headers: res.headers, length: res.length, body })
}

/// One attempt to an `https://` endpoint through awc.
async fn send_awc(fw: &Forward<'_>, ep: &Endpoint, body: &mut Body, client: &awc::Client) -> Result<Answer, Failure> {
    let url = endpoint_url(ep, fw.upstream_path, fw.req.query_string());
    let mut creq = client.request(fw.req.method().clone(), url).no_decompress();
    *creq.headers_mut() = headers::upstream_headers(fw);
    if let Ok(host) = HeaderValue::from_maybe_shared(ep.host_header.clone()) {
        creq.headers_mut().insert(header::HOST, host);
    }
    let sending = match take_body(body) {
        h1::SendBody::Empty if declares_length(fw) => creq.send_body(Bytes::new()),
        // `None`, not `()`: no `Content-Length: 0` on requests that had no body.
        h1::SendBody::Empty => creq.send_body(actix_web::body::None::new()),
        h1::SendBody::Full(b) => creq.send_body(b),
        h1::SendBody::Stream(s, Some(n)) => creq.send_body(SizedStream::new(n, s)),
        h1::SendBody::Stream(s, None) => creq.send_body(BodyStream::new(s)),
    };
    let res = sending.await.map_err(Failure::Awc)?;
    let status = res.status();
    if !(100..=599).contains(&status.as_u16()) {
        return Err(Failure::Invalid("invalid status code"));
    }
    // The upstream's header map becomes ours: no per-header copies.
    let mut headers = HeaderMap::new();
    let res = res.map_body(|head, payload| {
        headers = std::mem::take(&mut head.headers);
        payload
    });
    let length = headers::clean_response_headers(&mut headers, status);
    let mut res = res;
    let first = first_bytes(&mut res, ep)?;
    Ok(Answer { status, headers, length, body: AnswerBody::Awc(res, first) })
}

/// Takes the body bytes that already arrived with the head. A body failing on its very
/// first poll (a malformed first chunk size) would make actix-web drop the connection
/// before the response head goes out — an empty reply; failing here makes it a 502.
fn first_bytes(res: &mut awc::ClientResponse, ep: &Endpoint) -> Result<Option<Bytes>, Failure> {
    match futures_util::FutureExt::now_or_never(res.next()) {
        Some(Some(Err(e))) => {
            tracing::warn!(endpoint = %ep.id, error = %e, "upstream body failed before its first byte");
            Err(Failure::Invalid("malformed body"))
        }
        Some(Some(Ok(bytes))) => Ok(Some(bytes)),
        // Complete (or not here yet): the stream says so when polled.
        Some(None) | None => Ok(None),
    }
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
                    None => unreadable_body(e),
                });
            }
        }
    }
    Ok(buf.freeze())
}

/// 400 for a request body that could not be read from the client.
fn unreadable_body(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::BadRequest(format!("could not read the request body: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::error::PayloadError;

    #[test]
    fn targets_join_the_base_path_path_and_query() {
        let ep = |u: &str| Endpoint::new("e", u.parse().unwrap(), 1, actors::balancer::EndpointSource::Config);
        let joined = |u: &str, p: &str, q: &str| target(&ep(u), p, q).concat();
        assert_eq!(joined("http://a:1", "/users/7", "x=1"), "/users/7?x=1");
        assert_eq!(joined("http://a:1", "", ""), "/");
        assert_eq!(joined("http://a:1", "/", ""), "/");
        assert_eq!(joined("http://a:1/v1", "/", "q"), "/v1?q");
        assert_eq!(joined("http://a:1/v1", "", ""), "/v1");
        assert_eq!(joined("http://a:1/v1", "/users", ""), "/v1/users");
        assert_eq!(endpoint_url(&ep("http://a:1/v1"), "/users", "x=1"), "http://a:1/v1/users?x=1");
    }

    #[test]
    fn failures_are_classified_by_whose_fault_they_are() {
        let ep =
            Endpoint::new("s-0", "http://127.0.0.1:1".parse().unwrap(), 1, actors::balancer::EndpointSource::Config);
        let t = Duration::from_secs(1);
        let body = Failure::H1(h1::Error::Body(PayloadError::Incomplete(None)));
        assert!(body.is_request_body() && !body.is_connect());
        assert!(matches!(body.into_error(t, &ep), GatewayError::BadRequest(_)));
        let refused = Failure::H1(h1::Error::Connect(std::io::ErrorKind::ConnectionRefused.into()));
        assert!(refused.is_connect() && !refused.is_request_body());
        assert!(matches!(refused.into_error(t, &ep), GatewayError::UpstreamUnavailable(_)));
        assert!(Failure::H1(h1::Error::ConnectTimeout).is_connect());
        assert!(matches!(Failure::H1(h1::Error::ConnectTimeout).into_error(t, &ep), GatewayError::UpstreamTimeout(_)));
        assert!(matches!(Failure::Timeout.into_error(t, &ep), GatewayError::UpstreamTimeout(_)));
        assert!(matches!(
            Failure::H1(h1::Error::Invalid("x")).into_error(t, &ep),
            GatewayError::UpstreamUnavailable(_)
        ));
    }
}
