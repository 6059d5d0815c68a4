//! The cache and the queue on a real Redis Cluster (SPEC §13; issue #11 "Must show"):
//! six `--cluster-enabled` redis-server processes (three masters, one replica each) joined
//! with `redis-cli --cluster create`, and the same assertions as on standalone
//! (`cache.rs` purges, `queue.rs` a node killed mid-job). Every script must keep to the
//! keys of one hash tag, so a CROSSSLOT anywhere shows up as a failed request or job.

use std::collections::HashSet;
use std::time::Duration;

use cluster_tests::jobs::{body_json, finished};
use cluster_tests::upstream::Behavior;
use cluster_tests::{GatewayProcess, MockUpstream, TestRedisCluster, client, eventually};

/// The `[redis]` section for `cluster`: every node as a seed.
fn redis_section(cluster: &TestRedisCluster) -> String {
    let seeds: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    format!("[redis]\nmode = \"cluster\"\nnodes = [{}]\n", seeds.join(", "))
}

fn no_crossslot(nodes: &[&GatewayProcess]) {
    for gw in nodes {
        let log = gw.log_text();
        assert!(!log.contains("CROSSSLOT") && !log.contains("panicked"), "a script crossed slots or panicked:\n{log}");
    }
}

// ---- cache ------------------------------------------------------------------------------

/// Behind a load balancer every node sees the same `Host`, which is part of the cache key.
const HOST: (&str, &str) = ("Host", "api.example");

/// (status, X-Cache-Status) of a GET through `gw`.
async fn cache_get(gw: &GatewayProcess, path: &str) -> (u16, String) {
    let mut res = client().get(gw.url(path)).insert_header(HOST).send().await.expect("gateway answers");
    let cache = res.headers().get("x-cache-status").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let _ = res.body().limit(1 << 20).await;
    (res.status().as_u16(), cache)
}

#[actix_rt::test]
async fn on_a_redis_cluster_a_response_cached_through_one_node_hits_on_another_until_purged() {
    let cluster = TestRedisCluster::start();
    let up = MockUpstream::start("up");
    up.set_behavior(Behavior { headers: vec![("cache-control".into(), "max-age=60".into())], ..Behavior::default() });
    let text = format!(
        "[node]\nworkers = 1\n[log]\naccess_log = false\n{}\n[cache]\nl1_ttl = \"30s\"\n\
         [[services]]\nname = \"c\"\nendpoints = [\"{}\"]\n[services.cache]\n",
        redis_section(&cluster),
        up.url()
    );
    let (a, b) = (GatewayProcess::start(&text), GatewayProcess::start(&text));

    // Stored through A (L2 on the cluster), served on B without reaching the upstream.
    for path in ["/api/c/items/1", "/api/c/items/2", "/api/c/other"] {
        assert_eq!(cache_get(&a, path).await, (200, "MISS".to_string()), "{path} on A");
        let on_b = eventually(Duration::from_secs(5), async || {
            let (status, cache) = cache_get(&b, path).await;
            (status == 200 && cache == "HIT").then_some(())
        });
        assert!(on_b.await.is_some(), "{path}: the entry stored through A is not a HIT on B");
    }
    let fetched = up.count();
    assert_eq!(fetched, 3, "one upstream request per URL across both nodes");

    // Purge by prefix through A's admin API: B (its L1 included) misses afterwards.
    let purge = client().delete(a.admin_url("/admin/cache?service=c&prefix=/api/c/items")).send().await;
    assert_eq!(purge.map(|r| r.status().as_u16()).ok(), Some(204), "purge refused");
    for path in ["/api/c/items/1", "/api/c/items/2"] {
        let purged = eventually(Duration::from_secs(10), async || {
            let (status, cache) = cache_get(&b, path).await;
            (status == 200 && cache == "MISS").then_some(())
        });
        assert!(purged.await.is_some(), "{path} still served from the cache on B after the purge");
    }
    // Outside the prefix nothing was purged.
    assert_eq!(cache_get(&b, "/api/c/other").await, (200, "HIT".to_string()), "the purge went past its prefix");
    assert_eq!(cache_get(&a, "/api/c/other").await, (200, "HIT".to_string()));
    no_crossslot(&[&a, &b]);
}

// ---- queue ------------------------------------------------------------------------------

const HEAVY: &str = "/api/reports/heavy";

#[actix_rt::test]
async fn on_a_redis_cluster_a_node_killed_mid_job_loses_nothing_and_the_reruns_show_in_attempts() {
    let cluster = TestRedisCluster::start();
    let up = MockUpstream::start("slow");
    up.set_behavior(Behavior { delay: Duration::from_secs(2), ..Behavior::default() });
    let cfg = format!(
        "[node]\nworkers = 1\n[log]\naccess_log = false\n{}\n[[services]]\nname = \"reports\"\nauth = \"none\"\n\
         endpoints = [\"{}\"]\n[services.queue]\nmatch = [\"POST {HEAVY}\"]\nrate = \"100/1s\"\nconcurrency = 4\n\
         lease = \"3s\"\n",
        redis_section(&cluster),
        up.url()
    );
    let mut doomed = GatewayProcess::start(&cfg);
    let survivor = GatewayProcess::start(&cfg);

    let mut ids = Vec::new();
    for i in 0..8 {
        let mut res = client().post(survivor.url(HEAVY)).send_body(format!("job-{i}")).await.expect("enqueue answers");
        let body = body_json(&mut res).await;
        assert_eq!(res.status(), 202, "{body}");
        ids.push(body["job_id"].as_str().expect("a job id").to_string());
    }
    // Eight idle workers (four per node), eight jobs: each node holds four when all started.
    let all_started = eventually(Duration::from_secs(15), async || (up.count() >= 8).then_some(())).await;
    assert!(all_started.is_some(), "jobs did not start ({} of 8)", up.count());
    doomed.kill();

    let mut attempts = 0;
    let mut reruns = 0;
    for id in &ids {
        let body = finished(&survivor, id, None, Duration::from_secs(40)).await;
        assert_eq!(body["status"], "succeeded", "{body}");
        let n = body["attempts"].as_u64().unwrap_or(0);
        attempts += n;
        reruns += u64::from(n > 1);
    }
    assert!(reruns >= 1, "the killed node's jobs were not re-run");
    let bodies: HashSet<Vec<u8>> = up.recorded().iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies.len(), 8, "every job reached the upstream");
    assert_eq!(up.count() as u64, attempts, "every run started is counted in attempts");
    let mut res = client().get(survivor.admin_url("/admin/queues")).send().await.expect("admin answers");
    let queues = body_json(&mut res).await;
    assert_eq!((queues[0]["depth"].as_u64(), queues[0]["processing"].as_u64()), (Some(0), Some(0)), "{queues}");
    no_crossslot(&[&survivor]);
}
