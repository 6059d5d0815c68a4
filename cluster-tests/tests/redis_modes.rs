//! The gateway on every Redis deployment it supports (SPEC §3 `[redis]`, §13): a six-node
//! Redis Cluster (registry, exact limits, logout and breaker propagation across two
//! gateways), Sentinel failover followed without a restart, `rediss://` with a private CA
//! and a client certificate, and ACL users in the URL.

use std::time::Duration;

use cluster_tests::upstream::Behavior;
use cluster_tests::{
    GatewayProcess, MockUpstream, TestRedis, TestRedisCluster, TestSentinel, TestTlsRedis, client, eventually,
    redis_cli,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp as now};
use serde_json::{Value, json};

/// Services: `limited` (sliding_log, 20 per route), `mixed` (policies keyed by route and
/// by ip: different slots on Cluster), `secure` (JWT) and `svc` (a good and a failing
/// instance behind a breaker).
fn config(redis: &str, up: &MockUpstream, bad: &MockUpstream) -> String {
    format!(
        "[node]\nworkers = 1\n[log]\naccess_log = false\n{redis}\n\
         [auth.jwt]\nalgorithms = [\"HS256\"]\n[[auth.jwt.keys]]\nkid = \"k\"\nsecret = \"modes-secret-of-at-least-32-bytes\"\n\
         [rate_limit.policies.log20]\nalgorithm = \"sliding_log\"\nlimit = 20\nwindow = \"1h\"\nkey = \"route\"\nfailure_mode = \"closed\"\n\
         [rate_limit.policies.route10]\nalgorithm = \"fixed_window\"\nlimit = 10\nwindow = \"1h\"\nkey = \"route\"\nfailure_mode = \"closed\"\n\
         [rate_limit.policies.ip1000]\nalgorithm = \"gcra\"\nlimit = 1000\nwindow = \"1h\"\nkey = \"ip\"\nfailure_mode = \"closed\"\n\
         [[services]]\nname = \"limited\"\nrate_limit = \"log20\"\nendpoints = [\"{up}\"]\n\
         [[services]]\nname = \"mixed\"\nrate_limit = [\"route10\", \"ip1000\"]\nendpoints = [\"{up}\"]\n\
         [[services]]\nname = \"secure\"\nauth = \"jwt\"\nendpoints = [\"{up}\"]\n\
         [[services]]\nname = \"svc\"\nretries = 0\nendpoints = [\"{up}\", \"{bad}\"]\n\
         [services.circuit_breaker]\nconsecutive_failures = 3\nmin_requests = 1000\nopen_for = \"60s\"\n",
        up = up.url(),
        bad = bad.url()
    )
}

fn token(jti: &str) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k".into());
    let claims = json!({"sub": "dana", "jti": jti, "iat": now(), "exp": now() + 600});
    encode(&h, &claims, &EncodingKey::from_secret(b"modes-secret-of-at-least-32-bytes")).expect("HS256 signs")
}

async fn status(url: &str, bearer: Option<&str>) -> u16 {
    let mut req = client().get(url);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

async fn create_service(gw: &GatewayProcess, name: &str, up: &MockUpstream) -> u16 {
    let res = client().post(gw.admin_url("/admin/services")).send_json(&json!({"name": name, "endpoints": [up.url()]}));
    res.await.map(|r| r.status().as_u16()).unwrap_or(0)
}

async fn routes(gw: &GatewayProcess, path: &str, within: Duration) -> bool {
    let url = gw.url(path);
    eventually(within, async || (status(&url, None).await == 200).then_some(())).await.is_some()
}

/// Fires `n` concurrent requests at `path`, alternating between `nodes`; (200s, 429s).
async fn burst(nodes: &[&GatewayProcess], path: &str, n: usize) -> (usize, usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let url = nodes[i % nodes.len()].url(path);
            actix_rt::spawn(async move { status(&url, None).await })
        })
        .collect();
    let (mut ok, mut limited) = (0, 0);
    for t in tasks {
        match t.await.unwrap_or(0) {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("{path}: unexpected status {other}"),
        }
    }
    (ok, limited)
}

async fn circuit_state(gw: &GatewayProcess, instance: &str) -> Option<String> {
    let mut res = client().get(gw.admin_url("/admin/circuits")).send().await.ok()?;
    let list: Value = serde_json::from_slice(&res.body().await.ok()?).ok()?;
    list.as_array()?.iter().find(|c| c["instance"] == instance)?["state"].as_str().map(str::to_string)
}

#[actix_rt::test]
async fn three_gateways_share_registry_limits_revocations_and_breakers_through_a_redis_cluster() {
    let cluster = TestRedisCluster::start();
    let (up, bad) = (MockUpstream::start("up"), MockUpstream::start("bad"));
    bad.set_behavior(Behavior { status: 500, ..Behavior::default() });
    let seeds: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let redis = format!("[redis]\nmode = \"cluster\"\nnodes = [{}]\n", seeds.join(", "));
    let text = config(&redis, &up, &bad);
    let (a, b, c) = (GatewayProcess::start(&text), GatewayProcess::start(&text), GatewayProcess::start(&text));

    // Registry: a service created through A's admin API routes on every node.
    assert_eq!(create_service(&a, "dyn", &up).await, 201);
    assert!(routes(&a, "/api/dyn/x", Duration::from_secs(5)).await, "not routed on A");
    assert!(routes(&b, "/api/dyn/x", Duration::from_secs(5)).await, "not routed on B");
    assert!(routes(&c, "/api/dyn/x", Duration::from_secs(5)).await, "not routed on C");

    // Rate limits are exact across the three nodes, also with policies in different slots.
    assert_eq!(burst(&[&a, &b, &c], "/api/limited/x", 50).await, (20, 30), "sliding_log limit not exact");
    assert_eq!(burst(&[&a, &b, &c], "/api/mixed/x", 30).await, (10, 20), "route+ip limit not exact");

    // A logout through A is refused on B.
    let t = token("cluster-1");
    assert_eq!(status(&b.url("/api/secure/"), Some(&t)).await, 200);
    let res = client().post(a.url("/auth/logout")).bearer_auth(&t).send().await.expect("logout answers");
    assert_eq!(res.status(), 204);
    let url = b.url("/api/secure/");
    let refused = eventually(Duration::from_secs(5), async || (status(&url, Some(&t)).await == 401).then_some(()));
    assert!(refused.await.is_some(), "the revoked token is still accepted on B");

    // A breaker opened through A is open on B.
    for _ in 0..20 {
        status(&a.url("/api/svc/x"), None).await;
        if circuit_state(&a, "svc-1").await.as_deref() == Some("open") {
            break;
        }
    }
    assert_eq!(circuit_state(&a, "svc-1").await.as_deref(), Some("open"), "the breaker never opened on A");
    let open_on_b =
        eventually(Duration::from_secs(5), async || (circuit_state(&b, "svc-1").await? == "open").then_some(()));
    assert!(open_on_b.await.is_some(), "the breaker did not open on B");
    assert!(!a.log_text().contains("CROSSSLOT") && !b.log_text().contains("CROSSSLOT"), "a script crossed slots");
    assert!(!a.log_text().contains("panicked"));
    drop(cluster);
}

#[actix_rt::test]
async fn a_sentinel_failover_is_followed_without_restarting_any_gateway() {
    let sentinel = TestSentinel::start();
    let (up, bad) = (MockUpstream::start("up"), MockUpstream::start("bad"));
    let list: Vec<String> = sentinel.addresses().iter().map(|s| format!("\"{s}\"")).collect();
    // The host of `url` is unused under Sentinel; it still carries the database.
    let redis = format!(
        "[redis]\nmode = \"sentinel\"\nurl = \"redis://127.0.0.1:1/0\"\nmaster_name = \"{}\"\nsentinels = [{}]\n",
        TestSentinel::MASTER,
        list.join(", ")
    );
    let text = config(&redis, &up, &bad);
    let (a, b) = (GatewayProcess::start(&text), GatewayProcess::start(&text));
    assert_eq!(create_service(&a, "before", &up).await, 201);
    assert!(routes(&b, "/api/before/x", Duration::from_secs(5)).await, "not routed on B before failover");

    sentinel.failover();

    // Admin writes succeed again through both nodes, land on the new master, and
    // propagate to the other node.
    for (gw, name) in [(&a, "after-a"), (&b, "after-b")] {
        let written = eventually(Duration::from_secs(20), async || {
            matches!(create_service(gw, name, &up).await, 201 | 409).then_some(())
        });
        assert!(written.await.is_some(), "admin writes through {name} never succeeded after failover");
    }
    let key = "gw:{registry}:service:after-a";
    assert_eq!(redis_cli(sentinel.replica_port, &["EXISTS", key]).as_deref(), Some("1"), "not on the new master");
    assert!(routes(&b, "/api/after-a/x", Duration::from_secs(10)).await, "A's change did not reach B");
    assert!(routes(&a, "/api/after-b/x", Duration::from_secs(10)).await, "B's change did not reach A");
    assert!(routes(&b, "/api/before/x", Duration::from_secs(1)).await, "old services lost");

    // Limits are exact again across both nodes (failure_mode closed: no fallback admits).
    assert_eq!(burst(&[&a, &b], "/api/limited/x", 40).await, (20, 20), "limit not exact after failover");
    assert!(a.log_text().contains("following the redis master"), "{}", a.log_text());
}

#[actix_rt::test]
async fn rediss_with_a_private_ca_and_client_certificate_works_and_a_wrong_ca_is_refused() {
    let tls = TestTlsRedis::start();
    let (up, bad) = (MockUpstream::start("up"), MockUpstream::start("bad"));
    let d = tls.dir();
    let section = |ca: &std::path::Path| {
        format!(
            "[redis]\nurl = \"{}\"\ntls_ca_file = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            tls.url(),
            ca.display(),
            d.join("client.pem").display(),
            d.join("client.key").display()
        )
    };
    let gw = GatewayProcess::start(&config(&section(&d.join("ca.pem")), &up, &bad));
    assert_eq!(create_service(&gw, "over-tls", &up).await, 201);
    assert!(routes(&gw, "/api/over-tls/x", Duration::from_secs(5)).await);

    let wrong = GatewayProcess::builder(config(&section(&tls.other_ca()), &up, &bad)).no_wait().spawn();
    let logged =
        eventually(Duration::from_secs(10), async || wrong.log_text().contains("redis connect failed").then_some(()));
    assert!(logged.await.is_some(), "no clear error for a wrong CA: {}", wrong.log_text());
    assert!(!wrong.is_ready(), "ready without a trusted Redis");
    assert!(!wrong.log_text().contains("panicked"));
}

#[actix_rt::test]
async fn an_acl_user_in_the_url_works_and_a_wrong_password_leaves_the_node_unready() {
    let redis = TestRedis::start();
    let set = redis_cli(redis.port(), &["ACL", "SETUSER", "gw", "on", ">gw-pass", "~*", "&*", "+@all"]);
    assert_eq!(set.as_deref(), Some("OK"));
    let (up, bad) = (MockUpstream::start("up"), MockUpstream::start("bad"));
    let url = |pw: &str| format!("[redis]\nurl = \"redis://gw:{pw}@127.0.0.1:{}/0\"\n", redis.port());
    let gw = GatewayProcess::start(&config(&url("gw-pass"), &up, &bad));
    assert_eq!(create_service(&gw, "acl", &up).await, 201);
    assert!(routes(&gw, "/api/acl/x", Duration::from_secs(5)).await);
    let clients = redis_cli(redis.port(), &["CLIENT", "LIST"]).unwrap_or_default();
    assert!(clients.contains("user=gw"), "the gateway did not authenticate as gw: {clients}");

    let wrong = GatewayProcess::builder(config(&url("Sup3rSecretWrong"), &up, &bad)).no_wait().spawn();
    let logged =
        eventually(Duration::from_secs(10), async || wrong.log_text().contains("redis connect failed").then_some(()));
    assert!(logged.await.is_some(), "no clear error for a wrong password: {}", wrong.log_text());
    let log = wrong.log_text();
    assert!(!log.contains("Sup3rSecretWrong"), "the password reached the log: {log}");
    assert!(!wrong.is_ready(), "ready although Redis refused the credentials");
    assert!(!log.contains("panicked"));
}

#[actix_rt::test]
async fn requests_keep_flowing_when_the_sentinel_master_is_killed_and_writes_resume_on_the_new_one() {
    let mut sentinel = TestSentinel::start();
    let (up, bad) = (MockUpstream::start("up"), MockUpstream::start("bad"));
    let list: Vec<String> = sentinel.addresses().iter().map(|s| format!("\"{s}\"")).collect();
    let redis = format!(
        "[redis]\nmode = \"sentinel\"\nmaster_name = \"{}\"\nsentinels = [{}]\n",
        TestSentinel::MASTER,
        list.join(", ")
    );
    let gw = GatewayProcess::start(&config(&redis, &up, &bad));
    assert_eq!(create_service(&gw, "steady", &up).await, 201);
    assert!(routes(&gw, "/api/steady/x", Duration::from_secs(5)).await);

    sentinel.kill_master();

    // Until the sentinels promote the replica, requests are served from the snapshot;
    // afterwards admin writes succeed again, on the new master.
    let new_master = sentinel.replica_port;
    let written = eventually(Duration::from_secs(30), async || {
        assert_eq!(status(&gw.url("/api/steady/x"), None).await, 200, "a request failed during failover");
        matches!(create_service(&gw, "late", &up).await, 201 | 409).then_some(())
    });
    assert!(written.await.is_some(), "admin writes never succeeded after the master died");
    assert_eq!(sentinel.current_master_port(), Some(new_master));
    let key = "gw:{registry}:service:late";
    assert_eq!(redis_cli(new_master, &["EXISTS", key]).as_deref(), Some("1"));
    assert!(routes(&gw, "/api/late/x", Duration::from_secs(5)).await);
}
