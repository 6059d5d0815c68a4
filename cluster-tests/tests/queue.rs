//! Queued endpoints end to end (SPEC §9, §11, §16): the cluster-wide start rate across
//! three nodes, no job lost when a node is killed mid-job, max_depth, idempotency,
//! ownership, dead letters and admin retry, sync and async answers, Redis loss — against
//! real gateway processes, a real redis-server and mock upstreams.

use std::collections::HashSet;
use std::time::Duration;

use cluster_tests::jobs::{body_json, finished, job};
use cluster_tests::upstream::Behavior;
use cluster_tests::{GatewayProcess, MockUpstream, TestRedis, client, eventually};
use serde_json::{Value, json};

const HEAVY: &str = "/api/reports/heavy";

fn config(up: &MockUpstream, redis: Option<&TestRedis>, auth: &str, queue: &str) -> String {
    let redis = redis.map(|r| format!("[redis]\nurl = \"{}\"\n", r.url())).unwrap_or_default();
    format!(
        "[node]\nworkers = 1\n[log]\naccess_log = false\n{redis}\n[[services]]\nname = \"reports\"\nauth = \"{auth}\"\nendpoints = [\"{}\"]\n[services.queue]\nmatch = [\"POST {HEAVY}\"]\n{queue}\n",
        up.url()
    )
}

/// POSTs a queued request; answers status, the response headers we look at, and the JSON body.
async fn post(
    gw: &GatewayProcess,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Option<String>, Value) {
    let mut req = client().post(gw.url(HEAVY));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut res = req.send_body(body.to_string()).await.unwrap();
    let h = |n: &str| res.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (location, retry_after) = (h("location"), h("retry-after"));
    (res.status().as_u16(), location, retry_after, body_json(&mut res).await)
}

async fn admin(gw: &GatewayProcess, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let req = match method {
        "POST" => client().post(gw.admin_url(path)),
        _ => client().get(gw.admin_url(path)),
    };
    let mut res = match body {
        Some(b) => req.send_json(&b).await.unwrap(),
        None => req.send().await.unwrap(),
    };
    (res.status().as_u16(), body_json(&mut res).await)
}

#[actix_rt::test]
async fn three_nodes_hold_the_cluster_wide_start_rate_and_run_every_job_once() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("heavy");
    let cfg = config(&up, Some(&redis), "none", "rate = \"20/1s\"\nconcurrency = 4");
    let nodes: Vec<GatewayProcess> = (0..3).map(|_| GatewayProcess::start(&cfg)).collect();

    let mut ids: Vec<String> = Vec::new();
    for batch in (0..300).collect::<Vec<usize>>().chunks(30) {
        let tasks: Vec<_> = batch
            .iter()
            .map(|&i| {
                let url = nodes[i % 3].url(HEAVY);
                actix_rt::spawn(async move {
                    let mut res = client().post(url).send_body(format!("job-{i}")).await.unwrap();
                    assert_eq!(res.status(), 202);
                    body_json(&mut res).await["job_id"].as_str().unwrap().to_string()
                })
            })
            .collect();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
    }
    let drained = eventually(Duration::from_secs(90), async || {
        let (_, queues) = admin(&nodes[0], "GET", "/admin/queues", None).await;
        let q = &queues[0];
        (q["depth"] == 0 && q["processing"] == 0).then_some(())
    })
    .await;

    assert!(drained.is_some(), "the queue did not drain");
    for (i, id) in ids.iter().enumerate() {
        let body = finished(&nodes[(i + 1) % 3], id, None, Duration::from_secs(10)).await;
        assert_eq!((body["status"].as_str(), body["attempts"].as_u64()), (Some("succeeded"), Some(1)), "{body}");
        assert_eq!(body["result"]["status"], 200);
    }
    let recorded = up.recorded();
    assert_eq!(recorded.len(), 300, "every job reached the upstream exactly once");
    let bodies: HashSet<Vec<u8>> = recorded.iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies.len(), 300);
    let mut at: Vec<_> = recorded.iter().map(|r| r.received_at).collect();
    at.sort();
    // Permits are counted on the Redis clock; arrival adds a few ms of scheduling jitter
    // per request, so 21 arrivals must span at least 1 s minus that jitter.
    let jitter = Duration::from_millis(200);
    for (i, w) in at.windows(21).enumerate() {
        assert!(w[20] - w[0] >= Duration::from_secs(1) - jitter, "21 starts within {:?} at {i}", w[20] - w[0]);
    }
    assert!(at[299] - at[0] >= Duration::from_millis(13_500), "300 starts at 20/s took only {:?}", at[299] - at[0]);
}

#[actix_rt::test]
async fn a_node_killed_mid_job_loses_nothing_and_the_reruns_show_in_attempts() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("slow");
    up.set_behavior(Behavior { delay: Duration::from_secs(2), ..Behavior::default() });
    let cfg = config(&up, Some(&redis), "none", "rate = \"100/1s\"\nconcurrency = 4\nlease = \"3s\"");
    let mut doomed = GatewayProcess::start(&cfg);
    let survivor = GatewayProcess::start(&cfg);

    let mut ids = Vec::new();
    for i in 0..8 {
        let (status, _, _, body) = post(&survivor, &format!("job-{i}"), &[]).await;
        assert_eq!(status, 202);
        ids.push(body["job_id"].as_str().unwrap().to_string());
    }
    // Eight idle workers (four per node), eight jobs: each node holds four when all started.
    let all_started = eventually(Duration::from_secs(10), async || (up.count() >= 8).then_some(())).await;
    assert!(all_started.is_some(), "jobs did not start");
    doomed.kill();

    let mut attempts = 0;
    let mut reruns = 0;
    for id in &ids {
        let body = finished(&survivor, id, None, Duration::from_secs(40)).await;
        assert_eq!(body["status"], "succeeded", "{body}");
        let n = body["attempts"].as_u64().unwrap();
        attempts += n;
        reruns += u64::from(n > 1);
    }
    assert!(reruns >= 1, "the killed node's jobs were not re-run");
    let bodies: HashSet<Vec<u8>> = up.recorded().iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies.len(), 8, "every job reached the upstream");
    assert_eq!(up.count() as u64, attempts, "every run started is counted in attempts");
}

#[actix_rt::test]
async fn async_answers_202_with_location_and_sync_answers_the_upstream_response() {
    let redis = TestRedis::start();
    for redis in [None, Some(&redis)] {
        let up = MockUpstream::start("up");
        let gw = GatewayProcess::start(&config(&up, redis, "none", "rate = \"100/1s\""));
        let (status, location, _, body) = post(&gw, "hello", &[]).await;
        assert_eq!(status, 202);
        let id = body["job_id"].as_str().unwrap().to_string();
        assert_eq!(body, json!({"job_id": id, "status_url": format!("/jobs/{id}")}));
        assert_eq!(location.as_deref(), Some(format!("/jobs/{id}").as_str()));
        let done = finished(&gw, &id, None, Duration::from_secs(10)).await;
        assert_eq!(done["attempts"], 1);
        let result: Value = serde_json::from_str(done["result"]["body"].as_str().unwrap()).unwrap();
        assert_eq!((result["path"].as_str(), result["body_len"].as_u64()), (Some("/heavy"), Some(5)));
        assert_eq!(done["result"]["body_encoding"], "utf8");
        assert!(done.get("position").is_none());
        drop(gw);

        let gw = GatewayProcess::start(&config(&up, redis, "none", "mode = \"sync\"\nwait = \"5s\""));
        let (status, _, _, body) = post(&gw, "sync!", &[("x-mock-status", "201")]).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!((body["upstream"].as_str(), body["body_len"].as_u64()), (Some("up"), Some(5)));
        let (status, _, _, body) = post(&gw, "slow", &[("x-mock-delay-ms", "3000")]).await;
        assert_eq!(status, 200, "{body}");
        drop(gw);

        let gw_short = GatewayProcess::start(&config(&up, redis, "none", "mode = \"sync\"\nwait = \"1s\""));
        let (status, location, _, _) = post(&gw_short, "slow", &[("x-mock-delay-ms", "3000")]).await;
        assert_eq!(status, 202, "a sync job slower than `wait` answers 202");
        assert!(location.is_some());
    }
}

#[actix_rt::test]
async fn max_depth_idempotency_and_ownership_hold_for_both_backends() {
    let redis = TestRedis::start();
    for redis in [None, Some(&redis)] {
        let up = MockUpstream::start("up");
        // One start per hour: after the first job everything waits.
        let gw =
            GatewayProcess::start(&config(&up, redis, "api_key", "rate = \"1/1h\"\nconcurrency = 1\nmax_depth = 2"));
        let mut keys = Vec::new();
        for who in ["alice", "bob"] {
            let (s, _) = admin(&gw, "POST", "/admin/consumers", Some(json!({"id": who}))).await;
            assert!(s == 201 || s == 409, "consumer {who}: {s}");
            let (s, created) = admin(&gw, "POST", &format!("/admin/consumers/{who}/keys"), None).await;
            assert_eq!(s, 201);
            keys.push(created["key"].as_str().unwrap().to_string());
        }
        let (alice, bob) = (keys[0].as_str(), keys[1].as_str());

        let (s1, _, _, first) = post(&gw, "a", &[("X-API-Key", alice), ("Idempotency-Key", "order-1")]).await;
        let (s2, _, _, again) = post(&gw, "a", &[("X-API-Key", alice), ("Idempotency-Key", "order-1")]).await;
        let (s3, _, _, other) = post(&gw, "a", &[("X-API-Key", bob), ("Idempotency-Key", "order-1")]).await;
        assert_eq!((s1, s2, s3), (202, 202, 202));
        assert_eq!(first["job_id"], again["job_id"], "same key and consumer: same job");
        assert_ne!(first["job_id"], other["job_id"], "another consumer's key is another job");

        let id = first["job_id"].as_str().unwrap();
        let (s, mine) = job(&gw, id, Some(alice)).await;
        assert_eq!(s, 200, "{mine}");
        assert_eq!(mine["job_id"], id);
        let (s, theirs) = job(&gw, id, Some(bob)).await;
        assert_eq!((s, theirs["error"].as_str()), (404, Some("not_found")), "another consumer reads a job");
        let (s, _) = job(&gw, id, None).await;
        assert_eq!(s, 401, "reading a job is authenticated like its service");

        let mut full = None;
        for i in 0..6 {
            let (s, _, retry_after, body) = post(&gw, &format!("fill-{i}"), &[("X-API-Key", alice)]).await;
            if s == 503 {
                full = Some((retry_after, body));
                break;
            }
            assert_eq!(s, 202);
        }
        let (retry_after, body) = full.expect("max_depth was never reached");
        assert_eq!(body["error"], "queue_full");
        assert!(retry_after.and_then(|r| r.parse::<u64>().ok()).is_some_and(|r| r >= 1));
        let (_, queues) = admin(&gw, "GET", "/admin/queues", None).await;
        assert_eq!(queues[0]["service"], "reports");
        assert_eq!(queues[0]["depth"], 2, "max_depth counts waiting jobs: {queues}");
        let queued = job(&gw, other["job_id"].as_str().unwrap(), Some(bob)).await.1;
        assert!(queued["status"] == "queued" || queued["status"] == "running", "{queued}");
        if queued["status"] == "queued" {
            assert!(queued["position"].as_u64().is_some_and(|p| p >= 1));
        }
    }
}

#[actix_rt::test]
async fn a_job_that_keeps_failing_goes_dead_and_admin_retry_requeues_it_under_its_id() {
    let redis = TestRedis::start();
    for redis in [None, Some(&redis)] {
        let up = MockUpstream::start("broken");
        up.set_behavior(Behavior { status: 500, ..Behavior::default() });
        let gw = GatewayProcess::start(&config(&up, redis, "none", "max_attempts = 3"));
        let (_, _, _, body) = post(&gw, "doomed", &[]).await;
        let id = body["job_id"].as_str().unwrap().to_string();

        let dead = finished(&gw, &id, None, Duration::from_secs(20)).await;
        assert_eq!((dead["status"].as_str(), dead["attempts"].as_u64()), (Some("dead"), Some(3)), "{dead}");
        assert_eq!(up.count(), 3);
        let (s, letters) = admin(&gw, "GET", "/admin/queues/reports/dead", None).await;
        assert_eq!(s, 200);
        assert_eq!(letters.as_array().map(Vec::len), Some(1));
        assert_eq!((letters[0]["job_id"].as_str(), letters[0]["attempts"].as_u64()), (Some(id.as_str()), Some(3)));
        let (_, queues) = admin(&gw, "GET", "/admin/queues", None).await;
        assert_eq!(queues, json!([{"service": "reports", "depth": 0, "processing": 0, "dead": 1}]));

        up.set_behavior(Behavior::default());
        let (s, retried) = admin(&gw, "POST", &format!("/admin/queues/reports/dead/{id}/retry"), None).await;
        assert_eq!(s, 202, "{retried}");
        assert_eq!(retried["job_id"], id.as_str());
        assert_eq!(retried["attempts"], 0);
        let done = finished(&gw, &id, None, Duration::from_secs(20)).await;
        assert_eq!((done["status"].as_str(), done["attempts"].as_u64()), (Some("succeeded"), Some(1)), "{done}");
        let (s, _) = admin(&gw, "POST", &format!("/admin/queues/reports/dead/{id}/retry"), None).await;
        assert_eq!(s, 404, "only dead letters can be retried");
        let (s, _) = admin(&gw, "GET", "/admin/queues/nope/dead", None).await;
        assert_eq!(s, 404);
    }
}

#[actix_rt::test]
async fn without_redis_new_jobs_are_refused_and_health_lists_the_queue() {
    let mut redis = TestRedis::start();
    let up = MockUpstream::start("up");
    let gw = GatewayProcess::start(&config(&up, Some(&redis), "none", ""));
    assert_eq!(post(&gw, "ok", &[]).await.0, 202);

    redis.kill();
    let (status, _, retry_after, body) = post(&gw, "refused", &[]).await;

    assert_eq!((status, body["error"].as_str()), (503, Some("redis_unavailable")), "{body}");
    assert!(retry_after.is_some());
    let degraded = eventually(Duration::from_secs(10), async || {
        let mut res = client().get(gw.url("/health")).send().await.ok()?;
        let h = body_json(&mut res).await;
        h["degraded"].as_array()?.iter().any(|a| a == "queue").then_some(())
    })
    .await;
    assert!(degraded.is_some(), "/health does not list the queue as degraded");
}

#[actix_rt::test]
async fn every_spelling_of_a_queued_path_is_queued_not_proxied() {
    let up = MockUpstream::start("up");
    let gw = GatewayProcess::start(&config(&up, None, "none", "rate = \"100/1s\""));
    for path in [
        HEAVY,
        "/api/reports/heavy/",
        "/api/reports/HEAVY",
        "/api/reports/Heavy/",
        "/api/reports//heavy",
        "/api/reports/heavy;x",
        "/api/reports/heavy%2f",
        "/api/reports/heavy%2F",
        "/api/reports/%68eavy",
        "/api/reports/x/../heavy",
    ] {
        let mut res = client().post(gw.url(path)).send_body("x").await.unwrap();
        let body = body_json(&mut res).await;
        assert_eq!(res.status(), 202, "POST {path} must be queued, got {body}");
        assert!(body["job_id"].is_string(), "{path}: {body}");
    }
    // Paths that only look alike are proxied as usual.
    for path in ["/api/reports/heavy2", "/api/reports/heavy/1"] {
        let res = client().post(gw.url(path)).send_body("x").await.unwrap();
        assert_eq!(res.status(), 200, "POST {path} is not the queued endpoint");
    }
}
