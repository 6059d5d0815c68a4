//! `registry-bench [CHANGES]`: time from a registry change on node A until node C routes
//! it. Starts its own redis-server, a mock upstream and three gateway nodes, makes
//! CHANGES (default 1000) service creations through A's admin API one after another,
//! polls C's proxy listener until each new service answers, and prints a JSON summary
//! (p50/p90/p99/max in milliseconds).

use std::time::{Duration, Instant};

use cluster_tests::{GatewayProcess, MockUpstream, TestRedis, client};

fn main() {
    let changes: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let redis = TestRedis::start();
    let upstream = MockUpstream::start("registry-bench");
    let config = |id: &str| {
        format!(
            "[node]\nid = \"{id}\"\nworkers = 1\n[log]\naccess_log = false\nlevel = \"warn\"\n[redis]\nurl = \"{}\"\n",
            redis.url()
        )
    };
    let a = GatewayProcess::start(&config("gw-a"));
    let _b = GatewayProcess::start(&config("gw-b"));
    let c = GatewayProcess::start(&config("gw-c"));

    let result = actix_rt::System::new().block_on(async move {
        let http = client();
        let mut samples = Vec::with_capacity(changes);
        let mut failures = 0usize;
        for i in 0..changes {
            let name = format!("r{i}");
            let body = serde_json::json!({"name": name, "endpoints": [upstream.url()]});
            let started = Instant::now();
            let res = http.post(a.admin_url("/admin/services")).send_json(&body).await;
            if !matches!(res, Ok(ref r) if r.status() == 201) {
                failures += 1;
                continue;
            }
            let probe = c.url(&format!("/api/{name}/"));
            let deadline = started + Duration::from_secs(5);
            loop {
                if let Ok(r) = http.get(probe.as_str()).send().await
                    && r.status() != 404
                {
                    samples.push(started.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
                if Instant::now() > deadline {
                    failures += 1;
                    break;
                }
            }
        }
        (samples, failures)
    });
    let (samples, failures) = result;
    let routed = samples.len();
    let summary = cluster_tests::latency_summary(
        samples,
        serde_json::json!({"scenario": "registry", "changes": changes, "routed": routed, "failures": failures}),
    );
    println!("{summary}");
    if failures > 0 {
        std::process::exit(1);
    }
}
