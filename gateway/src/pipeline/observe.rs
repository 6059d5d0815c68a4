//! Recording a finished request: Prometheus metrics, the access log (`crate::access_log`), and the
//! analytics record (one small struct offered to the analytics actor without waiting).

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode, Version};
use actix_web::{HttpRequest, HttpResponse};
use actors::analytics::LimiterResult;

use super::cache::CacheStatus;
use super::{Ctx, Pipeline};
use crate::access_log::Line;
use crate::names;
use crate::otlp::RequestSpans;
use crate::proxy::Outcome;

/// Label for requests that matched no service.
const NO_SERVICE: &str = "none";

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

/// Status codes as static label strings (no allocation per request).
fn status_label(s: StatusCode) -> &'static str {
    static LABELS: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| (0..1000).map(|c| c.to_string()).collect());
    LABELS.get(usize::from(s.as_u16())).map(String::as_str).unwrap_or("other")
}

/// Metric handles of one (service, method, status) combination.
struct Handles {
    service: metrics::SharedString,
    requests: metrics::Counter,
    duration: metrics::Histogram,
    upstream: metrics::Histogram,
    /// `gateway_cache_requests_total` per cache result, registered on first use.
    cache: [Option<metrics::Counter>; 4],
}

impl Handles {
    fn cache(&mut self, status: CacheStatus) -> &metrics::Counter {
        let slot = match status {
            CacheStatus::Hit => 0,
            CacheStatus::Miss => 1,
            CacheStatus::Bypass => 2,
            CacheStatus::Stale => 3,
        };
        let service = &self.service;
        self.cache[slot].get_or_insert_with(
            || metrics::counter!(names::M_CACHE_REQUESTS, "service" => service.clone(), "result" => status.label()),
        )
    }
}

type HandleKey = (Option<std::sync::Arc<str>>, &'static str, u16);

thread_local! {
    // Per worker thread: registering a labelled metric hashes and locks inside the
    // recorder, so each combination is looked up there once and then reused.
    // Keys come from the config and the status code, not from clients: a fast hash.
    static HANDLES: std::cell::RefCell<std::collections::HashMap<HandleKey, Handles, foldhash::fast::FixedState>> =
        Default::default();
}

/// Upper bound on cached combinations per worker (services × methods × statuses).
const MAX_CACHED: usize = 4096;

fn with_handles(
    service: &Option<std::sync::Arc<str>>,
    method: &'static str,
    status: StatusCode,
    f: impl FnOnce(&mut Handles),
) {
    let make = || {
        let service_label: metrics::SharedString = match service {
            Some(s) => metrics::SharedString::from(std::sync::Arc::clone(s)),
            None => metrics::SharedString::const_str(NO_SERVICE),
        };
        Handles {
            requests: metrics::counter!(names::M_REQUESTS, "service" => service_label.clone(), "method" => method, "status" => status_label(status)),
            duration: metrics::histogram!(names::M_REQUEST_DURATION, "service" => service_label.clone()),
            upstream: metrics::histogram!(names::M_UPSTREAM_DURATION, "service" => service_label.clone()),
            service: service_label,
            cache: Default::default(),
        }
    };
    HANDLES.with(|cell| {
        let mut map = cell.borrow_mut();
        if map.len() >= MAX_CACHED {
            map.clear();
        }
        let handles = map.entry((service.clone(), method, status.as_u16())).or_insert_with(make);
        f(handles);
    });
}

/// What the log phase reads of a finished request.
struct Done<'a> {
    req: &'a HttpRequest,
    request_id: &'a HeaderValue,
    started: Instant,
    res: &'a HttpResponse,
    /// Whether `res` is the upstream's answer (`false`: the gateway's own, or a cached copy).
    from_upstream: bool,
    /// The trusted client address.
    client: Option<std::net::IpAddr>,
    service: &'a Option<Arc<str>>,
    consumer: Option<&'a str>,
    upstream: Option<&'a Outcome>,
    cache: Option<CacheStatus>,
    limiter: LimiterResult,
    spans: Option<Box<RequestSpans>>,
}

/// The log phase of a routed request: metrics, access log, analytics, trace. `relayed`:
/// `res` is the upstream's answer or the cache's copy of one.
pub fn record(node: &Pipeline, cx: &mut Ctx<'_>, res: &HttpResponse, relayed: bool) {
    let service = Some(Arc::clone(&cx.route.name));
    let cache = cx.cache_status(node);
    let spans = cx.spans.take();
    let from_upstream = relayed && !matches!(cx.cache, Some(CacheStatus::Hit | CacheStatus::Stale));
    write(
        node,
        Done {
            req: cx.req,
            request_id: &cx.request_id,
            started: cx.started,
            res,
            from_upstream,
            client: cx.addr.ip,
            service: &service,
            consumer: cx.consumer(),
            upstream: Some(&cx.upstream),
            cache,
            limiter: cx.limiter,
            spans,
        },
    );
}

/// The log phase of a request refused before it matched a service.
pub fn unrouted(
    node: &Pipeline,
    req: &HttpRequest,
    request_id: &HeaderValue,
    spans: Option<Box<RequestSpans>>,
    res: &HttpResponse,
    started: Instant,
) {
    let done = Done {
        req,
        request_id,
        started,
        res,
        from_upstream: false,
        client: req.peer_addr().map(|a| a.ip()),
        service: &None,
        consumer: None,
        upstream: None,
        cache: None,
        limiter: LimiterResult::default(),
        spans,
    };
    write(node, done);
}

/// Records metrics and writes the access-log line for one request.
fn write(cx: &Pipeline, done: Done<'_>) {
    let Done {
        req,
        request_id,
        started,
        res,
        from_upstream,
        client,
        service,
        consumer,
        upstream,
        cache,
        limiter,
        spans,
    } = done;
    let status = res.status();
    let elapsed = started.elapsed();
    let method = method_label(req.method());
    let upstream_time = upstream.and_then(|u| u.upstream_time);
    with_handles(service, method, status, |h| {
        h.requests.increment(1);
        h.duration.record(elapsed.as_secs_f64());
        if let Some(up) = upstream_time {
            h.upstream.record(up.as_secs_f64());
        }
        if let (Some(c), Some(_)) = (cache, service) {
            h.cache(c).increment(1);
        }
    });
    if cx.analytics.enabled() {
        let elapsed_ms = elapsed.as_millis() as u64;
        cx.analytics.record(actors::analytics::Record {
            at_ms: actors::now_unix_ms().saturating_sub(elapsed_ms),
            service: service.clone(),
            method,
            path: req.path().to_string(),
            status: status.as_u16(),
            consumer: consumer.map(str::to_string),
            latency_us: elapsed.as_micros() as u64,
            upstream_us: upstream_time.map(|d| d.as_micros() as u64),
            cache: cache.map(|c| c.as_str()),
            limiter,
        });
    }
    if let Some(log) = &cx.access_log {
        let headers = req.headers();
        let trace_id = spans.as_ref().map(|s| s.trace_id).or_else(|| {
            let parent = headers.get(&names::TRACEPARENT)?.to_str().ok()?;
            crate::otlp::parse_traceparent(parent).map(|p| p.trace_id)
        });
        log.log(&Line {
            request_id: request_id.as_bytes(),
            client,
            method: req.method().as_str(),
            path: req.path(),
            query: if log.settings().query { req.query_string() } else { "" },
            version: version(req.version()),
            status: status.as_u16(),
            bytes_in: headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok()),
            bytes_out: match res.body().size() {
                BodySize::Sized(n) => Some(n),
                BodySize::None => Some(0),
                BodySize::Stream => None,
            },
            duration: elapsed,
            upstream: upstream.and_then(|u| u.endpoint.as_ref()).map(|e| (&*e.id, e.url.authority())),
            upstream_status: from_upstream.then_some(status.as_u16()),
            upstream_time,
            attempts: upstream.map_or(0, |u| u.attempts),
            service: service.as_deref().unwrap_or(NO_SERVICE),
            consumer,
            cache: cache.map(|c| c.as_str()),
            limiter: limiter.as_str(),
            user_agent: headers.get(header::USER_AGENT).map(HeaderValue::as_bytes),
            referer: log
                .settings()
                .logs_referer()
                .then(|| headers.get(header::REFERER))
                .flatten()
                .map(HeaderValue::as_bytes),
            trace_id,
        });
    }
    if let (Some(exporter), Some(spans)) = (&cx.otlp, spans) {
        let upstream = upstream
            .and_then(|u| u.sent_at.zip(u.upstream_time))
            .map(|(at, took)| (at.saturating_duration_since(spans.started), took));
        exporter.offer(crate::otlp::exporter::Finished {
            spans,
            duration: elapsed,
            upstream,
            method,
            path: req.path().to_string(),
            status: status.as_u16(),
            service: service.clone(),
            consumer: consumer.map(str::to_string),
            request_id: request_id.to_str().unwrap_or_default().to_string(),
            cache: cache.map(|c| c.as_str()),
            limiter: limiter.as_str(),
        });
    }
}

fn version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}
