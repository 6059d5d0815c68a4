//! Black-box tests of the Redis-backed registry (SPEC §10–§11): three gateway processes
//! sharing one redis-server, driven through the admin API.

use std::time::Duration;

use cluster_tests::{GatewayProcess, MockUpstream, TestRedis, client, eventually};
use serde_json::{Value, json};

fn node(redis: &TestRedis, id: &str, extra: &str) -> GatewayProcess {
    GatewayProcess::start(&format!(
        "[node]\nid = \"{id}\"\nworkers = 1\n[redis]\nurl = \"{}\"\n[rate_limit.policies.default]\nlimit = 10\nwindow = \"1m\"\n{extra}",
        redis.url()
    ))
}

fn cluster(redis: &TestRedis) -> Vec<GatewayProcess> {
    ["gw-a", "gw-b", "gw-c"].iter().map(|id| node(redis, id, "")).collect()
}

async fn admin(method: &str, gw: &GatewayProcess, path: &str, body: Option<Value>) -> (u16, Value) {
    let c = client();
    let req = c.request(method.parse().unwrap(), gw.admin_url(path));
    let mut res = match body {
        Some(b) => req.send_json(&b).await.unwrap(),
        None => req.send().await.unwrap(),
    };
    let status = res.status().as_u16();
    let bytes = res.body().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn raw_admin(method: &str, gw: &GatewayProcess, path: &str, body: &'static str) -> (u16, Value) {
    let mut res = client()
        .request(method.parse().unwrap(), gw.admin_url(path))
        .insert_header(("content-type", "application/json"))
        .send_body(body)
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, serde_json::from_slice(&res.body().await.unwrap()).unwrap_or(Value::Null))
}

/// Polls until `path` on `gw` is answered by upstream `want` (None = 404 route_not_found).
/// How long a change may take to reach every node here: Pub/Sub normally takes
/// milliseconds, but a loaded CI box can make a node's fetch time out and retry.
const PROPAGATION: Duration = Duration::from_secs(10);

async fn routes_to(gw: &GatewayProcess, path: &str, want: Option<&str>) -> bool {
    let url = gw.url(path);
    eventually(PROPAGATION, async || {
        let res = client().get(url.as_str()).send().await.ok()?;
        let up = res.headers().get("x-upstream").and_then(|v| v.to_str().ok()).map(str::to_string);
        let ok = match want {
            Some(w) => res.status() == 200 && up.as_deref() == Some(w),
            None => res.status() == 404 && up.is_none(),
        };
        ok.then_some(())
    })
    .await
    .is_some()
}

fn redis_conn(redis: &TestRedis) -> redis::Connection {
    redis::Client::open(redis.url()).unwrap().get_connection().unwrap()
}

#[actix_rt::test]
async fn a_service_created_on_one_node_routes_changes_and_disappears_everywhere() {
    let redis = TestRedis::start();
    let v1 = MockUpstream::start("v1");
    let v2 = MockUpstream::start("v2");
    let nodes = cluster(&redis);

    let (status, body) =
        admin("POST", &nodes[0], "/admin/services", Some(json!({"name": "users", "endpoints": [v1.url()]}))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["prefix"], "/api/users");
    assert_eq!(body["balancer"], "round_robin");
    for n in &nodes {
        assert!(routes_to(n, "/api/users/1", Some("v1")).await, "node {} does not route the new service", n.port);
    }

    let (status, body) =
        admin("PATCH", &nodes[1], "/admin/services/users", Some(json!({"endpoints": [v2.url()]}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["endpoints"], json!([v2.url()]));
    for n in &nodes {
        assert!(routes_to(n, "/api/users/1", Some("v2")).await, "node {} kept the old endpoint", n.port);
    }

    let (status, body) =
        admin("PUT", &nodes[2], "/admin/services/users", Some(json!({"prefix": "/people", "endpoints": [v1.url()]})))
            .await;
    assert_eq!(status, 200, "{body}");
    for n in &nodes {
        assert!(routes_to(n, "/people/1", Some("v1")).await);
        assert!(routes_to(n, "/api/users/1", None).await);
    }

    let (status, _) = admin("DELETE", &nodes[0], "/admin/services/users", None).await;
    assert_eq!(status, 204);
    for n in &nodes {
        assert!(routes_to(n, "/people/1", None).await, "node {} still routes a deleted service", n.port);
    }
    let (status, body) = admin("GET", &nodes[2], "/admin/services/users", None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, _) = admin("DELETE", &nodes[2], "/admin/services/users", None).await;
    assert_eq!(status, 404);
}

#[actix_rt::test]
async fn every_change_is_published_on_the_events_channel() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("up");
    let gw = node(&redis, "gw-a", "");
    let mut conn = redis_conn(&redis);
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut pubsub = conn.as_pubsub();
    pubsub.subscribe("gw:events").unwrap();

    let (status, _) =
        admin("POST", &gw, "/admin/services", Some(json!({"name": "orders", "endpoints": [up.url()]}))).await;
    assert_eq!(status, 201);
    let msg = pubsub.get_message().unwrap();
    let event: Value = serde_json::from_str(&msg.get_payload::<String>().unwrap()).unwrap();
    assert_eq!(event["kind"], "service_created");
    assert_eq!(event["service"], "orders");
    assert_eq!(event["node"], "gw-a");
    assert!(event["version"].as_u64().unwrap() >= 1);
    assert!(event["at"].as_str().unwrap().ends_with('Z'));
}

#[actix_rt::test]
async fn services_survive_a_restart_of_every_node_and_file_services_are_upserted() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("up");
    let file_service = format!("[[services]]\nname = \"from-file\"\nendpoints = [\"{}\"]\n", up.url());
    let mut first = node(&redis, "gw-a", &file_service);
    let (status, _) =
        admin("POST", &first, "/admin/services", Some(json!({"name": "made", "endpoints": [up.url()]}))).await;
    assert_eq!(status, 201);
    first.kill();
    drop(first);

    let second = node(&redis, "gw-b", "");
    assert!(routes_to(&second, "/api/made/x", Some("up")).await);
    assert!(routes_to(&second, "/api/from-file/x", Some("up")).await);
    let (_, list) = admin("GET", &second, "/admin/services", None).await;
    let names: Vec<&str> = list.as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, vec!["from-file", "made"]);
}

#[actix_rt::test]
async fn nodes_keep_routing_while_redis_is_down_and_resync_when_it_returns() {
    let mut redis = TestRedis::start();
    let port = redis.port();
    let up = MockUpstream::start("up");
    let file_service = format!("[[services]]\nname = \"seed\"\nendpoints = [\"{}\"]\n", up.url());
    let nodes: Vec<_> = ["gw-a", "gw-b"].iter().map(|id| node(&redis, id, &file_service)).collect();
    let (status, _) =
        admin("POST", &nodes[0], "/admin/services", Some(json!({"name": "live", "endpoints": [up.url()]}))).await;
    assert_eq!(status, 201);
    assert!(routes_to(&nodes[1], "/api/live/x", Some("up")).await);

    redis.kill();
    for n in &nodes {
        assert!(routes_to(n, "/api/live/x", Some("up")).await, "lost routes when redis died");
    }
    let health_url = nodes[0].admin_url("/health");
    let down = eventually(Duration::from_secs(5), async || {
        let mut res = client().get(health_url.as_str()).send().await.ok()?;
        let body: Value = serde_json::from_slice(&res.body().await.ok()?).ok()?;
        (body["redis"] == "down" && body["status"] == "degraded").then_some(body)
    })
    .await;
    assert!(down.is_some(), "health does not report redis down");
    let (status, body) =
        admin("POST", &nodes[0], "/admin/services", Some(json!({"name": "x", "endpoints": [up.url()]}))).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("redis_unavailable")));

    // Redis comes back empty: nodes write their file services again and take new changes.
    let _redis = TestRedis::start_on(port);
    for n in &nodes {
        let ready = eventually(Duration::from_secs(10), async || n.is_ready().then_some(())).await;
        assert!(ready.is_some(), "not ready after redis returned; log:\n{}", n.log_text());
    }
    let created = eventually(Duration::from_secs(5), async || {
        let (s, _) =
            admin("POST", &nodes[1], "/admin/services", Some(json!({"name": "after", "endpoints": [up.url()]}))).await;
        (s == 201).then_some(())
    })
    .await;
    assert!(created.is_some());
    for n in &nodes {
        assert!(routes_to(n, "/api/after/x", Some("up")).await, "after: {}", n.log_text());
        assert!(routes_to(n, "/api/seed/x", Some("up")).await, "seed: {}", n.log_text());
    }
}

#[actix_rt::test]
async fn an_event_with_a_skipped_version_triggers_a_full_reload() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("up");
    let gw = node(&redis, "gw-a", "");
    let (status, _) = admin("POST", &gw, "/admin/services", Some(json!({"name": "a", "endpoints": [up.url()]}))).await;
    assert_eq!(status, 201);

    // Write a service behind the gateway's back, skipping a version, and announce only that.
    let mut conn = redis_conn(&redis);
    let spec = json!({"name": "sneaky", "endpoints": [up.url()]}).to_string();
    let _: () = redis::cmd("HSET").arg("gw:{registry}:service:sneaky").arg("spec").arg(&spec).query(&mut conn).unwrap();
    let _: () = redis::cmd("SADD").arg("gw:{registry}:services").arg("sneaky").query(&mut conn).unwrap();
    let v: u64 = redis::cmd("INCRBY").arg("gw:{registry}:version").arg(2).query(&mut conn).unwrap();
    let event = json!({"version": v, "kind": "service_created", "service": "other", "node": "test", "at": "2026-01-01T00:00:00Z"});
    let _: () = redis::cmd("PUBLISH").arg("gw:events").arg(event.to_string()).query(&mut conn).unwrap();

    assert!(routes_to(&gw, "/api/sneaky/x", Some("up")).await, "gap did not trigger a reload");
}

#[actix_rt::test]
async fn bad_admin_input_is_refused_with_the_field_and_nothing_is_written() {
    let redis = TestRedis::start();
    let gw = node(&redis, "gw-a", "");
    let (status, _) =
        admin("POST", &gw, "/admin/services", Some(json!({"name": "taken", "endpoints": ["http://127.0.0.1:1"]})))
            .await;
    assert_eq!(status, 201);
    let mut conn = redis_conn(&redis);
    let version_before: u64 = redis::cmd("GET").arg("gw:{registry}:version").query(&mut conn).unwrap();

    let cases: Vec<(&str, &'static str, u16, &str, Option<&str>)> = vec![
        ("malformed JSON", r#"{"name": "x", "#, 400, "validation_failed", None),
        ("wrong type", r#"{"name": "x", "retries": "many"}"#, 400, "validation_failed", Some("retries")),
        ("unknown field", r#"{"name": "x", "colour": "red"}"#, 400, "validation_failed", Some("colour")),
        (
            "invalid URL",
            r#"{"name": "x", "endpoints": ["gopher://h"]}"#,
            400,
            "validation_failed",
            Some("endpoints[0]"),
        ),
        ("bad balancer", r#"{"name": "x", "balancer": "random"}"#, 400, "validation_failed", Some("balancer")),
        ("unknown policy", r#"{"name": "x", "rate_limit": "gold"}"#, 400, "validation_failed", Some("rate_limit")),
        ("duplicate name", r#"{"name": "taken"}"#, 409, "conflict", Some("name")),
        ("prefix clash", r#"{"name": "y", "prefix": "/api/taken"}"#, 409, "conflict", Some("prefix")),
    ];
    for (what, body, want_status, want_code, want_field) in cases {
        let (status, err) = raw_admin("POST", &gw, "/admin/services", body).await;
        assert_eq!(status, want_status, "{what}: {err}");
        assert_eq!(err["error"], want_code, "{what}: {err}");
        assert!(err["request_id"].is_string(), "{what}: {err}");
        if let Some(f) = want_field {
            assert_eq!(err["field"], f, "{what}: {err}");
        }
    }
    let (status, err) = raw_admin("PATCH", &gw, "/admin/services/taken", r#"{"timeout": "soon"}"#).await;
    assert_eq!((status, err["field"].as_str()), (400, Some("timeout")));
    let (status, err) = raw_admin("PUT", &gw, "/admin/services/taken", r#"{"name": "other"}"#).await;
    assert_eq!((status, err["field"].as_str()), (400, Some("name")));

    let version_after: u64 = redis::cmd("GET").arg("gw:{registry}:version").query(&mut conn).unwrap();
    assert_eq!(version_before, version_after, "a refused change bumped the version");
    let names: Vec<String> = redis::cmd("SMEMBERS").arg("gw:{registry}:services").query(&mut conn).unwrap();
    assert_eq!(names, vec!["taken".to_string()]);
}

#[actix_rt::test]
async fn admin_nodes_lists_every_live_node() {
    let redis = TestRedis::start();
    let nodes = cluster(&redis);
    let listed = eventually(Duration::from_secs(5), async || {
        let (status, body) = admin("GET", &nodes[0], "/admin/nodes", None).await;
        let ids: Vec<String> = body.as_array()?.iter().filter_map(|n| n["id"].as_str().map(String::from)).collect();
        (status == 200 && ids.len() == 3).then_some(body)
    })
    .await
    .expect("three nodes listed");
    for n in listed.as_array().unwrap() {
        for field in ["id", "address", "started_at", "last_seen"] {
            assert!(n[field].is_string(), "{field} missing in {n}");
        }
    }
}

#[actix_rt::test]
async fn admin_instances_route_everywhere_and_list_with_their_source() {
    let redis = TestRedis::start();
    let base = MockUpstream::start("base");
    let extra = MockUpstream::start("extra");
    let nodes: Vec<_> = ["gw-a", "gw-b"].iter().map(|id| node(&redis, id, "")).collect();
    let (s, _) =
        admin("POST", &nodes[0], "/admin/services", Some(json!({"name": "svc", "endpoints": [base.url()]}))).await;
    assert_eq!(s, 201);
    // Drain the base endpoint so only registered instances can take traffic.
    let (s, _) = admin(
        "PATCH",
        &nodes[0],
        "/admin/services/svc",
        Some(json!({"endpoints": [{"url": base.url(), "weight": 0}]})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, inst) =
        admin("POST", &nodes[0], "/admin/services/svc/instances", Some(json!({"id": "i-1", "url": extra.url()}))).await;
    assert_eq!(s, 201, "{inst}");
    assert_eq!(inst["source"], "admin");
    for n in &nodes {
        assert!(routes_to(n, "/api/svc/x", Some("extra")).await, "instance not routed on {}", n.port);
    }
    let (_, list) = admin("GET", &nodes[1], "/admin/services/svc/instances", None).await;
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["id"], "svc-0");
    assert_eq!(list[0]["source"], "admin");
    assert_eq!(list[1], json!({"id": "i-1", "url": extra.url(), "weight": 1, "healthy": true, "source": "admin"}));

    let (s, _) = admin("DELETE", &nodes[1], "/admin/services/svc/instances/i-1", None).await;
    assert_eq!(s, 204);
    for n in &nodes {
        let url = n.url("/api/svc/x");
        let gone = eventually(PROPAGATION, async || {
            (client().get(url.as_str()).send().await.ok()?.status() == 503).then_some(())
        })
        .await;
        assert!(gone.is_some(), "deregistered instance still routed on {}", n.port);
    }
    let (s, body) = admin("DELETE", &nodes[1], "/admin/services/svc/instances/i-1", None).await;
    assert_eq!((s, body["error"].as_str()), (404, Some("not_found")));
    let (s, _) = admin("POST", &nodes[1], "/admin/services/nope/instances", Some(json!({"url": extra.url()}))).await;
    assert_eq!(s, 404);
    let (s, body) = admin("POST", &nodes[1], "/admin/services/svc/instances", Some(json!({"url": "nope"}))).await;
    assert_eq!((s, body["field"].as_str()), (400, Some("url")));
}

#[actix_rt::test]
async fn an_instance_that_stops_heartbeating_is_removed() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("self");
    let nodes: Vec<_> = ["gw-a", "gw-b"].iter().map(|id| node(&redis, id, "")).collect();
    let (s, _) = admin("POST", &nodes[0], "/admin/services", Some(json!({"name": "reg"}))).await;
    assert_eq!(s, 201);
    let (s, inst) = admin(
        "POST",
        &nodes[1],
        "/admin/services/reg/instances",
        Some(json!({"id": "beating", "url": up.url(), "ttl": "2s"})),
    )
    .await;
    assert_eq!((s, inst["source"].as_str()), (201, Some("self")));
    let (s, _) = admin(
        "POST",
        &nodes[1],
        "/admin/services/reg/instances",
        Some(json!({"id": "silent", "url": up.url(), "ttl": "1s"})),
    )
    .await;
    assert_eq!(s, 201);

    // Keep one alive for a while; the other goes silent.
    for _ in 0..8 {
        let (s, _) = admin("PUT", &nodes[0], "/admin/services/reg/instances/beating/heartbeat", None).await;
        assert_eq!(s, 204);
        actix_rt::time::sleep(Duration::from_millis(400)).await;
    }
    for n in &nodes {
        let (_, list) = admin("GET", n, "/admin/services/reg/instances", None).await;
        let ids: Vec<&str> = list.as_array().unwrap().iter().filter_map(|i| i["id"].as_str()).collect();
        assert_eq!(ids, vec!["beating"], "node {}", n.port);
    }
    let (s, _) = admin("PUT", &nodes[0], "/admin/services/reg/instances/silent/heartbeat", None).await;
    assert_eq!(s, 404);
}

#[actix_rt::test]
async fn health_checks_take_a_dead_endpoint_out_on_every_node() {
    let redis = TestRedis::start();
    let live = MockUpstream::start("live");
    let mut dying = MockUpstream::start("dying");
    let service = format!(
        "[[services]]\nname = \"hc\"\nendpoints = [\"{}\", \"{}\"]\n[services.health_check]\npath = \"/health\"\ninterval = \"200ms\"\nunhealthy_after = 2\nhealthy_after = 1\n",
        live.url(),
        dying.url()
    );
    let nodes: Vec<_> = ["gw-a", "gw-b"].iter().map(|id| node(&redis, id, &service)).collect();
    dying.stop();
    for n in &nodes {
        let url = n.admin_url("/admin/services/hc/instances");
        let marked = eventually(Duration::from_secs(8), async || {
            let mut res = client().get(url.as_str()).send().await.ok()?;
            let list: Value = serde_json::from_slice(&res.body().await.ok()?).ok()?;
            (list[1]["healthy"] == false && list[0]["healthy"] == true).then_some(())
        })
        .await;
        assert!(marked.is_some(), "node {} did not mark the dead endpoint down", n.port);
    }
    for n in &nodes {
        for _ in 0..6 {
            let res = client().get(n.url("/api/hc/x")).send().await.unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers().get("x-upstream").unwrap(), "live");
        }
    }
}

/// Reads an SSE stream until a `data:` line satisfies `want` (or the deadline passes).
async fn sse_until(
    url: String,
    last_event_id: Option<u64>,
    want: impl Fn(&Value) -> bool,
) -> Option<(Option<u64>, Value)> {
    use futures_util::StreamExt;
    let mut req = client().get(url);
    if let Some(id) = last_event_id {
        req = req.insert_header(("Last-Event-ID", id.to_string()));
    }
    let mut res = req.send().await.ok()?;
    assert_eq!(res.headers().get("content-type")?.to_str().ok()?, "text/event-stream");
    let mut buf = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let chunk = actix_rt::time::timeout(Duration::from_secs(5), res.next()).await.ok()??.ok()?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let id = frame.lines().find_map(|l| l.strip_prefix("id: ")).and_then(|v| v.parse().ok());
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                let ev: Value = serde_json::from_str(data).ok()?;
                if want(&ev) {
                    return Some((id, ev));
                }
            }
        }
    }
    None
}

#[actix_rt::test]
async fn sse_subscribers_see_filtered_events_and_can_resume() {
    let redis = TestRedis::start();
    let nodes: Vec<_> = ["gw-a", "gw-b"].iter().map(|id| node(&redis, id, "")).collect();
    let url = nodes[1].admin_url("/admin/events?service=watched&kind=service_created,service_updated");
    let listener = actix_rt::spawn(sse_until(url, None, |ev| ev["service"] == "watched"));
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let (s, _) = admin("POST", &nodes[0], "/admin/services", Some(json!({"name": "other"}))).await;
    assert_eq!(s, 201);
    let (s, _) = admin("POST", &nodes[0], "/admin/services", Some(json!({"name": "watched"}))).await;
    assert_eq!(s, 201);
    let (id, ev) = listener.await.unwrap().expect("the SSE subscriber saw the event");
    assert_eq!(ev["kind"], "service_created");
    assert_eq!(ev["node"], "gw-a");
    assert_eq!(id, ev["version"].as_u64());

    // Resume from before the last change: the missed event is replayed from the log.
    let before = id.unwrap() - 1;
    let url = nodes[0].admin_url("/admin/events");
    let (_, replayed) = sse_until(url, Some(before), |ev| ev["service"] == "watched").await.expect("replayed");
    assert_eq!(replayed["version"].as_u64(), id);
}

#[actix_rt::test]
async fn the_openapi_document_describes_every_admin_route() {
    let redis = TestRedis::start();
    let gw = node(&redis, "gw-a", "");
    let (s, doc) = admin("GET", &gw, "/admin/openapi.json", None).await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/admin/services",
        "/admin/services/{name}",
        "/admin/services/{name}/instances",
        "/admin/services/{name}/instances/{id}",
        "/admin/services/{name}/instances/{id}/heartbeat",
        "/admin/nodes",
        "/admin/events",
        "/admin/consumers",
        "/admin/consumers/{id}",
        "/admin/consumers/{id}/keys",
        "/admin/consumers/{id}/keys/{key_id}",
        "/admin/revocations",
        "/admin/cache",
        "/admin/circuits",
        "/admin/circuits/{instance}/reset",
        "/admin/queues",
        "/admin/queues/{service}/dead",
        "/admin/queues/{service}/dead/{id}/retry",
        "/admin/ratelimits/{policy}/{key}",
        "/admin/analytics",
        "/admin/dashboard",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
}

#[actix_rt::test]
async fn a_service_naming_a_policy_a_node_lacks_is_refused_there_never_let_through_unlimited() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("up");
    // gw-a defines `gold`; gw-b (another config, e.g. mid-rollout) does not.
    let a = node(&redis, "gw-a", "[rate_limit.policies.gold]\nlimit = 2\nwindow = \"1h\"\nkey = \"route\"\n");
    let b = node(&redis, "gw-b", "");
    let body = json!({"name": "gilded", "prefix": "/gilded", "rate_limit": "gold", "endpoints": [up.url()]});
    let (status, answer) = admin("POST", &a, "/admin/services", Some(body.clone())).await;
    assert_eq!(status, 201, "{answer}");
    // Where the policy is unknown the admin API refuses it, naming the field.
    let (status, answer) = admin("PUT", &b, "/admin/services/gilded", Some(body)).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "rate_limit", "{answer}");
    assert!(routes_to(&a, "/gilded/x", Some("up")).await, "gw-a routes and limits");
    // gw-b learns the stored service but cannot limit it: 503 policy_unavailable, not 200.
    let url = b.url("/gilded/x");
    let refused = eventually(PROPAGATION, async || {
        let mut res = client().get(url.as_str()).send().await.ok()?;
        let body: Value = serde_json::from_slice(&res.body().await.ok()?).ok()?;
        (res.status() == 503).then_some(body)
    })
    .await
    .expect("gw-b refuses the service");
    assert_eq!(refused["error"], "policy_unavailable", "{refused}");
    let log = b.log_text();
    assert!(log.contains("names rate-limit policy") && log.contains("gold"), "the refusal is logged");
    // gw-a's limit holds (2 per hour, one used by routes_to above).
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(client().get(a.url("/gilded/x")).send().await.expect("answer").status().as_u16());
        }
        out
    };
    assert_eq!(statuses, [200, 429, 429]);
}
