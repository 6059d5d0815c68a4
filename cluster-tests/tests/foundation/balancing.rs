use std::collections::HashMap;
use std::time::Duration;

use cluster_tests::{MockUpstream, client};

use crate::{gateway, header, service};

async fn spread(
    url: &str,
    n: usize,
    mut add: impl FnMut(usize, awc::ClientRequest) -> awc::ClientRequest,
) -> HashMap<String, usize> {
    let c = client();
    let mut counts = HashMap::new();
    for i in 0..n {
        let res = add(i, c.get(url)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        *counts.entry(header(&res, "x-upstream")).or_default() += 1;
    }
    counts
}

#[actix_rt::test]
async fn round_robin_spreads_requests_evenly() {
    let ups: Vec<_> = ["a", "b", "c"].iter().map(|n| MockUpstream::start(n)).collect();
    let gw = gateway(&service("rr", &ups.iter().collect::<Vec<_>>(), "balancer = \"round_robin\""));
    let counts = spread(&gw.url("/api/rr/x"), 30, |_, r| r).await;
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|c| *c == 10), "{counts:?}");
}

#[actix_rt::test]
async fn weighted_follows_endpoint_weights() {
    let heavy = MockUpstream::start("heavy");
    let light = MockUpstream::start("light");
    let gw = gateway(&format!(
        "[[services]]\nname = \"w\"\nbalancer = \"weighted\"\nendpoints = [{{ url = \"{}\", weight = 3 }}, \"{}\"]\n",
        heavy.url(),
        light.url()
    ));
    let counts = spread(&gw.url("/api/w/"), 40, |_, r| r).await;
    assert_eq!(counts.get("heavy"), Some(&30), "{counts:?}");
    assert_eq!(counts.get("light"), Some(&10), "{counts:?}");
}

#[actix_rt::test]
async fn least_conn_avoids_the_busy_endpoint() {
    let a = MockUpstream::start("a");
    let b = MockUpstream::start("b");
    let gw = gateway(&service("lc", &[&a, &b], "balancer = \"least_conn\""));
    let url = gw.url("/api/lc/slow");
    let slow = actix_rt::spawn(async move {
        let res = client().get(url).insert_header(("x-mock-delay-ms", "1500")).send().await.unwrap();
        header(&res, "x-upstream")
    });
    // Wait until the slow request is in flight at one of the upstreams.
    let busy = cluster_tests::eventually(Duration::from_secs(5), async || {
        [&a, &b].iter().find(|u| u.count() == 1).map(|u| u.name.clone())
    })
    .await
    .expect("slow request reached an upstream");
    let counts = spread(&gw.url("/api/lc/fast"), 10, |_, r| r).await;
    assert_eq!(counts.get(&busy), None, "busy endpoint {busy} got requests: {counts:?}");
    assert_eq!(slow.await.unwrap(), busy);
}

#[actix_rt::test]
async fn consistent_hash_keeps_each_key_on_one_endpoint() {
    let ups: Vec<_> = ["a", "b", "c"].iter().map(|n| MockUpstream::start(n)).collect();
    let gw = gateway(&service("ch", &ups.iter().collect::<Vec<_>>(), "balancer = \"consistent_hash:header:X-User\""));
    let c = client();
    let mut owners: HashMap<String, String> = HashMap::new();
    for round in 0..3 {
        for user in 0..30 {
            let res = c.get(gw.url("/api/ch/")).insert_header(("X-User", format!("user-{user}"))).send().await.unwrap();
            let up = header(&res, "x-upstream");
            let owner = owners.entry(format!("user-{user}")).or_insert_with(|| up.clone());
            assert_eq!(*owner, up, "user-{user} moved in round {round}");
        }
    }
    let used: std::collections::HashSet<_> = owners.values().collect();
    assert!(used.len() >= 2, "30 keys all landed on {used:?}");
}

#[actix_rt::test]
async fn idempotent_requests_retry_on_the_next_endpoint_after_a_connect_error() {
    let live = MockUpstream::start("live");
    let dead_port = cluster_tests::free_port();
    let gw = gateway(&format!(
        "[[services]]\nname = \"r\"\nretries = 1\nendpoints = [\"http://127.0.0.1:{dead_port}\", \"{}\"]\n",
        live.url()
    ));
    let c = client();
    for _ in 0..6 {
        assert_eq!(c.get(gw.url("/api/r/x")).send().await.unwrap().status(), 200);
    }
    // POST is not idempotent: whenever the dead endpoint is picked, the client sees 502.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(c.post(gw.url("/api/r/x")).send_body("data").await.unwrap().status().as_u16());
    }
    assert!(statuses.contains(&502), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
}
