//! `circuit-bench [TRIPS]`: time from the request that opens a breaker on node A until
//! node C reports it open (SPEC §8: "when one node opens a breaker, every node stops
//! sending to that instance"). Starts its own redis-server, a failing mock upstream and
//! three gateway nodes; each round closes the breaker through A's admin API, sends the
//! failures that trip it through A, and polls C's `/admin/circuits` until the breaker is
//! open there. Prints a JSON summary (p50/p90/p99/max in milliseconds).

use std::time::{Duration, Instant};

use cluster_tests::upstream::Behavior;
use cluster_tests::{GatewayProcess, MockUpstream, TestRedis, client};

async fn state_on(http: &awc::Client, node: &GatewayProcess) -> Option<String> {
    let mut res = http.get(node.admin_url("/admin/circuits")).send().await.ok()?;
    let list: serde_json::Value = serde_json::from_slice(&res.body().await.ok()?).ok()?;
    list.as_array()?.iter().find(|c| c["instance"] == "bad-0")?["state"].as_str().map(str::to_string)
}

fn main() {
    let trips: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100);
    let redis = TestRedis::start();
    let upstream = MockUpstream::start_with("bad", false, 1, std::net::TcpListener::bind("127.0.0.1:0").expect("bind"));
    upstream.set_behavior(Behavior { status: 500, ..Behavior::default() });
    let config = format!(
        "[node]\nworkers = 1\n[log]\naccess_log = false\nlevel = \"warn\"\n[redis]\nurl = \"{}\"\n\
         [[services]]\nname = \"bad\"\nretries = 0\nendpoints = [\"{}\"]\n[services.circuit_breaker]\n\
         consecutive_failures = 3\nmin_requests = 1000\nopen_for = \"10m\"\n",
        redis.url(),
        upstream.url()
    );
    let a = GatewayProcess::start(&config);
    let _b = GatewayProcess::start(&config);
    let c = GatewayProcess::start(&config);

    let (samples, failures) = actix_rt::System::new().block_on(async move {
        let http = client();
        let mut samples = Vec::with_capacity(trips);
        let mut failures = 0usize;
        for _ in 0..trips {
            let _ = http.post(a.admin_url("/admin/circuits/bad-0/reset")).send().await;
            let deadline = Instant::now() + Duration::from_secs(5);
            while state_on(&http, &c).await.as_deref() != Some("closed") && Instant::now() < deadline {}
            for _ in 0..2 {
                let _ = http.get(a.url("/api/bad/x")).send().await;
            }
            let started = Instant::now();
            let _ = http.get(a.url("/api/bad/x")).send().await;
            let deadline = started + Duration::from_secs(5);
            loop {
                if state_on(&http, &c).await.as_deref() == Some("open") {
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
    let seen = samples.len();
    let summary = cluster_tests::latency_summary(
        samples,
        serde_json::json!({"scenario": "circuit_propagation", "trips": trips, "seen_open_on_c": seen, "failures": failures}),
    );
    println!("{summary}");
    if failures > 0 {
        std::process::exit(1);
    }
}
