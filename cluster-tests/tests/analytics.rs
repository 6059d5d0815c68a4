//! Usage analytics end to end (SPEC §12, §16): traffic through three nodes lands in one
//! cluster-wide aggregate (per service, status class, consumer, endpoint; rate-limit
//! breaches, cache hits, ordered percentiles), range and service filters, validation,
//! Redis loss (requests unaffected, `analytics` degraded, drops counted), memory mode, and
//! the token-free dashboard page.

use std::time::Duration;

use cluster_tests::upstream::Behavior;
use cluster_tests::{GatewayProcess, MockUpstream, TestRedis, client, eventually};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp as now};
use serde_json::{Value, json};

const SECRET: &str = "analytics-secret-of-at-least-32-bytes";
const ADMIN: &str = "admin-t0ken-for-tests";

/// Services: `plain` (no auth), `shop` (JWT, 3 requests per consumer), `cat` (cached).
fn config(plain: &MockUpstream, cached: &MockUpstream, redis: Option<&TestRedis>) -> String {
    let redis = redis.map(|r| format!("[redis]\nurl = \"{}\"\n", r.url())).unwrap_or_default();
    format!(
        r#"
[node]
workers = 1
[admin]
token = "{ADMIN}"
[log]
access_log = false
{redis}
[auth.jwt]
algorithms = ["HS256"]
[[auth.jwt.keys]]
kid = "k1"
secret = "{SECRET}"
[rate_limit.policies.tight]
algorithm = "fixed_window"
limit = 3
window = "1h"
key = "consumer"
[[services]]
name = "plain"
endpoints = ["{plain}"]
[[services]]
name = "shop"
auth = "jwt"
rate_limit = "tight"
endpoints = ["{plain}"]
[[services]]
name = "cat"
endpoints = ["{cached}"]
[services.cache]
"#,
        plain = plain.url(),
        cached = cached.url()
    )
}

fn token(sub: &str) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k1".into());
    encode(&h, &json!({"sub": sub, "exp": now() + 600}), &EncodingKey::from_secret(SECRET.as_bytes()))
        .expect("test token")
}

fn cached_upstream() -> MockUpstream {
    let up = MockUpstream::start("cached");
    up.set_behavior(Behavior { headers: vec![("cache-control".into(), "max-age=60".into())], ..Behavior::default() });
    up
}

async fn status_of(req: awc::ClientRequest) -> (u16, String) {
    let res = req.send().await.expect("gateway answers");
    let cache = res.headers().get("x-cache-status").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (res.status().as_u16(), cache)
}

async fn admin_get(gw: &GatewayProcess, path: &str) -> (u16, Value) {
    let mut res = client()
        .get(gw.admin_url(path))
        .insert_header(("authorization", format!("Bearer {ADMIN}")))
        .send()
        .await
        .expect("admin answers");
    let body = res.body().limit(4 << 20).await.expect("body");
    (res.status().as_u16(), serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn report_with(gw: &GatewayProcess, query: &str, requests: u64) -> Option<Value> {
    eventually(Duration::from_secs(10), async || {
        let (status, body) = admin_get(gw, &format!("/admin/analytics{query}")).await;
        (status == 200 && body["totals"]["requests"] == requests).then_some(body)
    })
    .await
}

fn assert_percentiles_ordered(stats: &Value) {
    let (p50, p95, p99) = (stats["p50_ms"].as_f64(), stats["p95_ms"].as_f64(), stats["p99_ms"].as_f64());
    let (p50, p95, p99) = (p50.expect("p50"), p95.expect("p95"), p99.expect("p99"));
    assert!(p50 > 0.0 && p50 <= p95 && p95 <= p99, "percentiles {p50} {p95} {p99}");
}

#[actix_rt::test]
async fn traffic_through_three_nodes_appears_in_one_cluster_wide_aggregate() {
    let redis = TestRedis::start();
    let (plain, cached) = (MockUpstream::start("plain"), cached_upstream());
    let text = config(&plain, &cached, Some(&redis));
    let nodes: Vec<_> = (0..3).map(|_| GatewayProcess::start(&text)).collect();
    let c = client();

    // plain: 6 successes and 3 upstream errors, spread over the nodes.
    for i in 0..9 {
        let mut req = c.get(nodes[i % 3].url(&format!("/api/plain/items/{i}")));
        if i % 3 == 2 {
            req = req.insert_header(("x-mock-status", "503"));
        }
        let expected = if i % 3 == 2 { 503 } else { 200 };
        assert_eq!(status_of(req).await.0, expected);
    }
    // shop: alice sends 5 (3 admitted, 2 limited cluster-wide), bob sends 2.
    let mut limited = 0;
    for (i, who) in ["alice", "alice", "bob", "alice", "alice", "bob", "alice"].iter().enumerate() {
        let req = c.get(nodes[i % 3].url("/api/shop/cart")).bearer_auth(token(who));
        match status_of(req).await.0 {
            200 => {}
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(limited, 2);
    // cat: the first request fills the cache, later ones are hits.
    let mut hits = 0;
    for _ in 0..4 {
        let (status, cache) = status_of(c.get(nodes[0].url("/api/cat/menu"))).await;
        assert_eq!(status, 200);
        hits += u64::from(cache == "HIT");
    }
    assert!(hits >= 2, "the cache served {hits} hits");

    let report = report_with(&nodes[1], "", 20).await.expect("all 20 requests in the aggregate within 10 s");
    assert_eq!(report["source"], "cluster");
    assert_eq!(report["totals"], json!({"requests": 20, "errors": 3, "rate_limited": 2, "cache_hits": hits}));
    let plain_stats = &report["by_service"]["plain"];
    assert_eq!(plain_stats["requests"], 9);
    assert_eq!(plain_stats["status"], json!({"2xx": 6, "3xx": 0, "4xx": 0, "5xx": 3}));
    assert_eq!(report["by_service"]["shop"]["status"], json!({"2xx": 5, "3xx": 0, "4xx": 2, "5xx": 0}));
    assert_eq!(report["by_service"]["cat"]["requests"], 4);
    for stats in report["by_service"].as_object().expect("by_service").values() {
        assert_percentiles_ordered(stats);
    }
    assert_eq!(
        report["top_consumers"],
        json!([{"consumer": "alice", "requests": 5}, {"consumer": "bob", "requests": 2}])
    );
    assert_eq!(
        report["top_endpoints"][0],
        json!({"service": "plain", "method": "GET", "path": "/api/plain/items/:id", "requests": 9})
    );
    let per_minute = report["per_minute"].as_array().expect("per_minute");
    assert!(per_minute.len() >= 60);
    let minute_sum: u64 = per_minute.iter().filter_map(|m| m["requests"].as_u64()).sum();
    assert_eq!(minute_sum, 20);
    assert!(per_minute.iter().all(|m| m["at"].is_string() && m["p99_ms"].is_number()));

    // Every node answers the same cluster-wide totals.
    for gw in [&nodes[0], &nodes[2]] {
        assert!(report_with(gw, "", 20).await.is_some());
    }

    // service= narrows everything to one service.
    let shop = report_with(&nodes[2], "?service=shop", 7).await.expect("shop only");
    assert_eq!(shop["totals"]["rate_limited"], 2);
    assert_eq!(shop["by_service"].as_object().map(|m| m.len()), Some(1));
    assert!(shop["top_endpoints"].as_array().expect("list").iter().all(|e| e["service"] == "shop"));

    // from/to select minutes: a range in the past holds nothing.
    let (status, past) =
        admin_get(&nodes[0], "/admin/analytics?from=2020-01-01T00:00:00Z&to=2020-01-01T00:10:00Z").await;
    assert_eq!(status, 200);
    assert_eq!(past["totals"]["requests"], 0);
    assert_eq!(past["from"], "2020-01-01T00:00:00Z");
    assert_eq!(past["per_minute"].as_array().map(Vec::len), Some(11));
}

#[actix_rt::test]
async fn bad_bounds_are_refused_and_the_api_needs_the_token_but_the_dashboard_does_not() {
    let (plain, cached) = (MockUpstream::start("plain"), cached_upstream());
    let gw = GatewayProcess::start(&config(&plain, &cached, None));

    let (status, body) = admin_get(&gw, "/admin/analytics?from=yesterday").await;
    assert_eq!(status, 400);
    assert_eq!((body["error"].as_str(), body["field"].as_str()), (Some("validation_failed"), Some("from")));
    let (status, body) = admin_get(&gw, "/admin/analytics?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z").await;
    assert_eq!((status, body["field"].as_str()), (400, Some("from")));

    let res = client().get(gw.admin_url("/admin/analytics")).send().await.expect("answer");
    assert_eq!(res.status(), 401);

    let mut page = client().get(gw.admin_url("/admin/dashboard")).send().await.expect("answer");
    assert_eq!(page.status(), 200);
    let content_type = page.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = String::from_utf8(page.body().limit(1 << 20).await.expect("body").to_vec()).expect("utf-8");
    assert!(!html.contains(ADMIN), "the page must never embed the token");
    assert!(html.contains("/admin/analytics") && html.contains("sessionStorage"));
    assert!(!html.contains("<script src") && !html.contains("<link"), "no external assets");
}

#[actix_rt::test]
async fn memory_mode_answers_the_same_shape() {
    let (plain, cached) = (MockUpstream::start("plain"), cached_upstream());
    let gw = GatewayProcess::start(&config(&plain, &cached, None));
    for i in 0..4 {
        let path = if i == 3 { "/api/plain/boom" } else { "/api/plain/ok" };
        let mut req = client().get(gw.url(path));
        if i == 3 {
            req = req.insert_header(("x-mock-status", "500"));
        }
        status_of(req).await;
    }
    assert_eq!(status_of(client().get(gw.url("/api/shop/cart")).bearer_auth(token("carol"))).await.0, 200);

    let report = report_with(&gw, "", 5).await.expect("memory aggregates");
    assert_eq!(report["source"], "memory");
    for key in ["from", "to", "totals", "by_service", "top_endpoints", "top_consumers", "per_minute"] {
        assert!(!report[key].is_null(), "{key} missing: {report}");
    }
    assert_eq!(report["totals"]["errors"], 1);
    assert_eq!(report["by_service"]["plain"]["status"]["5xx"], 1);
    assert_eq!(report["top_consumers"], json!([{"consumer": "carol", "requests": 1}]));
    assert_percentiles_ordered(&report["by_service"]["plain"]);
}

#[actix_rt::test]
async fn losing_redis_leaves_requests_unaffected_marks_analytics_degraded_and_counts_drops() {
    let mut redis = TestRedis::start();
    let (plain, cached) = (MockUpstream::start("plain"), cached_upstream());
    let gw = GatewayProcess::start(&config(&plain, &cached, Some(&redis)));
    assert_eq!(status_of(client().get(gw.url("/api/plain/before"))).await.0, 200);
    assert!(report_with(&gw, "", 1).await.is_some(), "flushed to Redis");

    redis.kill();
    for _ in 0..5 {
        assert_eq!(status_of(client().get(gw.url("/api/plain/during"))).await.0, 200);
    }
    let degraded = eventually(Duration::from_secs(10), async || {
        let res = client().get(gw.admin_url("/health")).send().await.ok();
        let mut res = res?;
        let body: Value = serde_json::from_slice(&res.body().await.ok()?).ok()?;
        let list = body["degraded"].as_array()?.clone();
        list.iter().any(|d| d == "analytics").then_some(())
    })
    .await;
    assert!(degraded.is_some(), "/health does not list analytics as degraded");
    let dropped = eventually(Duration::from_secs(10), async || {
        let mut res = client().get(gw.admin_url("/metrics")).send().await.ok()?;
        let text = String::from_utf8(res.body().limit(8 << 20).await.ok()?.to_vec()).ok()?;
        let total: f64 = text
            .lines()
            .filter(|l| l.starts_with("gateway_analytics_dropped_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (total > 0.0).then_some(total)
    })
    .await;
    assert!(dropped.is_some(), "gateway_analytics_dropped_total did not rise");
    // The report still answers, from this node's unflushed counters.
    let (status, local) = admin_get(&gw, "/admin/analytics").await;
    assert_eq!(status, 200);
    assert_eq!(local["source"], "local");
    assert!(local["totals"]["requests"].as_u64().unwrap_or(0) >= 5, "{local}");
}
