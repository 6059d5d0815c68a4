//! `registry-bench [CHANGES]`: time from a registry change on node A until node C routes
//! it. Starts its own redis-server, a mock upstream and three gateway nodes, makes
//! CHANGES (default 1000) service creations through A's admin API one after another,
//! polls C's proxy listener until each new service answers, and prints a JSON summary
//! (p50/p90/p99/max in milliseconds).

use std::time::{Duration, Instant};

use cluster_tests::{GatewayProcess, MockUpstream, TestRedis, client};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

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
    let (mut samples, failures) = result;
    samples.sort_by(f64::total_cmp);
    let summary = serde_json::json!({
        "scenario": "registry",
        "changes": changes,
        "routed": samples.len(),
        "failures": failures,
        "p50_ms": percentile(&samples, 50.0),
        "p90_ms": percentile(&samples, 90.0),
        "p99_ms": percentile(&samples, 99.0),
        "max_ms": samples.last().copied().unwrap_or(0.0),
    });
    println!("{summary}");
    if failures > 0 {
        std::process::exit(1);
    }
}
