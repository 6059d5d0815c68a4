//! Cache hardening (issue #20, SPEC §7, RFC 9111): no response leaks between clients
//! (`Authorization`, `Cookie`), requests with a body never touch the cache, repeated query
//! parameters keep their order in the key, node headers are never stored, and a request
//! `no-cache` reaches the origin on every node and every layer.

use std::time::Duration;

use bytes::Bytes;
use cluster_tests::upstream::Behavior;
use cluster_tests::{GatewayProcess, MockUpstream, TestRedis, client};
use serde_json::{Value, json};

/// Service `c`: shared scope (no auth), service `ttl` as the only freshness source;
/// `cache_extra` goes into `[cache]`, `services` is appended.
fn config(up: &MockUpstream, redis: Option<&TestRedis>, cache_extra: &str, services: &str) -> String {
    let redis = redis.map(|r| format!("[redis]\nurl = \"{}\"\n", r.url())).unwrap_or_default();
    format!(
        r#"
[node]
workers = 2
[log]
access_log = false
{redis}
[cache]
max_object = "64KiB"
{cache_extra}
[[services]]
name = "c"
endpoints = ["{url}"]
[services.cache]
ttl = "60s"
{services}
"#,
        url = up.url()
    )
}

fn with_headers(headers: &[(&str, &str)]) -> Behavior {
    Behavior { headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..Behavior::default() }
}

struct Answer {
    status: u16,
    cache: String,
    body: Vec<u8>,
    headers: awc::http::header::HeaderMap,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn read(sent: awc::SendClientRequest) -> Answer {
    let mut res = sent.await.expect("gateway answers");
    let cache = res.headers().get("x-cache-status").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let headers = res.headers().clone();
    let body = res.body().limit(8 << 20).await.map(|b| b.to_vec()).unwrap_or_default();
    Answer { status: res.status().as_u16(), cache, body, headers }
}

async fn send(req: awc::ClientRequest) -> Answer {
    read(req.send()).await
}

/// Behind a load balancer every node sees the same `Host`, which is part of the key.
const HOST: (&str, &str) = ("Host", "api.example");

fn get(gw: &GatewayProcess, path: &str) -> awc::ClientRequest {
    client().get(gw.url(path)).insert_header(HOST)
}

async fn admin(gw: &GatewayProcess, method: &str, path: &str, body: Value) -> (u16, Value) {
    let req = client().request(method.parse().expect("method"), gw.admin_url(path));
    let mut res = req.send_json(&body).await.expect("admin answers");
    let status = res.status().as_u16();
    let bytes = res.body().await.unwrap_or_default();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[actix_rt::test]
async fn responses_to_authorized_requests_are_shared_only_when_the_response_allows_it() {
    let up = MockUpstream::start("up");
    let gw = GatewayProcess::start(&config(&up, None, "", ""));

    // The service ttl alone makes the answer storable, but it answered a request with
    // credentials (passed through: the service does no auth of its own).
    let authed = send(get(&gw, "/api/c/me").insert_header(("Authorization", "Bearer alice-token"))).await;
    assert_eq!((authed.status, authed.cache.as_str()), (200, "MISS"));
    let anonymous = send(get(&gw, "/api/c/me")).await;
    assert_eq!(anonymous.cache, "MISS", "an anonymous client was served the answer to alice's credentials");
    assert_eq!(up.count(), 2);

    // RFC 9111 §3.5: `public`, `s-maxage` or `must-revalidate` allow a shared cache to reuse it.
    for (i, cc) in ["public", "s-maxage=60", "must-revalidate"].into_iter().enumerate() {
        let path = format!("/api/c/shareable-{i}");
        let before = up.count();
        let authed = send(
            get(&gw, &path)
                .insert_header(("Authorization", "Bearer alice-token"))
                .insert_header(("x-mock-set-header", format!("cache-control: {cc}"))),
        )
        .await;
        assert_eq!((authed.status, authed.cache.as_str()), (200, "MISS"), "{cc}");
        let anonymous = send(get(&gw, &path)).await;
        assert_eq!(anonymous.cache, "HIT", "{cc} lets the shared cache reuse it");
        assert_eq!(up.count() - before, 1, "{cc}");
    }
}

#[actix_rt::test]
async fn requests_with_cookies_bypass_the_shared_cache_unless_the_service_ignores_cookies() {
    let up = MockUpstream::start("up");
    let ignore = format!(
        "[[services]]\nname = \"ck\"\nendpoints = [\"{}\"]\n[services.cache]\nttl = \"60s\"\ncookies = \"ignore\"\n",
        up.url()
    );
    let gw = GatewayProcess::start(&config(&up, None, "", &ignore));
    let cookie = ("Cookie", "session=alice");

    let with_cookie = send(get(&gw, "/api/c/page").insert_header(cookie)).await;
    assert_eq!((with_cookie.status, with_cookie.cache.as_str()), (200, "BYPASS"));
    assert_eq!(send(get(&gw, "/api/c/page")).await.cache, "MISS", "a request with a cookie stored nothing");
    assert_eq!(send(get(&gw, "/api/c/page")).await.cache, "HIT");
    let before = up.count();
    let again = send(get(&gw, "/api/c/page").insert_header(cookie)).await;
    assert_eq!(again.cache, "BYPASS", "a request with a cookie is never served the shared entry");
    assert_eq!(up.count(), before + 1);

    // `cookies = "ignore"`: the service says its answers do not depend on cookies.
    assert_eq!(send(get(&gw, "/api/ck/page").insert_header(cookie)).await.cache, "MISS");
    assert_eq!(send(get(&gw, "/api/ck/page")).await.cache, "HIT");
    assert_eq!(send(get(&gw, "/api/ck/page").insert_header(cookie)).await.cache, "HIT");

    // The key is part of the service object, so the admin API takes (and checks) it too.
    let svc = |cookies: &str| json!({"name": "adm", "endpoints": [up.url()], "cache": {"cookies": cookies}});
    let (status, body) = admin(&gw, "POST", "/admin/services", svc("ignore")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["cache"]["cookies"], "ignore");
    let (status, body) = admin(&gw, "PUT", "/admin/services/adm", svc("sometimes")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["field"].as_str().is_some_and(|f| f.contains("cookies")), "{body}");
}

#[actix_rt::test]
async fn get_requests_with_a_body_bypass_the_cache_and_are_still_proxied() {
    let up = MockUpstream::start("up");
    let gw = GatewayProcess::start(&config(&up, None, "", ""));

    assert_eq!(send(get(&gw, "/api/c/search")).await.cache, "MISS");
    assert_eq!(send(get(&gw, "/api/c/search")).await.cache, "HIT");
    let sized = read(get(&gw, "/api/c/search").send_body("q=secret")).await;
    assert_eq!((sized.status, sized.cache.as_str()), (200, "BYPASS"), "a sized body must not get the bodiless entry");
    assert_eq!(up.recorded().last().map(|r| r.body.clone()), Some(b"q=secret".to_vec()), "the body reached upstream");
    let chunk = futures_util::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"q=chunked")) });
    let chunked = read(get(&gw, "/api/c/search").send_stream(chunk)).await;
    assert_eq!((chunked.status, chunked.cache.as_str()), (200, "BYPASS"));
    assert_eq!(up.recorded().last().map(|r| r.body.clone()), Some(b"q=chunked".to_vec()));
    assert_eq!(up.count(), 3);

    // And what a request with a body gets back is never stored under the bodiless key.
    assert_eq!(read(get(&gw, "/api/c/other").send_body("x")).await.cache, "BYPASS");
    assert_eq!(send(get(&gw, "/api/c/other")).await.cache, "MISS");
}

#[actix_rt::test]
async fn repeated_query_parameters_keep_their_order_in_the_key() {
    let up = MockUpstream::start("up");
    let gw = GatewayProcess::start(&config(&up, None, "", ""));

    assert_eq!(send(get(&gw, "/api/c/q?x=1&x=2")).await.cache, "MISS");
    assert_eq!(send(get(&gw, "/api/c/q?x=2&x=1")).await.cache, "MISS", "x=2&x=1 is another resource");
    assert_eq!(send(get(&gw, "/api/c/q?x=1&x=2")).await.cache, "HIT");
    assert_eq!(send(get(&gw, "/api/c/q?x=2&x=1")).await.cache, "HIT");
    // Distinct names still sort; repeated ones keep their relative order among them.
    assert_eq!(send(get(&gw, "/api/c/q?b=1&x=1&a=2&x=2")).await.cache, "MISS");
    assert_eq!(send(get(&gw, "/api/c/q?x=1&a=2&x=2&b=1")).await.cache, "HIT");
    assert_eq!(send(get(&gw, "/api/c/q?x=2&a=2&x=1&b=1")).await.cache, "MISS");
    let queries: Vec<String> = up.recorded().into_iter().map(|r| r.query).collect();
    assert_eq!(
        queries,
        ["x=1&x=2", "x=2&x=1", "b=1&x=1&a=2&x=2", "x=2&a=2&x=1&b=1"],
        "upstream gets the query as sent"
    );
}

#[actix_rt::test]
async fn node_headers_are_added_by_the_serving_node_and_never_stored() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("up");
    up.set_behavior(with_headers(&[("cache-control", "max-age=60"), ("via", "1.1 origin-proxy")]));
    // No L1: every hit reads what the last filler wrote to Redis.
    let text = config(&up, Some(&redis), "l1_capacity = \"0\"", "");
    let a = GatewayProcess::builder(text.clone()).env("GATEWAY__NODE__ID", "gw-a").spawn();
    let b = GatewayProcess::builder(text).env("GATEWAY__NODE__ID", "gw-b").spawn();

    let filled = send(get(&a, "/api/c/n")).await;
    assert_eq!(filled.cache, "MISS");
    assert_eq!(filled.header("via"), Some("1.1 origin-proxy, 1.1 gw-a"));
    let hit = send(get(&b, "/api/c/n")).await;
    assert_eq!(hit.cache, "HIT");
    assert_eq!(hit.header("x-gateway-node"), Some("gw-b"));
    assert_eq!(hit.header("via"), Some("1.1 origin-proxy, 1.1 gw-b"), "B replayed A's Via");
    let own = send(get(&a, "/api/c/n")).await;
    assert_eq!((own.cache.as_str(), own.header("via")), ("HIT", Some("1.1 origin-proxy, 1.1 gw-a")));

    // A revalidation (304) on B refreshes the stored headers without B's Via in them.
    up.set_behavior(with_headers(&[("cache-control", "max-age=1"), ("etag", "\"v1\""), ("via", "1.1 origin-proxy")]));
    assert_eq!(send(get(&a, "/api/c/r")).await.cache, "MISS");
    actix_rt::time::sleep(Duration::from_millis(1300)).await;
    up.set_behavior(Behavior {
        status: 304,
        ..with_headers(&[("cache-control", "max-age=60"), ("etag", "\"v1\""), ("via", "1.1 origin-proxy")])
    });
    let revalidated = send(get(&b, "/api/c/r")).await;
    assert_eq!((revalidated.status, revalidated.header("via")), (200, Some("1.1 origin-proxy, 1.1 gw-b")));
    let hit = send(get(&a, "/api/c/r")).await;
    assert_eq!(hit.cache, "HIT");
    assert_eq!(hit.header("via"), Some("1.1 origin-proxy, 1.1 gw-a"), "A replayed B's Via from the refreshed entry");
}

#[actix_rt::test]
async fn request_no_cache_reaches_the_origin_on_every_node_and_layer() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("up");
    up.set_behavior(with_headers(&[("cache-control", "max-age=60"), ("etag", "\"v1\"")]));
    let text = config(&up, Some(&redis), "l1_ttl = \"30s\"", "");
    let (a, b) = (GatewayProcess::start(&text), GatewayProcess::start(&text));

    let first = send(get(&a, "/api/c/doc")).await;
    assert_eq!(first.cache, "MISS");
    assert_eq!(send(get(&a, "/api/c/doc")).await.cache, "HIT", "in A's L1");
    assert_eq!(send(get(&b, "/api/c/doc")).await.cache, "HIT", "from L2, now in B's L1 too");
    assert_eq!(up.count(), 1);

    let no_cache = ("Cache-Control", "no-cache");
    let pragma = ("Pragma", "no-cache");
    for (node, header, seen) in [(&a, no_cache, 2), (&b, no_cache, 3), (&a, pragma, 4), (&b, pragma, 5)] {
        let answer = send(get(node, "/api/c/doc").insert_header(header)).await;
        assert_eq!((answer.status, answer.cache.as_str()), (200, "MISS"), "{header:?}");
        assert_eq!(up.count(), seen, "{header:?} on port {} did not reach the origin", node.port);
        let sent = up.recorded().pop().expect("recorded");
        assert_eq!(sent.header("if-none-match"), Some("\"v1\""), "a conditional revalidation");
    }
    // The origin confirming with a 304 refreshes the entry; the client gets the stored body.
    let confirmed = send(get(&b, "/api/c/doc").insert_header(no_cache).insert_header(("x-mock-status", "304"))).await;
    assert_eq!((confirmed.status, confirmed.body), (200, first.body.clone()));
    assert_eq!(up.count(), 6);
    // With a Cache-Control, Pragma is ignored (RFC 9111 §5.4).
    let both = send(get(&a, "/api/c/doc").insert_header(pragma).insert_header(("Cache-Control", "max-age=600"))).await;
    assert_eq!(both.cache, "HIT");
    assert_eq!(up.count(), 6);
}
