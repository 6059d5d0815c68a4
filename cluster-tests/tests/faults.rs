//! Fault injection (SPEC §8 last bullet, §13): Redis frozen with SIGSTOP — slow, not dead.
//! Requests keep being answered by each actor's fallback instead of hanging on Redis, the
//! Redis guard opens and `/health` says degraded; after SIGCONT everything recovers
//! without a restart.

use std::time::{Duration, Instant};

use cluster_tests::upstream::Behavior;
use cluster_tests::{GatewayProcess, MockUpstream, TestRedis, client, eventually};
use serde_json::Value;

fn config(up: &MockUpstream, redis: &TestRedis) -> String {
    format!(
        r#"
[node]
workers = 2
[log]
access_log = false
[redis]
url = "{redis}"
command_timeout = "150ms"
[rate_limit.policies.open]
algorithm = "sliding_window"
limit = 1000
window = "1m"
key = "ip"
failure_mode = "open"
[[services]]
name = "limited"
rate_limit = "open"
endpoints = ["{url}"]
[[services]]
name = "cached"
endpoints = ["{url}"]
[services.cache]
[[services]]
name = "broken"
endpoints = ["{url}"]
[services.circuit_breaker]
consecutive_failures = 100
"#,
        redis = redis.url(),
        url = up.url()
    )
}

async fn health(gw: &GatewayProcess) -> Value {
    let mut res = client().get(gw.admin_url("/health")).send().await.expect("health answers");
    serde_json::from_slice(&res.body().await.expect("body")).expect("json")
}

#[actix_rt::test]
async fn a_frozen_redis_costs_requests_nothing_and_the_node_recovers_after_it_thaws() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("up");
    up.set_behavior(Behavior { headers: vec![("cache-control".into(), "max-age=60".into())], ..Behavior::default() });
    let gw = GatewayProcess::start(&config(&up, &redis));
    for path in ["/api/limited/x", "/api/cached/x", "/api/broken/x"] {
        let res = client().get(gw.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path} before the fault");
    }

    redis.pause();
    // Every request is answered through the fallbacks; none hangs on the frozen Redis.
    for i in 0..30 {
        let path = ["/api/limited/x", "/api/cached/y", "/api/broken/x"][i % 3];
        let started = Instant::now();
        let res = client().get(gw.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path} while Redis is frozen");
        assert!(started.elapsed() < Duration::from_secs(3), "{path} hung on the frozen Redis");
    }
    let degraded = eventually(Duration::from_secs(10), async || {
        let h = health(&gw).await;
        (h["status"] == "degraded" && h["redis"] == "down").then_some(h)
    })
    .await;
    let h = degraded.expect("/health reports the frozen Redis");
    assert!(h["degraded"].as_array().unwrap().iter().any(|a| a == "ratelimit"), "{h}");
    let log = gw.log_text();
    assert!(log.contains("redis guard open"), "the guard opened");

    redis.resume();
    let recovered = eventually(Duration::from_secs(15), async || {
        // Traffic lets the guard probe Redis again.
        let _ = client().get(gw.url("/api/limited/x")).send().await;
        let h = health(&gw).await;
        (h["redis"] == "up" && !h["degraded"].as_array().unwrap().iter().any(|a| a == "ratelimit")).then_some(())
    })
    .await;
    assert!(recovered.is_some(), "the node did not recover after SIGCONT: {}", health(&gw).await);
    assert!(gw.log_text().contains("redis guard closed"));
}
