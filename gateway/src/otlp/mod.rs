//! OpenTelemetry traces, hand-written (docs/decisions/traces-otlp.md: why not the SDK): W3C
//! `traceparent` handling and the per-request span timings the pipeline captures when
//! `[telemetry] otlp_endpoint` is set. A request yields one SERVER span with INTERNAL
//! children for auth, limiter and cache and a CLIENT child for the upstream call, whose
//! id travels upstream as the parent in `traceparent`. Encoding and export happen in the
//! `exporter` actor, off the request thread.

pub mod exporter;

use std::time::{Duration, Instant};

use actix_web::http::header::HeaderValue;

pub use exporter::Exporter;

/// The pipeline steps that get a child span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Credential verification.
    Auth,
    /// Rate-limit decision.
    Limiter,
    /// Cache lookup (and the fill that follows a miss).
    Cache,
}

impl Step {
    /// Span name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Limiter => "ratelimit",
            Self::Cache => "cache",
        }
    }
}

/// A parsed, valid incoming `traceparent` (version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// The caller's span id.
    pub span_id: [u8; 8],
    /// Whether the caller sampled the trace.
    pub sampled: bool,
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

/// Parses a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, lower case, ids not zero).
pub fn parse_traceparent(v: &str) -> Option<Parent> {
    let mut parts = v.trim().split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || parts.next().is_some() {
        return None;
    }
    let trace_id = unhex::<16>(trace).filter(|t| t.iter().any(|b| *b != 0))?;
    let span_id = unhex::<8>(span).filter(|s| s.iter().any(|b| *b != 0))?;
    let flags = unhex::<1>(flags)?[0];
    Some(Parent { trace_id, span_id, sampled: flags & 1 == 1 })
}

/// `00-<trace>-<span>-<flags>`.
pub fn format_traceparent(trace_id: &[u8; 16], span_id: &[u8; 8], sampled: bool) -> String {
    format!("00-{}-{}-{}", actors::hex(trace_id), actors::hex(span_id), if sampled { "01" } else { "00" })
}

fn nonzero<const N: usize>() -> [u8; N] {
    loop {
        let id: [u8; N] = rand::random();
        if id.iter().any(|b| *b != 0) {
            return id;
        }
    }
}

/// What one request's trace recorded (only built when tracing is on).
#[derive(Debug)]
pub struct RequestSpans {
    /// Trace id (continued from the caller's `traceparent`, else new).
    pub trace_id: [u8; 16],
    /// The request (SERVER) span.
    pub span_id: [u8; 8],
    /// The caller's span, when a valid `traceparent` came in.
    pub parent: Option<[u8; 8]>,
    /// The upstream (CLIENT) span, announced upstream as the parent.
    pub upstream_span_id: [u8; 8],
    /// Whether to export (the caller's sampled flag; new traces are sampled).
    pub sampled: bool,
    /// `traceparent` sent upstream.
    pub upstream_header: HeaderValue,
    /// Wall clock at the start (ns since the epoch).
    pub start_unix_ns: u64,
    /// Monotonic start; step times are offsets from it.
    pub started: Instant,
    /// Child steps: (step, start offset, duration).
    pub steps: Vec<(Step, Duration, Duration)>,
}

impl RequestSpans {
    /// Starts a trace for a request that arrived at `started` with `traceparent` (if any).
    pub fn start(traceparent: Option<&HeaderValue>, started: Instant) -> Self {
        let parent = traceparent.and_then(|v| v.to_str().ok()).and_then(parse_traceparent);
        let trace_id = parent.map_or_else(nonzero::<16>, |p| p.trace_id);
        let sampled = parent.is_none_or(|p| p.sampled);
        let upstream_span_id = nonzero::<8>();
        let header = format_traceparent(&trace_id, &upstream_span_id, sampled);
        let since_start = started.elapsed();
        let now_ns = actors::now_unix_ms().saturating_mul(1_000_000);
        Self {
            trace_id,
            span_id: nonzero::<8>(),
            parent: parent.map(|p| p.span_id),
            upstream_span_id,
            sampled,
            upstream_header: HeaderValue::from_str(&header).unwrap_or_else(|_| HeaderValue::from_static("")),
            start_unix_ns: now_ns.saturating_sub(since_start.as_nanos() as u64),
            started,
            steps: Vec::with_capacity(3),
        }
    }

    /// Records that `step` ran from `from` until now.
    pub fn step(&mut self, step: Step, from: Instant) {
        self.steps.push((step, from.saturating_duration_since(self.started), from.elapsed()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_traceparents_parse_and_invalid_ones_do_not() {
        let p = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        assert!(p.sampled);
        assert_eq!(actors::hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            format_traceparent(&p.trace_id, &p.span_id, true),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_trace_continues_the_callers_trace_with_a_new_upstream_parent() {
        let incoming = HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let s = RequestSpans::start(Some(&incoming), Instant::now());
        assert_eq!(actors::hex(&s.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s.parent.map(|p| actors::hex(&p)), Some("00f067aa0ba902b7".into()));
        let sent = s.upstream_header.to_str().expect("ascii");
        assert_eq!(parse_traceparent(sent).map(|p| p.span_id), Some(s.upstream_span_id));
        let fresh = RequestSpans::start(None, Instant::now());
        assert!(fresh.parent.is_none() && fresh.sampled);
    }
}
