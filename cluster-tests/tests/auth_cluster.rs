//! Revocations and consumers across a cluster: three nodes on one redis-server.

use std::time::{Duration, Instant};

use cluster_tests::{GatewayProcess, MockUpstream, TestRedis, client, eventually};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp as now};
use serde_json::{Value, json};

fn node(redis: &TestRedis, id: &str, up: &MockUpstream) -> GatewayProcess {
    GatewayProcess::start(&format!(
        "[node]\nid = \"{id}\"\nworkers = 1\n[log]\naccess_log = false\n[redis]\nurl = \"{}\"\n[auth.jwt]\nalgorithms = [\"HS256\"]\n[[auth.jwt.keys]]\nkid = \"k\"\nsecret = \"cluster-secret-of-at-least-32-bytes\"\n[[services]]\nname = \"secure\"\nauth = \"any\"\nendpoints = [\"{}\"]\n",
        redis.url(),
        up.url()
    ))
}

fn token(jti: &str) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k".into());
    let claims = json!({"sub": "carol", "jti": jti, "iat": now(), "exp": now() + 600});
    encode(&h, &claims, &EncodingKey::from_secret(b"cluster-secret-of-at-least-32-bytes")).unwrap()
}

async fn status(gw: &GatewayProcess, token: &str) -> u16 {
    client().get(gw.url("/api/secure/")).bearer_auth(token).send().await.unwrap().status().as_u16()
}

#[actix_rt::test]
async fn a_token_revoked_on_one_node_is_refused_on_every_node_and_after_restarts() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("up");
    let nodes: Vec<_> = ["gw-a", "gw-b", "gw-c"].iter().map(|id| node(&redis, id, &up)).collect();

    // 200 logouts through A; time until C refuses each token.
    let mut samples = Vec::new();
    for i in 0..200 {
        let t = token(&format!("s-{i}"));
        assert_eq!(status(&nodes[2], &t).await, 200);
        let started = Instant::now();
        let res = client().post(nodes[0].url("/auth/logout")).bearer_auth(&t).send().await.unwrap();
        assert_eq!(res.status(), 204);
        let refused =
            eventually(Duration::from_secs(3), async || (status(&nodes[2], &t).await == 401).then_some(())).await;
        assert!(refused.is_some(), "token {i} still accepted on node C");
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        if i % 50 == 0 {
            // B receives the same event as C, but not necessarily before C applied it.
            let on_b =
                eventually(Duration::from_secs(3), async || (status(&nodes[1], &t).await == 401).then_some(())).await;
            assert!(on_b.is_some(), "token {i} still accepted on node B");
        }
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "revocation propagation A -> C over {} logouts: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        samples.len(),
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
        samples[samples.len() - 1]
    );

    // A node that starts later loads the full set before it reports ready.
    let late = node(&redis, "gw-d", &up);
    assert_eq!(status(&late, &token("s-7")).await, 401);
    assert_eq!(status(&late, &token("fresh")).await, 200);
}

#[actix_rt::test]
async fn consumers_and_keys_made_on_one_node_work_on_the_others() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("up");
    let nodes: Vec<_> = ["gw-a", "gw-b"].iter().map(|id| node(&redis, id, &up)).collect();
    let mut res =
        client().post(nodes[0].admin_url("/admin/consumers")).send_json(&json!({"id": "acme"})).await.unwrap();
    assert_eq!(res.status(), 201);
    let _ = res.body().await;
    let mut res = client().post(nodes[0].admin_url("/admin/consumers/acme/keys")).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let url = nodes[1].url("/api/secure/");
    let accepted = eventually(Duration::from_secs(3), async || {
        let res = client().get(url.as_str()).insert_header(("X-API-Key", key.as_str())).send().await.ok()?;
        (res.status() == 200).then_some(())
    })
    .await;
    assert!(accepted.is_some(), "key made on A not accepted on B");
    let mut res = client()
        .patch(nodes[1].admin_url("/admin/consumers/acme"))
        .send_json(&json!({"enabled": false}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let _ = res.body().await;
    let url = nodes[0].url("/api/secure/");
    let refused = eventually(Duration::from_secs(3), async || {
        let res = client().get(url.as_str()).insert_header(("X-API-Key", key.as_str())).send().await.ok()?;
        (res.status() == 401).then_some(())
    })
    .await;
    assert!(refused.is_some(), "consumer disabled on B still accepted on A");
}
