//! Logging (tracing, JSON or pretty, non-blocking writer) and the Prometheus recorder.
//! The access log has a writer of its own (`crate::access_log`).

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat};
use crate::{client_faults, names};

/// Latency buckets (seconds): sub-millisecond gateway overhead up to slow upstreams.
const BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Installs the global subscriber. Keep the guard alive: dropping it flushes the log.
/// Events a client can cause per request are kept out of the log and folded into a
/// counter and a periodic summary line (`client_faults`).
pub fn init_logging(cfg: &LogConfig) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    let (writer, guard) =
        tracing_appender::non_blocking::NonBlockingBuilder::default().lossy(false).finish(std::io::stdout());
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal()).with_writer(writer);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match cfg.format {
        LogFormat::Json => fmt.json().flatten_event(true).with_current_span(false).boxed(),
        LogFormat::Pretty => fmt.compact().boxed(),
    };
    let result = tracing_subscriber::registry().with(fmt).with(client_faults::ClientFaults).with(filter).try_init();
    match result {
        Ok(()) => client_faults::start_summaries(),
        Err(e) => eprintln!("logging already initialised: {e}"),
    }
    guard
}

/// Installs the Prometheus recorder and starts its upkeep task. Returns the handle that
/// renders `/metrics`.
pub fn init_metrics() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS);
    let handle = match builder.and_then(|b| b.install_recorder()) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot install the metrics recorder");
            return None;
        }
    };
    metrics::describe_counter!(names::M_REQUESTS, "Requests answered, by service, method and status");
    metrics::describe_histogram!(names::M_REQUEST_DURATION, "Time spent in the gateway per request (seconds)");
    metrics::describe_histogram!(names::M_UPSTREAM_DURATION, "Time until the upstream response head (seconds)");
    metrics::describe_gauge!(names::M_REGISTRY_VERSION, "Version of the route table in use");
    metrics::describe_gauge!(names::M_DEGRADED, "1 while an actor runs on its fallback");
    metrics::describe_histogram!(names::M_REDIS_DURATION, "Redis command latency by actor (seconds)");
    metrics::describe_counter!(names::M_RATELIMIT_DECISIONS, "Rate-limit decisions by policy and result");
    metrics::describe_counter!(
        names::M_CLIENT_PROTOCOL_ERRORS,
        "Connections closed on malformed client requests (logged as a summary only)"
    );
    metrics::describe_counter!(names::M_REDIS_ERRORS, "Redis commands that failed or timed out");
    metrics::describe_counter!(
        names::M_ACCESS_LOG_DROPPED,
        "Access-log lines dropped because the writer fell behind or the output failed"
    );
    let upkeep = handle.clone();
    actix_rt::spawn(async move {
        let mut tick = actix_rt::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Some(handle)
}
