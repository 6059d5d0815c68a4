//! Forwarding one request to an upstream endpoint: pooled keep-alive connections,
//! streaming bodies both ways, hop-by-hop headers removed, forwarding headers added, the
//! service timeout applied, and retries of idempotent requests on connect errors only
//! (each retry to the balancer's next pick). Every call goes through the one `Upstream`
//! interface (`upstream/`), which picks the implementation per scheme.

pub(crate) mod h1;
mod headers;
mod health;
mod jobs;
mod respond;
mod upstream;

pub use headers::append_via;
pub use health::UpstreamProbe;
pub use jobs::{buffer_body, endpoint_url, job_headers, send_job};
pub use upstream::{
    Error as UpstreamError, Fetcher, H2, HTTP_11, NoStream, Request, RequestBody, RequestHeaders, Response,
    ResponseBody, TlsConfig, TlsSettings, Upgrade, Upgraded, Upstream,
};

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use actors::balancer::{Endpoint, InFlight};
use actors::circuit::{Breakers, CallOutcome};
use actors::registry::Route;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::error::GatewayError;
use crate::pipeline::forwarded::ClientAddr;
use crate::pipeline::limits::{BodyKind, FaultSlot, LimitedBody, Limits};

/// Bodies of idempotent requests up to this size are buffered so they can be retried.
const REPLAY_MAX: u64 = 64 * 1024;

/// Builds the TLS settings for `https://` upstreams: the Mozilla root set (webpki-roots)
/// plus the PEM certificates of `extra_ca` (a private CA, `node.upstream_ca_file`).
pub fn tls_config(extra_ca: Option<&[u8]>) -> Result<TlsConfig, String> {
    TlsSettings::default().extra_ca(extra_ca).build()
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

/// What forwarding one request gave: the client response (or the gateway error) and what
/// happened upstream.
pub struct Proxied {
    /// The upstream's answer as the client response, or the error to answer with.
    pub response: Result<HttpResponse, GatewayError>,
    /// Endpoint, attempts and timings, for metrics, the log and traces.
    pub outcome: Outcome,
}

/// Sends the request upstream and turns the answer into the client response.
/// `payload` may be `None` for requests without a body (background refreshes).
pub async fn forward(fw: Forward<'_>, payload: Option<web::Payload>, kind: BodyKind, upstream: &Upstream) -> Proxied {
    let mut outcome = Outcome::default();
    let response = attempts(fw, payload, kind, upstream, &mut outcome).await;
    Proxied { response, outcome }
}

/// `forward`'s attempts; each one updates `outcome`.
async fn attempts(
    fw: Forward<'_>,
    payload: Option<web::Payload>,
    kind: BodyKind,
    upstream: &Upstream,
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
        let request = Request {
            endpoint: &endpoint,
            method,
            path: fw.upstream_path,
            query: fw.req.query_string(),
            headers: RequestHeaders::Forward(&fw),
            body: take_body(&mut body, &fw),
        };
        let send = upstream.send(request, is_idempotent(method));
        // Without an upload the service timeout covers the whole attempt: the attempt is
        // handed to `timeout` directly (moving it through `within` costs a copy per request).
        let result = match upload {
            None => tokio::time::timeout(timeout, send).await.unwrap_or(Err(UpstreamError::Timeout)),
            Some(upload) => within(send, timeout, upload).await,
        };
        outcome.upstream_time = Some(sent_at.elapsed());
        outcome.sent_at = Some(sent_at);
        match result {
            Ok(mut answer) => {
                if let Some((b, spec)) = breaker {
                    let outcome = if spec.is_failure(answer.status.as_u16()) {
                        CallOutcome::Failure
                    } else {
                        CallOutcome::Success
                    };
                    b.record(&fw.route.name, &endpoint, outcome, probe);
                }
                // A stalled body ends after the service timeout of silence.
                answer.body = answer.body.idle_timeout(timeout);
                return Ok(respond::respond(answer, in_flight, method));
            }
            Err(e) => {
                let client_fault = fault.get();
                if client_fault.is_some() || e.is_client_body() {
                    // The client's fault (body too large, too slow, cut off or broken), not
                    // the upstream's: no breaker failure, and a probe slot is given back
                    // (never counted as a successful probe: the upstream never answered).
                    if let Some((b, _)) = breaker {
                        b.record(&fw.route.name, &endpoint, CallOutcome::Neutral, probe);
                    }
                    return Err(match client_fault {
                        Some(f) => f.into_error(fw.limits),
                        None => e.into_gateway(timeout, &endpoint),
                    });
                }
                if let Some((b, _)) = breaker {
                    b.record(&fw.route.name, &endpoint, CallOutcome::Failure, probe);
                }
                let retriable = e.is_connect();
                let err = e.into_gateway(timeout, &endpoint);
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

/// Runs one attempt with a streamed upload under the service `timeout` (without one,
/// `timeout` covers the whole attempt). It covers the upstream's time only — connecting and sending the head, then waiting for the answer once the body is
/// complete — and not the upload: the client has until the request `deadline` for that
/// (its body stream fails with 408 after it), and an upstream that stops reading the
/// upload gets the service timeout past that deadline.
async fn within<F>(
    attempt: F,
    timeout: Duration,
    (slot, deadline): (&FaultSlot, tokio::time::Instant),
) -> Result<Response, UpstreamError>
where
    F: std::future::Future<Output = Result<Response, UpstreamError>>,
{
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
            return Err(UpstreamError::Timeout);
        }
    }
}

/// The request body for one attempt; a buffered body stays for the next one. An empty
/// body the client framed with `Content-Length` keeps its (zero) length.
fn take_body(body: &mut Body, fw: &Forward<'_>) -> RequestBody<LimitedBody<web::Payload>> {
    match std::mem::replace(body, Body::Empty) {
        Body::Empty if fw.req.headers().contains_key(header::CONTENT_LENGTH) => RequestBody::Full(Bytes::new()),
        Body::Empty => RequestBody::None,
        Body::Buffered(b) => {
            *body = Body::Buffered(b.clone());
            RequestBody::Full(b)
        }
        Body::Stream(s, n) => RequestBody::Stream(s, n),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
