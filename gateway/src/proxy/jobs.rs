//! Queued jobs (SPEC §9): the same header rules, balancer and timeouts as proxied
//! requests, with the request captured at enqueue time and the answer buffered as the
//! job's result. Jobs run on the queue thread's `Upstream`.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::web;
use actors::balancer::{Endpoint, InFlight};
use actors::circuit::{Breakers, CallOutcome};
use actors::registry::Route;
use bytes::Bytes;

use super::headers::upstream_headers;
use super::upstream::{NoStream, Request, RequestBody, RequestHeaders, Response, Upstream};
use super::{Forward, UpstreamError, read_all};
use crate::error::GatewayError;
use crate::pipeline::limits::{BodyKind, FaultSlot, LimitedBody};

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
    let deadline = tokio::time::Instant::from_std(actors::units::deadline_after(fw.started, fw.limits.request_timeout));
    read_all(LimitedBody::new(payload, fw.limits.max_body, deadline, fault.clone()), &fault, fw.limits).await
}

/// `origin + base path + path [+ ? query]` for an endpoint (proxied requests and jobs).
pub fn endpoint_url(ep: &Endpoint, path: &str, query: &str) -> String {
    let pieces = super::target(ep, path, query);
    let mut url = String::with_capacity(ep.origin.len() + pieces.iter().map(|p| p.len()).sum::<usize>());
    url.push_str(&ep.origin);
    pieces.iter().for_each(|p| url.push_str(p));
    url
}

/// Runs one queued job: the route's balancer picks an endpoint, the stored request goes
/// out with the service timeout (covering the answer's body too), and the answer (at
/// most `max_body` bytes, hop-by-hop headers removed) comes back as the job's result.
pub async fn send_job(
    upstream: &Upstream,
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
    let mut headers = HeaderMap::with_capacity(r.headers.len());
    for (name, value) in &r.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            headers.append(n, v);
        }
    }
    let body = if r.body.is_empty() { RequestBody::None } else { RequestBody::Full(Bytes::copy_from_slice(&r.body)) };
    let request: Request<'_, NoStream> = Request {
        endpoint: &endpoint,
        method: &method,
        path: &r.path,
        query: &r.query,
        headers: RequestHeaders::Map(&headers),
        body,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let sent =
        tokio::time::timeout_at(deadline, upstream.send(request, false)).await.unwrap_or(Err(UpstreamError::Timeout));
    if let Some((b, spec)) = breaker {
        let ok = sent.as_ref().is_ok_and(|res| !spec.is_failure(res.status.as_u16()));
        let outcome = if ok { CallOutcome::Success } else { CallOutcome::Failure };
        b.record(&route.name, &endpoint, outcome, false);
    }
    let Response { status, headers: mut kept, body, .. } = match sent {
        Ok(res) => res,
        Err(e) => {
            let err = e.into_gateway(timeout, &endpoint);
            tracing::warn!(service = %route.name, endpoint = %endpoint.id, job = %job.id, error = %err, "queued job failed upstream");
            return RunOutcome::Failed(err.to_string());
        }
    };
    let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
    let read = tokio::time::timeout_at(deadline, body.read_to_end(limit)).await.unwrap_or(Err(UpstreamError::Timeout));
    let body = match read {
        Ok(b) => b,
        Err(e) => return RunOutcome::Failed(format!("{} answered an unreadable body: {e}", endpoint.id)),
    };
    // Cleaned by the proxy's response rule; the result's body is stored whole: no length
    // of the wire's framing, not even a 304's.
    kept.remove(header::CONTENT_LENGTH);
    let headers =
        kept.iter().filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str().to_string(), v.to_string()))).collect();
    RunOutcome::Answered(JobResult { status: status.as_u16(), headers, body: body.to_vec() })
}
