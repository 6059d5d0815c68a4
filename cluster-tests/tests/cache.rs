//! The response cache end to end (SPEC §7, §16): what is stored and served, `Age` and
//! `X-Cache-Status`, revalidation, stale serving, invalidation, Vary, consumer scope,
//! coalescing within a node and across nodes, purges, and L1-only operation without Redis.

use std::time::Duration;

use cluster_tests::upstream::Behavior;
use cluster_tests::{GatewayProcess, MockUpstream, TestRedis, client, eventually};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp as now};
use serde_json::json;

const SECRET: &str = "cache-secret-of-at-least-32-bytes";

/// Services `c` (shared cache, ttl fallback none) and `priv` (JWT, consumer scope).
fn config(up: &MockUpstream, redis: Option<&TestRedis>, extra: &str) -> String {
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
{extra}
[auth.jwt]
algorithms = ["HS256"]
[[auth.jwt.keys]]
kid = "k1"
secret = "{SECRET}"
[[services]]
name = "c"
endpoints = ["{url}"]
[services.cache]
[[services]]
name = "priv"
auth = "jwt"
endpoints = ["{url}"]
[services.cache]
ttl = "60s"
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
    age: Option<u64>,
    body: Vec<u8>,
    headers: awc::http::header::HeaderMap,
}

async fn send(req: awc::ClientRequest) -> Answer {
    let mut res = req.send().await.expect("gateway answers");
    let h = |n: &str| res.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let cache = h("x-cache-status").unwrap_or_default();
    let age = h("age").and_then(|a| a.parse().ok());
    let headers = res.headers().clone();
    let body = res.body().limit(8 << 20).await.map(|b| b.to_vec()).unwrap_or_default();
    Answer { status: res.status().as_u16(), cache, age, body, headers }
}

/// Behind a load balancer every node sees the same `Host`, which is part of the key.
const HOST: (&str, &str) = ("Host", "api.example");

async fn get(gw: &GatewayProcess, path: &str) -> Answer {
    send(client().get(gw.url(path)).insert_header(HOST)).await
}

#[actix_rt::test]
async fn fresh_responses_are_served_from_the_cache_with_age() {
    let up = MockUpstream::start("up");
    up.set_behavior(with_headers(&[("cache-control", "max-age=60")]));
    let gw = GatewayProcess::start(&config(&up, None, ""));

    let first = get(&gw, "/api/c/x?b=2&a=1").await;
    assert_eq!((first.status, first.cache.as_str()), (200, "MISS"));
    let second = get(&gw, "/api/c/x?a=1&b=2").await;
    assert_eq!((second.status, second.cache.as_str()), (200, "HIT"), "query parameters are sorted in the key");
    assert_eq!(second.body, first.body);
    assert!(second.age.is_some(), "hits carry Age");
    assert_eq!(up.count(), 1);

    let head = send(client().head(gw.url("/api/c/x?a=1&b=2")).insert_header(HOST)).await;
    assert_eq!((head.status, head.cache.as_str()), (200, "HIT"));
    let post = send(client().post(gw.url("/api/c/other")).insert_header(HOST)).await;
    assert_eq!(post.cache, "BYPASS");
    let bypass =
        send(client().get(gw.url("/api/c/x?a=1&b=2")).insert_header(HOST).insert_header(("Cache-Control", "no-store")))
            .await;
    assert_eq!(bypass.cache, "BYPASS");
    let revalidate =
        send(client().get(gw.url("/api/c/x?a=1&b=2")).insert_header(HOST).insert_header(("Cache-Control", "no-cache")))
            .await;
    assert_eq!(revalidate.cache, "MISS", "request no-cache fetches again");
    assert_eq!(up.count(), 4);

    // The client's own validators are answered from the cache.
    up.set_behavior(with_headers(&[("cache-control", "max-age=60"), ("etag", "\"v1\"")]));
    get(&gw, "/api/c/tagged").await;
    let not_modified =
        send(client().get(gw.url("/api/c/tagged")).insert_header(HOST).insert_header(("If-None-Match", "\"v1\"")))
            .await;
    assert_eq!((not_modified.status, not_modified.cache.as_str()), (304, "HIT"));
}

#[actix_rt::test]
async fn responses_that_forbid_or_lack_freshness_are_not_stored() {
    let up = MockUpstream::start("up");
    let gw = GatewayProcess::start(&config(&up, None, ""));
    let cases: [(&str, &[(&str, &str)]); 5] = [
        ("no-store", &[("cache-control", "no-store, max-age=60")]),
        ("private", &[("cache-control", "private, max-age=60")]),
        ("cookie", &[("cache-control", "max-age=60"), ("set-cookie", "a=b")]),
        ("vary-star", &[("cache-control", "max-age=60"), ("vary", "*")]),
        ("nothing", &[]),
    ];
    for (name, headers) in cases {
        up.set_behavior(with_headers(headers));
        let before = up.count();
        for _ in 0..2 {
            let a = get(&gw, &format!("/api/c/{name}")).await;
            assert_eq!((a.status, a.cache.as_str()), (200, "MISS"), "{name}");
        }
        assert_eq!(up.count() - before, 2, "{name} must not be stored");
    }
    // Too large for max_object (64 KiB).
    up.set_behavior(Behavior {
        body: Some(format!("\"{}\"", "x".repeat(70_000))),
        ..with_headers(&[("cache-control", "max-age=60")])
    });
    get(&gw, "/api/c/big").await;
    assert_eq!(get(&gw, "/api/c/big").await.cache, "MISS");
    // Errors before the cache step still say BYPASS.
    let unauthorized = get(&gw, "/api/priv/x").await;
    assert_eq!((unauthorized.status, unauthorized.cache.as_str()), (401, "BYPASS"));
}

#[actix_rt::test]
async fn stale_entries_are_revalidated_and_a_304_updates_the_stored_headers() {
    let up = MockUpstream::start("up");
    up.set_behavior(with_headers(&[("cache-control", "max-age=1"), ("etag", "\"v1\""), ("x-version", "1")]));
    let gw = GatewayProcess::start(&config(&up, None, ""));
    let first = get(&gw, "/api/c/doc").await;
    assert_eq!(first.cache, "MISS");
    actix_rt::time::sleep(Duration::from_millis(1300)).await;

    up.set_behavior(Behavior {
        status: 304,
        ..with_headers(&[("cache-control", "max-age=60"), ("etag", "\"v1\""), ("x-version", "2")])
    });
    let revalidated = get(&gw, "/api/c/doc").await;
    assert_eq!(revalidated.status, 200);
    assert_eq!(revalidated.body, first.body, "the stored body is served");
    assert_eq!(revalidated.headers.get("x-version").unwrap(), "2", "the 304's headers replace the stored ones");
    let sent = up.recorded().last().cloned().unwrap();
    assert_eq!(sent.header("if-none-match"), Some("\"v1\""));

    let hit = get(&gw, "/api/c/doc").await;
    assert_eq!(hit.cache, "HIT", "the 304 refreshed the entry's freshness");
    assert_eq!(hit.headers.get("x-version").unwrap(), "2");
    assert_eq!(up.count(), 2);
}

#[actix_rt::test]
async fn stale_copies_stand_in_for_errors_and_while_revalidating() {
    let up = MockUpstream::start("up");
    up.set_behavior(with_headers(&[("cache-control", "max-age=1, stale-if-error=60")]));
    let gw = GatewayProcess::start(&config(&up, None, ""));
    let first = get(&gw, "/api/c/sie").await;
    actix_rt::time::sleep(Duration::from_millis(1300)).await;
    up.set_behavior(Behavior { status: 500, ..Behavior::default() });
    let stale = get(&gw, "/api/c/sie").await;
    assert_eq!((stale.status, stale.cache.as_str()), (200, "STALE"));
    assert_eq!(stale.body, first.body);

    // Date has whole-second resolution, so its apparent age can eat most of a 1 s max-age.
    up.set_behavior(with_headers(&[("cache-control", "max-age=3, stale-while-revalidate=30")]));
    get(&gw, "/api/c/swr").await;
    let before = up.count();
    actix_rt::time::sleep(Duration::from_millis(3200)).await;
    let served = get(&gw, "/api/c/swr").await;
    assert_eq!((served.status, served.cache.as_str()), (200, "STALE"));
    let refreshed = eventually(Duration::from_secs(5), async || {
        let a = get(&gw, "/api/c/swr").await;
        (a.cache == "HIT").then_some(())
    })
    .await;
    assert!(refreshed.is_some(), "the background refresh stored a fresh copy");
    assert_eq!(up.count() - before, 1, "refreshed once");
}

#[actix_rt::test]
async fn vary_and_consumer_scope_keep_responses_apart() {
    let up = MockUpstream::start("up");
    up.set_behavior(with_headers(&[("cache-control", "max-age=60"), ("vary", "Accept-Language")]));
    let gw = GatewayProcess::start(&config(&up, None, ""));
    let lang = |l: &'static str| client().get(gw.url("/api/c/v")).insert_header(("Accept-Language", l));
    assert_eq!(send(lang("en")).await.cache, "MISS");
    assert_eq!(send(lang("fr")).await.cache, "MISS");
    assert_eq!(send(lang("en")).await.cache, "HIT");
    assert_eq!(send(lang("fr")).await.cache, "HIT");
    assert_eq!(up.count(), 2);

    up.set_behavior(Behavior::default());
    let token = |sub: &str| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        encode(&h, &json!({"sub": sub, "exp": now() + 600}), &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
    };
    let as_user = |sub: &str| client().get(gw.url("/api/priv/me")).bearer_auth(token(sub));
    assert_eq!(send(as_user("alice")).await.cache, "MISS");
    assert_eq!(send(as_user("alice")).await.cache, "HIT");
    assert_eq!(send(as_user("bob")).await.cache, "MISS", "one consumer never sees another's response");
}

#[actix_rt::test]
async fn concurrent_misses_send_one_upstream_request_within_and_across_nodes() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("up");
    up.set_behavior(Behavior { delay: Duration::from_millis(600), ..with_headers(&[("cache-control", "max-age=60")]) });
    let text = config(&up, Some(&redis), "");
    let nodes: Vec<_> = (0..3).map(|_| GatewayProcess::start(&text)).collect();

    let burst = |path: &'static str, spread: usize| {
        let urls: Vec<String> = (0..24).map(|i| nodes[i % spread].url(path)).collect();
        async move {
            let tasks: Vec<_> = urls
                .into_iter()
                .map(|u| actix_rt::spawn(async move { send(client().get(u).insert_header(HOST)).await }))
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        }
    };
    let one_node = burst("/api/c/slow-one", 1).await;
    assert!(one_node.iter().all(|a| a.status == 200 && a.body == one_node[0].body));
    assert_eq!(up.count(), 1, "one node: concurrent misses coalesce");

    let all_nodes = burst("/api/c/slow-all", 3).await;
    assert!(all_nodes.iter().all(|a| a.status == 200));
    assert_eq!(up.count(), 2, "three nodes: one upstream request in total");
}

#[actix_rt::test]
async fn invalidation_and_purges_reach_every_node_and_redis_loss_falls_back_to_l1() {
    let mut redis = TestRedis::start();
    let up = MockUpstream::start("up");
    up.set_behavior(with_headers(&[("cache-control", "max-age=60")]));
    let text = config(&up, Some(&redis), "l1_ttl = \"30s\"");
    let (a, b) = (GatewayProcess::start(&text), GatewayProcess::start(&text));

    for path in ["/api/c/items/1", "/api/c/items/2", "/api/c/other"] {
        assert_eq!(get(&a, path).await.cache, "MISS");
        assert_eq!(get(&b, path).await.cache, "HIT", "L2 is shared");
    }
    // A successful POST invalidates the URL everywhere, L1s included.
    let post = send(client().post(a.url("/api/c/items/1")).insert_header(HOST)).await;
    assert_eq!(post.status, 200);
    let after = eventually(Duration::from_secs(5), async || {
        let r = get(&b, "/api/c/items/1").await;
        (r.cache == "MISS").then_some(())
    })
    .await;
    assert!(after.is_some(), "node B still served the invalidated entry");

    // Purge by prefix (the client's path) reaches both L1s; other URLs stay.
    let purge = client().delete(a.admin_url("/admin/cache?service=c&prefix=/api/c/items")).send().await.unwrap();
    assert_eq!(purge.status(), 204);
    let purged =
        eventually(Duration::from_secs(5), async || (get(&b, "/api/c/items/2").await.cache == "MISS").then_some(()))
            .await;
    assert!(purged.is_some());
    assert_eq!(get(&b, "/api/c/other").await.cache, "HIT");
    let unknown = client().delete(a.admin_url("/admin/cache?service=nope")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    // Without Redis the node keeps caching in L1; no client sees an error.
    redis.kill();
    let first = get(&a, "/api/c/offline").await;
    assert_eq!((first.status, first.cache.as_str()), (200, "MISS"));
    let second = get(&a, "/api/c/offline").await;
    assert_eq!((second.status, second.cache.as_str()), (200, "HIT"));
}

#[actix_rt::test]
async fn large_bodies_are_cached_byte_identical_up_to_max_object_and_pass_through_above() {
    let up = MockUpstream::start("up");
    let gw = GatewayProcess::start(&config(&up, None, "").replace("max_object = \"64KiB\"", "max_object = \"1MiB\""));
    let big = |kib: usize| {
        let s: String = (0..kib * 1024).map(|i| char::from(b'a' + (i * 7 % 26) as u8)).collect();
        Behavior { body: Some(s), ..with_headers(&[("cache-control", "max-age=60")]) }
    };
    up.set_behavior(big(900));
    let first = get(&gw, "/api/c/900k").await;
    assert_eq!((first.status, first.cache.as_str(), first.body.len()), (200, "MISS", 900 * 1024));
    let hit = get(&gw, "/api/c/900k").await;
    assert_eq!(hit.cache, "HIT");
    assert!(hit.body == first.body, "a cached 900 KiB body is served byte-identical");

    up.set_behavior(big(2048));
    let before = up.count();
    for _ in 0..2 {
        let a = get(&gw, "/api/c/2m").await;
        assert_eq!((a.status, a.cache.as_str(), a.body.len()), (200, "MISS", 2048 * 1024));
    }
    assert_eq!(up.count() - before, 2, "above max_object nothing is stored");
}

#[actix_rt::test]
async fn when_the_filling_node_dies_the_waiting_nodes_still_answer() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("up");
    up.set_behavior(Behavior {
        delay: Duration::from_millis(1500),
        ..with_headers(&[("cache-control", "max-age=60")])
    });
    let text = config(&up, Some(&redis), "").replace("name = \"c\"\n", "name = \"c\"\ntimeout = \"3s\"\n");
    let mut filler = GatewayProcess::start(&text);
    let others: Vec<_> = (0..2).map(|_| GatewayProcess::start(&text)).collect();

    let lead = client().get(filler.url("/api/c/slow")).insert_header(HOST).send();
    let lead = actix_rt::spawn(async move { lead.await.map(|r| r.status().as_u16()) });
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let waiters: Vec<_> = others
        .iter()
        .map(|n| {
            let url = n.url("/api/c/slow");
            actix_rt::spawn(async move { send(client().get(url).insert_header(HOST)).await })
        })
        .collect();
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    filler.kill();
    let _ = lead.await;
    for w in waiters {
        let a = w.await.unwrap();
        assert_eq!(a.status, 200, "a waiter must not inherit the dead filler's failure");
    }
}
