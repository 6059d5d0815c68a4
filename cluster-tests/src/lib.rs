//! Test harness shared by every black-box test: a real `redis-server` on a free port,
//! scriptable mock upstreams that record what they receive, and a launcher for
//! `gateway` processes. Everything is killed on drop.

pub mod gateway;
pub mod redis_server;
pub mod redis_topologies;
pub mod upstream;

use std::net::TcpListener;
use std::time::{Duration, Instant};

pub use gateway::{GatewayProcess, gateway_bin};
pub use redis_server::TestRedis;
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
