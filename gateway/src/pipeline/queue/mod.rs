//! The queue step of the pipeline (SPEC §4 step 5, §9) and `GET /jobs/{id}`.
//!
//! A request matching its service's `queue.match` (on the client path, after routing,
//! auth and rate limit) is captured as a job — method, upstream path and query, the
//! headers the proxy would send, the body within `max_body` (the service's, else the
//! node's), the consumer — and enqueued in one atomic step. `async` answers `202` at
//! once; `sync` waits up to `wait` for the result and answers it, else `202`. The
//! workers that run jobs are `actors::queue::QueueWorker`s; their HTTP call is
//! `runner::HttpRunner`.

pub mod runner;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use actors::queue::{Enqueued, JobRecord, NewJob, QueueError, Queues, job_service};
use actors::registry::Route;
use actors::spec::{QueueMode, QueueSpec};
use serde_json::json;

use super::limits::{self, BodyKind};
use super::phase::{Flow, Policy};
use super::upstream::{self, Extras};
use super::{Ctx, Pipeline, auth, request_id};
use crate::error::{GatewayError, Rejected};
use crate::names;
use crate::proxy::{self, Forward};

/// The queue policy: a request matching its service's `queue.match` becomes a job and is
/// answered here (`202`, or the job's result in `sync` mode).
pub struct Enqueue;

impl Policy for Enqueue {
    async fn request(node: &Pipeline, cx: &mut Ctx<'_>) -> Result<Flow, GatewayError> {
        let (Some(queues), Some(spec)) = (&node.queues, matching(&cx.route, cx.req, &cx.path)) else {
            return Ok(Flow::Continue);
        };
        let kind = limits::body_kind(cx.req.headers(), &cx.limits)?;
        let Some(payload) = cx.payload.take() else {
            return Err(GatewayError::BadRequest("the request body was already read".into()));
        };
        let x = Extras::of(cx);
        enqueue(&upstream::forward(node, cx, &x), spec, queues, payload, kind).await.map(Flow::Respond)
    }
}

/// Longest `Idempotency-Key` accepted.
const IDEMPOTENCY_KEY_MAX: usize = 255;

/// The service's queue settings when this request is one of its queued requests.
pub fn matching<'a>(route: &'a Route, req: &HttpRequest, path: &str) -> Option<&'a QueueSpec> {
    let spec = route.spec.queue.as_ref()?;
    spec.matches.iter().any(|m| m.matches(req.method().as_str(), path)).then_some(spec)
}

/// Seconds until the queue has likely made room: one start interval, at least 1.
fn retry_after(spec: &QueueSpec) -> u64 {
    let per_start = spec.rate.per.get().as_secs_f64() / f64::from(spec.rate.count.max(1));
    (per_start.ceil() as u64).max(1)
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, GatewayError> {
    let Some(v) = req.headers().get(&names::IDEMPOTENCY_KEY) else { return Ok(None) };
    match v.to_str() {
        Ok(k) if !k.trim().is_empty() && k.len() <= IDEMPOTENCY_KEY_MAX => Ok(Some(k.trim().to_string())),
        _ => Err(GatewayError::BadRequest(format!(
            "Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} visible ASCII characters"
        ))),
    }
}

fn unavailable(e: QueueError) -> GatewayError {
    GatewayError::RedisUnavailable(e.to_string())
}

/// Captures the request as a job and answers for it (202, or the result in `sync` mode).
pub async fn enqueue(
    fw: &Forward<'_>,
    spec: &QueueSpec,
    queues: &Queues,
    payload: web::Payload,
    kind: BodyKind,
) -> Result<HttpResponse, GatewayError> {
    let idempotency_key = idempotency_key(fw.req)?;
    let body = proxy::buffer_body(fw, payload, kind).await?;
    let headers = proxy::job_headers(fw)
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str().to_string(), v.to_string())))
        .collect();
    let job = NewJob {
        consumer: fw.identity.map(|i| i.consumer.clone()).unwrap_or_default(),
        method: fw.req.method().to_string(),
        path: fw.upstream_path.to_string(),
        query: fw.req.query_string().to_string(),
        headers,
        body: body.to_vec(),
        request_id: fw.request_id.to_str().unwrap_or_default().to_string(),
        idempotency_key,
    };
    let service = &fw.route.name;
    let id = match queues.enqueue(service, spec, &job).await.map_err(unavailable)? {
        Enqueued::New { id, .. } | Enqueued::Duplicate { id, .. } => id,
        Enqueued::Full { .. } => {
            return Err(GatewayError::QueueFull { service: service.to_string(), retry_after: retry_after(spec) });
        }
    };
    if spec.mode == QueueMode::Sync {
        // The job is stored: a storage hiccup while waiting still answers 202.
        if let Ok(Some(rec)) = queues.wait(&id, spec.wait.get()).await
            && let Some(res) = replay(&rec)
        {
            return Ok(res);
        }
    }
    Ok(accepted(&id))
}

/// `202 {"job_id","status_url"}` with `Location`.
fn accepted(id: &str) -> HttpResponse {
    let url = format!("/jobs/{id}");
    HttpResponse::Accepted()
        .insert_header((header::LOCATION, url.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"job_id": id, "status_url": url}))
}

/// The stored upstream answer of a finished job, as the response.
fn replay(rec: &JobRecord) -> Option<HttpResponse> {
    if !rec.status.is_final() {
        return None;
    }
    let result = rec.result.as_ref()?;
    let status = StatusCode::from_u16(result.status).ok()?;
    let mut res = HttpResponse::build(status);
    for (n, v) in &result.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(v)) {
            res.append_header((n, v));
        }
    }
    Some(res.body(result.body.clone()))
}

/// `GET /jobs/{id}`: authenticated like the job's service; only the consumer that
/// enqueued a job may read it (anyone else: `404 not_found`, as for a missing job).
pub async fn status(req: HttpRequest, id: web::Path<String>, cx: web::Data<Pipeline>) -> HttpResponse {
    let request_id = request_id::of(&req);
    let mut res = match read(&req, &id, &cx).await {
        Ok(rec) => HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(rec.view()),
        Err(error) => Rejected { request_id: request_id.clone(), error }.to_response(),
    };
    res.headers_mut().insert(names::X_REQUEST_ID.clone(), request_id);
    res
}

async fn read(req: &HttpRequest, id: &str, cx: &Pipeline) -> Result<JobRecord, GatewayError> {
    let missing = || GatewayError::NotFound(format!("job {id:?} not found"));
    let service = job_service(id).ok_or_else(missing)?;
    let route = cx.routes.load().get(service).cloned().ok_or_else(missing)?;
    let caller = auth::identify(req.headers(), &route, cx)?.map(|i| i.consumer).unwrap_or_default();
    let queues = cx.queues.as_ref().ok_or_else(missing)?;
    let rec = queues.get(id).await.map_err(unavailable)?.ok_or_else(missing)?;
    if rec.consumer != caller {
        return Err(missing());
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::queue::{JobResult, JobStatus};

    fn spec(rate: &str) -> QueueSpec {
        serde_json::from_value(json!({"match": ["POST /x"], "rate": rate})).expect("valid spec")
    }

    #[test]
    fn retry_after_is_one_start_interval_at_least_a_second() {
        assert_eq!(retry_after(&spec("100/10s")), 1);
        assert_eq!(retry_after(&spec("1/30s")), 30);
        assert_eq!(retry_after(&spec("2/5s")), 3);
    }

    #[test]
    fn only_finished_jobs_with_a_result_are_replayed() {
        let mut rec = JobRecord {
            id: "s-1".into(),
            status: JobStatus::Running,
            attempts: 1,
            consumer: String::new(),
            position: None,
            result: Some(JobResult { status: 201, headers: vec![("x-a".into(), "1".into())], body: b"hi".to_vec() }),
        };
        assert!(replay(&rec).is_none());
        rec.status = JobStatus::Succeeded;
        let res = replay(&rec).expect("a response");
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(res.headers().get("x-a").and_then(|v| v.to_str().ok()), Some("1"));
    }
}
