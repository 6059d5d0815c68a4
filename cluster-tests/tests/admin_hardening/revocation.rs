//! Revocation by `jti` is scoped to issuer + subject: two users' tokens that share a `jti`
//! are revoked independently, on every node; old bare-`jti` members revoke nobody.

use std::time::Duration;

use cluster_tests::{GatewayProcess, MockUpstream, TestRedis, client, eventually, redis_cli};
use jsonwebtoken::get_current_timestamp as now;
use serde_json::json;

use crate::admin_json;
use crate::jwt::{SECRET, call, token_with};

fn node(redis: &TestRedis, id: &str, up: &MockUpstream) -> GatewayProcess {
    GatewayProcess::start(&format!(
        "[node]\nid = \"{id}\"\nworkers = 1\n[log]\naccess_log = false\n[redis]\nurl = \"{}\"\n[auth.jwt]\n\
         algorithms = [\"HS256\"]\nissuer = \"https://issuer.example\"\naudience = [\"api\"]\n[[auth.jwt.keys]]\n\
         kid = \"k1\"\nsecret = \"{SECRET}\"\n[[services]]\nname = \"secure\"\nauth = \"jwt\"\nendpoints = [\"{}\"]\n",
        redis.url(),
        up.url()
    ))
}

fn user_token(sub: &str, jti: &str) -> String {
    token_with(json!({"sub": sub, "jti": jti, "iat": now()}), None)
}

async fn refused_within(gw: &GatewayProcess, token: &str) -> bool {
    eventually(Duration::from_secs(5), async || (call(gw, "/api/secure/", token).await.0 == 401).then_some(()))
        .await
        .is_some()
}

#[actix_rt::test]
async fn logging_out_one_user_leaves_another_users_token_with_the_same_jti_valid_on_every_node() {
    let redis = TestRedis::start();
    // A member as earlier versions stored it: a bare jti that revoked every user's token.
    assert!(redis_cli(redis.port(), &["ZADD", "gw:{auth}:revoked", &(now() + 600).to_string(), "legacy"]).is_some());
    let up = MockUpstream::start("up");
    let (a, b) = (node(&redis, "gw-a", &up), node(&redis, "gw-b", &up));
    let (alice, bob) = (user_token("alice", "shared"), user_token("bob", "shared"));
    for gw in [&a, &b] {
        assert_eq!(call(gw, "/api/secure/", &alice).await.0, 200);
        assert_eq!(call(gw, "/api/secure/", &bob).await.0, 200);
        assert_eq!(call(gw, "/api/secure/", &user_token("carol", "legacy")).await.0, 200, "a bare old member");
    }
    let res = client().post(a.url("/auth/logout")).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(call(&a, "/api/secure/", &alice).await, (401, "token_revoked".into()));
    assert!(refused_within(&b, &alice).await, "alice's token still accepted on node B");
    for gw in [&a, &b] {
        assert_eq!(call(gw, "/api/secure/", &bob).await.0, 200, "bob's token was revoked by alice's logout");
    }

    // The admin API revokes by issuer (default: the configured one) + subject + jti.
    let (status, body) = admin_json(&a, "POST", "/admin/revocations", r#"{"jti":"shared"}"#).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("sub")), "{body}");
    let dave = user_token("dave", "shared");
    let (status, body) = admin_json(&b, "POST", "/admin/revocations", r#"{"jti":"shared","sub":"dave"}"#).await;
    assert_eq!(status, 201, "{body}");
    assert!(refused_within(&a, &dave).await, "dave's token still accepted on node A");
    assert_eq!(call(&a, "/api/secure/", &bob).await.0, 200);

    // A node started now loads the same set from Redis.
    let c = node(&redis, "gw-c", &up);
    assert_eq!(call(&c, "/api/secure/", &alice).await.0, 401);
    assert_eq!(call(&c, "/api/secure/", &dave).await.0, 401);
    assert_eq!(call(&c, "/api/secure/", &bob).await.0, 200);
}
