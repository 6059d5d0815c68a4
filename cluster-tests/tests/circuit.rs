//! Circuit breakers end to end (SPEC §8, §11, §16): a breaker opened through one node is
//! open on every node, traffic shifts to the healthy instance, all-open answers 503 with
//! Retry-After, half-open probes are counted cluster-wide, the admin API lists and resets
//! breakers, and without Redis each node keeps breaking on its own and resyncs later.

use std::time::Duration;

use cluster_tests::upstream::Behavior;
use cluster_tests::{GatewayProcess, MockUpstream, TestRedis, client, eventually};
use serde_json::Value;

fn failing() -> Behavior {
    Behavior { status: 500, ..Behavior::default() }
}

/// One service `svc` over `upstreams` (ids `svc-0`, `svc-1`, ...), tripping after three
/// consecutive failures.
fn config(redis: Option<&TestRedis>, upstreams: &[&MockUpstream], open_for: &str, probes: u32) -> String {
    let redis = redis.map(|r| format!("[redis]\nurl = \"{}\"\n", r.url())).unwrap_or_default();
    let endpoints: Vec<String> = upstreams.iter().map(|u| format!("\"{}\"", u.url())).collect();
    format!(
        "[node]\nworkers = 1\n[log]\naccess_log = false\n{redis}\n[[services]]\nname = \"svc\"\nretries = 0\nendpoints = [{}]\n\
         [services.circuit_breaker]\nconsecutive_failures = 3\nmin_requests = 1000\nopen_for = \"{open_for}\"\nhalf_open_probes = {probes}\n",
        endpoints.join(", ")
    )
}

async fn get(url: &str) -> (u16, Option<String>, Value) {
    let mut res = client().get(url).send().await.expect("gateway answers");
    let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = res.body().await.map(|b| serde_json::from_slice(&b).unwrap_or(Value::Null)).unwrap_or(Value::Null);
    (res.status().as_u16(), retry, body)
}

async fn circuit_state(node: &GatewayProcess, instance: &str) -> Option<String> {
    let (_, _, list) = get(&node.admin_url("/admin/circuits")).await;
    list.as_array()?.iter().find(|c| c["instance"] == instance).and_then(|c| c["state"].as_str()).map(str::to_string)
}

async fn wait_state(node: &GatewayProcess, instance: &str, want: &str) -> bool {
    eventually(Duration::from_secs(10), async || {
        (circuit_state(node, instance).await.as_deref() == Some(want)).then_some(())
    })
    .await
    .is_some()
}

/// Sends requests through `node` until the bad instance's breaker opens there.
async fn trip(node: &GatewayProcess) {
    for _ in 0..20 {
        get(&node.url("/api/svc/x")).await;
        if circuit_state(node, "svc-1").await.as_deref() == Some("open") {
            return;
        }
    }
    panic!("the breaker of svc-1 never opened");
}

#[actix_rt::test]
async fn a_breaker_opened_through_one_node_stops_every_node_and_traffic_shifts() {
    let redis = TestRedis::start();
    let good = MockUpstream::start("good");
    let bad = MockUpstream::start("bad");
    bad.set_behavior(failing());
    let text = config(Some(&redis), &[&good, &bad], "60s", 3);
    let nodes: Vec<_> = (0..3).map(|_| GatewayProcess::start(&text)).collect();

    trip(&nodes[0]).await;
    for n in &nodes[1..] {
        assert!(wait_state(n, "svc-1", "open").await, "the breaker did not open on every node");
    }
    let sent_to_bad = bad.count();
    for i in 0..30 {
        let (status, _, body) = get(&nodes[i % 3].url("/api/svc/x")).await;
        assert_eq!(status, 200, "request {i} reached a broken instance: {body}");
    }
    assert_eq!(bad.count(), sent_to_bad, "an open instance still received traffic");

    let (_, _, list) = get(&nodes[1].admin_url("/admin/circuits")).await;
    let open = list.as_array().unwrap().iter().find(|c| c["instance"] == "svc-1").unwrap().clone();
    assert_eq!(open["service"], "svc");
    assert_eq!(open["url"].as_str().unwrap().trim_end_matches('/'), bad.url());
    assert!(open["opened_at"].as_str().is_some_and(|t| t.contains('T')), "{open}");
    assert!(open["failures"].is_u64());
    let closed = list.as_array().unwrap().iter().find(|c| c["instance"] == "svc-0").unwrap().clone();
    assert_eq!(closed["state"], "closed");
    assert_eq!(closed["opened_at"], Value::Null);

    let metrics = client().get(nodes[2].admin_url("/metrics")).send().await.unwrap().body().await.unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.lines().any(|l| l.starts_with("gateway_circuit_state") && l.contains("svc-1") && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn half_open_lets_the_configured_probes_through_cluster_wide_then_recovers() {
    let redis = TestRedis::start();
    let good = MockUpstream::start("good");
    let bad = MockUpstream::start("bad");
    bad.set_behavior(failing());
    let text = config(Some(&redis), &[&good, &bad], "3s", 2);
    let nodes: Vec<_> = (0..3).map(|_| GatewayProcess::start(&text)).collect();
    trip(&nodes[0]).await;
    for n in &nodes {
        assert!(wait_state(n, "svc-1", "open").await);
    }

    // Still failing when the open period ends: a burst through all nodes may only send
    // the configured number of probes in total, and their failure reopens the breaker.
    actix_rt::time::sleep(Duration::from_millis(3200)).await;
    let before = bad.count();
    let burst: Vec<_> = (0..30)
        .map(|i| {
            let url = nodes[i % 3].url("/api/svc/x");
            actix_rt::spawn(async move { get(&url).await.0 })
        })
        .collect();
    for t in burst {
        t.await.unwrap();
    }
    let probes = bad.count() - before;
    assert!((1..=2).contains(&probes), "{probes} probes reached the instance, the cluster allows 2");
    for n in &nodes {
        assert!(wait_state(n, "svc-1", "open").await, "a failed probe must reopen the breaker everywhere");
    }

    // Healthy again: the next round's probes succeed and every node closes the breaker.
    bad.set_behavior(Behavior::default());
    actix_rt::time::sleep(Duration::from_millis(3200)).await;
    let closed = eventually(Duration::from_secs(10), async || {
        for i in 0..6 {
            get(&nodes[i % 3].url("/api/svc/x")).await;
        }
        (circuit_state(&nodes[0], "svc-1").await.as_deref() == Some("closed")).then_some(())
    })
    .await;
    assert!(closed.is_some(), "successful probes did not close the breaker");
    for n in &nodes {
        assert!(wait_state(n, "svc-1", "closed").await);
    }
    let before = bad.count();
    for _ in 0..4 {
        assert_eq!(get(&nodes[1].url("/api/svc/x")).await.0, 200);
    }
    assert!(bad.count() > before, "a closed instance gets traffic again");
}

#[actix_rt::test]
async fn all_instances_open_answer_503_with_retry_after_and_admin_reset_closes() {
    let bad = MockUpstream::start("bad");
    bad.set_behavior(failing());
    let node = GatewayProcess::start(&config(None, &[&bad], "30s", 1));
    for _ in 0..3 {
        assert_eq!(get(&node.url("/api/svc/x")).await.0, 500, "upstream answers pass through until the trip");
    }
    let (status, retry, body) = get(&node.url("/api/svc/x")).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "no_healthy_upstream");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=30).contains(&retry), "Retry-After {retry} is the time until half-open");
    assert_eq!(bad.count(), 3);

    let reset = client().post(node.admin_url("/admin/circuits/svc-0/reset")).send().await.unwrap();
    assert_eq!(reset.status(), 204);
    assert_eq!(circuit_state(&node, "svc-0").await.as_deref(), Some("closed"));
    assert_eq!(get(&node.url("/api/svc/x")).await.0, 500, "after a reset traffic flows again");
    let missing = client().post(node.admin_url("/admin/circuits/nope/reset")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[actix_rt::test]
async fn without_redis_each_node_breaks_on_its_own_and_resyncs_when_it_returns() {
    let mut redis = TestRedis::start();
    let port = redis.port();
    let good = MockUpstream::start("good");
    let bad = MockUpstream::start("bad");
    bad.set_behavior(failing());
    let text = config(Some(&redis), &[&good, &bad], "60s", 1);
    let a = GatewayProcess::start(&text);
    let b = GatewayProcess::start(&text);

    redis.kill();
    trip(&a).await;
    let sent_to_bad = bad.count();
    for _ in 0..10 {
        assert_eq!(get(&a.url("/api/svc/x")).await.0, 200, "the node that saw the failures stops using the instance");
    }
    assert_eq!(bad.count(), sent_to_bad);
    assert_eq!(circuit_state(&b, "svc-1").await.as_deref(), Some("closed"), "no Redis, no sharing");

    let _redis = TestRedis::start_on(port);
    assert!(wait_state(&b, "svc-1", "open").await, "the open breaker reached the other node after Redis returned");
}
