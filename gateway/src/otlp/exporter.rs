//! `OtlpExporter`: batches finished request traces and POSTs them as OTLP/HTTP JSON
//! (`resourceSpans`) to `<otlp_endpoint>/v1/traces` every second or every `BATCH` traces.
//! The request path offers a trace with `try_send`; a full mailbox or a failed export drops
//! spans and counts them in `gateway_otlp_dropped_total`. Runs on the System arbiter.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{Value, json};

use super::RequestSpans;

/// Traces per export.
const BATCH: usize = 512;
/// Longest wait between exports.
const INTERVAL: Duration = Duration::from_secs(1);
/// Bound on one export call.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Traces waiting in the mailbox at most.
const MAILBOX: usize = 8192;

/// Spans lost to a full queue or a failed export.
pub const M_OTLP_DROPPED: &str = "gateway_otlp_dropped_total";

/// One finished request with its spans.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Finished {
    /// The timings.
    pub spans: Box<RequestSpans>,
    /// Total time in the gateway.
    pub duration: Duration,
    /// Upstream call: (start offset, time to the response head).
    pub upstream: Option<(Duration, Duration)>,
    /// Method.
    pub method: &'static str,
    /// Client path.
    pub path: String,
    /// Response status.
    pub status: u16,
    /// Service, when routed.
    pub service: Option<Arc<str>>,
    /// Consumer, when authenticated.
    pub consumer: Option<String>,
    /// Request id.
    pub request_id: String,
    /// Cache status, for caching services.
    pub cache: Option<&'static str>,
    /// Limiter outcome label.
    pub limiter: &'static str,
}

/// The exporter actor.
pub struct OtlpExporter {
    url: String,
    resource: Value,
    client: crate::proxy::Fetcher,
    pending: Vec<Finished>,
    in_flight: bool,
}

impl OtlpExporter {
    /// Exports to `<endpoint>/v1/traces` with resource `service.name` and the node id.
    pub fn new(endpoint: &str, service_name: &str, node: &str) -> Self {
        let resource = json!({"attributes": [attr("service.name", service_name), attr("service.instance.id", node)]});
        let client = crate::proxy::Fetcher::new(EXPORT_TIMEOUT, false);
        Self {
            url: format!("{}/v1/traces", endpoint.trim_end_matches('/')),
            resource,
            client,
            pending: Vec::new(),
            in_flight: false,
        }
    }

    fn export(&mut self, ctx: &mut Context<Self>) {
        if self.pending.is_empty() || self.in_flight {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        let spans: Vec<Value> = batch.iter().flat_map(encode).collect();
        let count = spans.len() as u64;
        let body = json!({"resourceSpans": [{"resource": self.resource,
            "scopeSpans": [{"scope": {"name": "gateway", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}]}]});
        let (client, url) = (self.client.clone(), self.url.clone());
        self.in_flight = true;
        let fut = async move {
            match client.post_json(&url, &body).await {
                Ok(()) => Ok(()),
                Err(crate::proxy::UpstreamError::Status(s)) => Err(format!("collector answered {s}")),
                Err(e) => Err(e.to_string()),
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, _| {
            act.in_flight = false;
            if let Err(error) = result {
                tracing::debug!(%error, spans = count, "OTLP export failed; spans dropped");
                metrics::counter!(M_OTLP_DROPPED).increment(count);
            }
        }));
    }
}

impl Actor for OtlpExporter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        ctx.run_interval(INTERVAL, |act, ctx| act.export(ctx));
    }
}

impl Handler<Finished> for OtlpExporter {
    type Result = ();

    fn handle(&mut self, msg: Finished, ctx: &mut Context<Self>) {
        if self.pending.len() >= BATCH * 4 {
            metrics::counter!(M_OTLP_DROPPED).increment(1);
            return;
        }
        self.pending.push(msg);
        if self.pending.len() >= BATCH {
            self.export(ctx);
        }
    }
}

/// The request path's handle.
#[derive(Clone)]
pub struct Exporter(Addr<OtlpExporter>);

impl Exporter {
    /// Starts the exporter actor (call inside the System).
    pub fn start(endpoint: &str, service_name: &str, node: &str) -> Self {
        Self(OtlpExporter::new(endpoint, service_name, node).start())
    }

    /// Offers a finished trace; never waits.
    pub fn offer(&self, f: Finished) {
        if !f.spans.sampled {
            return;
        }
        if self.0.try_send(f).is_err() {
            metrics::counter!(M_OTLP_DROPPED).increment(1);
        }
    }
}

fn attr(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

fn int_attr(key: &str, value: u64) -> Value {
    json!({"key": key, "value": {"intValue": value.to_string()}})
}

fn span(
    s: &RequestSpans,
    id: &[u8; 8],
    parent: Option<&[u8; 8]>,
    name: &str,
    kind: u8,
    (offset, len): (Duration, Duration),
) -> Value {
    let start = s.start_unix_ns + offset.as_nanos() as u64;
    let mut v = json!({
        "traceId": ::actors::hex(&s.trace_id),
        "spanId": ::actors::hex(id),
        "name": name,
        "kind": kind,
        "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": (start + len.as_nanos() as u64).to_string(),
    });
    if let Some(p) = parent {
        v["parentSpanId"] = Value::String(::actors::hex(p));
    }
    v
}

/// OTLP span kinds.
const INTERNAL: u8 = 1;
const SERVER: u8 = 2;
const CLIENT: u8 = 3;

/// The SERVER span and its children, as OTLP JSON.
fn encode(f: &Finished) -> Vec<Value> {
    let s = &f.spans;
    let service = f.service.as_deref().unwrap_or("none");
    let mut root = span(
        s,
        &s.span_id,
        s.parent.as_ref(),
        &format!("{} {service}", f.method),
        SERVER,
        (Duration::ZERO, f.duration),
    );
    let mut attrs = vec![
        attr("http.request.method", f.method),
        attr("url.path", &f.path),
        int_attr("http.response.status_code", u64::from(f.status)),
        attr("gateway.service", service),
        attr("gateway.request_id", &f.request_id),
        attr("gateway.limiter", f.limiter),
    ];
    if let Some(c) = &f.consumer {
        attrs.push(attr("gateway.consumer", c));
    }
    if let Some(c) = f.cache {
        attrs.push(attr("gateway.cache", c));
    }
    root["attributes"] = Value::Array(attrs);
    // OTLP status: 2 = error (server side: 5xx only).
    root["status"] = json!({"code": if f.status >= 500 { 2 } else { 0 }});
    let mut out = vec![root];
    for (step, offset, len) in &s.steps {
        let id: [u8; 8] = rand::random();
        out.push(span(s, &id, Some(&s.span_id), step.name(), INTERNAL, (*offset, *len)));
    }
    if let Some(up) = f.upstream {
        let mut client = span(s, &s.upstream_span_id, Some(&s.span_id), "upstream", CLIENT, up);
        client["attributes"] = json!([attr("http.request.method", f.method)]);
        out.push(client);
    }
    out
}
