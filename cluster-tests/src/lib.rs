//! Test harness shared by every black-box test: a real `redis-server` on a free port,
//! scriptable mock upstreams that record what they receive, and a launcher for
//! `gateway` processes. Everything is killed on drop.

pub mod gateway;
pub mod jobs;
pub mod redis_server;
pub mod redis_topologies;
pub mod upstream;

use std::net::TcpListener;
use std::time::{Duration, Instant};

pub use gateway::{GatewayProcess, gateway_bin};
pub use redis_server::{TestRedis, test_store};
pub use redis_topologies::{TestRedisCluster, TestSentinel, TestTlsRedis, redis_cli};
pub use upstream::{MockUpstream, Recorded};

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the OS hands out an ephemeral port")
}

/// Polls `check` until it returns `Some` or `within` passes.
pub async fn eventually<T>(within: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls a blocking `check` until it is true or `within` passes.
pub fn wait_until(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// An awc client for tests: no default timeout surprises, no decompression.
pub fn client() -> awc::Client {
    awc::Client::builder().timeout(Duration::from_secs(30)).disable_redirects().finish()
}

/// `p`-th percentile (0–100) of `sorted` by nearest rank; 0 when empty (benchmarks).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// The JSON summary the propagation benchmarks print: p50/p90/p99/max in milliseconds of
/// `samples`, plus `extra` fields.
pub fn latency_summary(mut samples: Vec<f64>, extra: serde_json::Value) -> serde_json::Value {
    samples.sort_by(f64::total_cmp);
    let mut out = serde_json::json!({
        "p50_ms": percentile(&samples, 50.0),
        "p90_ms": percentile(&samples, 90.0),
        "p99_ms": percentile(&samples, 99.0),
        "max_ms": samples.last().copied().unwrap_or(0.0),
    });
    if let (Some(o), serde_json::Value::Object(e)) = (out.as_object_mut(), extra) {
        o.extend(e);
    }
    out
}
