//! Black-box tests of authentication on the request path (SPEC §5, §16): JWT services
//! answer 401 with the right code and challenge, and pass the verified identity upstream.

use cluster_tests::{GatewayProcess, MockUpstream, client};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp as now};
use serde_json::{Value, json};

const SECRET: &str = "black-box-secret-of-at-least-32-bytes";

fn gateway(up: &MockUpstream) -> GatewayProcess {
    GatewayProcess::start(&format!(
        r#"
[node]
id = "gw-auth"
workers = 1
[auth.jwt]
algorithms = ["HS256"]
issuer = "https://issuer.example"
audience = ["api"]
role_claim = "role"
[[auth.jwt.keys]]
kid = "k1"
secret = "{SECRET}"
[[services]]
name = "secure"
auth = "jwt"
endpoints = ["{url}"]
[[services]]
name = "keys"
auth = "api_key"
endpoints = ["{url}"]
[[services]]
name = "open"
endpoints = ["{url}"]
"#,
        url = up.url()
    ))
}

fn token(patch: Value) -> String {
    let mut claims =
        json!({"sub": "alice", "role": "premium", "iss": "https://issuer.example", "aud": "api", "exp": now() + 600});
    for (k, v) in patch.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k1".into());
    encode(&h, &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

async fn call(gw: &GatewayProcess, path: &str, bearer: Option<&str>) -> (u16, String, Value) {
    let mut req = client()
        .get(gw.url(path))
        .insert_header(("X-Consumer-Id", "spoofed"))
        .insert_header(("X-Consumer-Tier", "gold"));
    if let Some(t) = bearer {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let mut res = req.send().await.unwrap();
    let challenge = res.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body = serde_json::from_slice(&res.body().await.unwrap()).unwrap_or(Value::Null);
    (res.status().as_u16(), challenge, body)
}

#[actix_rt::test]
async fn a_valid_token_passes_and_the_verified_identity_replaces_spoofed_headers() {
    let up = MockUpstream::start("up");
    let gw = gateway(&up);
    let (status, _, _) = call(&gw, "/api/secure/me", Some(&token(json!({})))).await;
    assert_eq!(status, 200);
    let seen = &up.recorded()[0];
    assert_eq!(seen.headers_named("x-consumer-id"), vec!["alice"]);
    assert_eq!(seen.headers_named("x-consumer-tier"), vec!["premium"]);

    // Open services never forward client-sent identity headers either.
    let (status, _, _) = call(&gw, "/api/open/", None).await;
    assert_eq!(status, 200);
    assert!(up.recorded()[1].header("x-consumer-id").is_none());
}

#[actix_rt::test]
async fn bad_credentials_get_401_with_the_right_code_and_challenge() {
    let up = MockUpstream::start("up");
    let gw = gateway(&up);
    let (status, challenge, body) = call(&gw, "/api/secure/me", None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("missing_credentials")));
    assert_eq!(challenge, r#"Bearer realm="gateway""#);
    assert!(body["request_id"].is_string());

    let cases = [
        ("expired", token(json!({"exp": now() - 3600})), "token_expired"),
        ("not yet valid", token(json!({"nbf": now() + 3600})), "invalid_token"),
        ("wrong issuer", token(json!({"iss": "https://evil.example"})), "invalid_token"),
        ("wrong audience", token(json!({"aud": "web"})), "invalid_token"),
        ("garbage", "not.a.jwt".to_string(), "invalid_token"),
        ("oversized", token(json!({"pad": "x".repeat(9000)})), "invalid_token"),
    ];
    for (what, t, code) in cases {
        let (status, challenge, body) = call(&gw, "/api/secure/me", Some(&t)).await;
        assert_eq!((status, body["error"].as_str()), (401, Some(code)), "{what}");
        assert_eq!(challenge, r#"Bearer realm="gateway", error="invalid_token""#, "{what}");
    }
    let forged = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        encode(
            &h,
            &json!({"sub": "alice", "exp": now() + 600, "iss": "https://issuer.example", "aud": "api"}),
            &EncodingKey::from_secret(b"guess"),
        )
        .unwrap()
    };
    let (status, _, body) = call(&gw, "/api/secure/me", Some(&forged)).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")));
    assert_eq!(up.count(), 0, "a refused request reached the upstream");
}

#[actix_rt::test]
async fn api_key_services_refuse_unknown_keys() {
    let up = MockUpstream::start("up");
    let gw = gateway(&up);
    let (status, _, body) = call(&gw, "/api/keys/", None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("missing_credentials")));
    let mut res = client().get(gw.url("/api/keys/")).insert_header(("X-API-Key", "made-up")).send().await.unwrap();
    let body: Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
    assert_eq!((res.status().as_u16(), body["error"].as_str()), (401, Some("invalid_api_key")));
    assert_eq!(up.count(), 0);
}

async fn admin(method: &str, gw: &GatewayProcess, path: &str, body: Option<Value>) -> (u16, Value) {
    let req = client().request(method.parse().unwrap(), gw.admin_url(path));
    let mut res = match body {
        Some(b) => req.send_json(&b).await.unwrap(),
        None => req.send().await.unwrap(),
    };
    let status = res.status().as_u16();
    (status, serde_json::from_slice(&res.body().await.unwrap()).unwrap_or(Value::Null))
}

async fn with_key(gw: &GatewayProcess, path: &str, key: &str) -> (u16, Value) {
    let mut res = client()
        .get(gw.url(path))
        .insert_header(("X-API-Key", key))
        .insert_header(("X-Consumer-Id", "spoofed"))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, serde_json::from_slice(&res.body().await.unwrap()).unwrap_or(Value::Null))
}

#[actix_rt::test]
async fn api_key_lifecycle_create_use_disable_forbid_delete() {
    let up = MockUpstream::start("up");
    let gw = gateway(&up);
    let (s, c) = admin(
        "POST",
        &gw,
        "/admin/consumers",
        Some(json!({"id": "acme", "tier": "premium", "permissions": {"services": ["keys"], "methods": ["get"]}})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(
        c,
        json!({"id": "acme", "tier": "premium", "enabled": true, "permissions": {"services": ["keys"], "methods": ["GET"]}})
    );
    let (s, dup) = admin("POST", &gw, "/admin/consumers", Some(json!({"id": "acme"}))).await;
    assert_eq!((s, dup["error"].as_str()), (409, Some("conflict")));

    let (s, created) = admin("POST", &gw, "/admin/consumers/acme/keys", Some(json!({"name": "ci"}))).await;
    assert_eq!(s, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.len() >= 40);
    assert!(created["key_id"].is_string());
    // The key is shown once: listing the consumer never reveals it.
    let (_, listed) = admin("GET", &gw, "/admin/consumers", None).await;
    assert!(!listed.to_string().contains(&key));

    let (s, _) = with_key(&gw, "/api/keys/data", &key).await;
    assert_eq!(s, 200);
    let seen = up.recorded().pop().unwrap();
    assert_eq!(seen.headers_named("x-consumer-id"), vec!["acme"]);
    assert_eq!(seen.header("x-consumer-tier"), Some("premium"));
    assert_eq!(seen.header("x-api-key"), Some(key.as_str()));

    // Permission: POST is not among the consumer's methods.
    let mut res =
        client().post(gw.url("/api/keys/data")).insert_header(("X-API-Key", key.as_str())).send().await.unwrap();
    let body: Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
    assert_eq!((res.status().as_u16(), body["error"].as_str()), (403, Some("forbidden")));

    let (s, _) = admin("PATCH", &gw, "/admin/consumers/acme", Some(json!({"enabled": false}))).await;
    assert_eq!(s, 200);
    assert_eq!(with_key(&gw, "/api/keys/data", &key).await.1["error"], "consumer_disabled");
    let (s, _) = admin("PATCH", &gw, "/admin/consumers/acme", Some(json!({"enabled": true}))).await;
    assert_eq!(s, 200);
    assert_eq!(with_key(&gw, "/api/keys/data", &key).await.0, 200);

    let key_id = created["key_id"].as_str().unwrap();
    let (s, _) = admin("DELETE", &gw, &format!("/admin/consumers/acme/keys/{key_id}"), None).await;
    assert_eq!(s, 204);
    assert_eq!(with_key(&gw, "/api/keys/data", &key).await.1["error"], "invalid_api_key");

    let (_, again) = admin("POST", &gw, "/admin/consumers/acme/keys", None).await;
    let key2 = again["key"].as_str().unwrap().to_string();
    assert_eq!(with_key(&gw, "/api/keys/data", &key2).await.0, 200);
    let (s, _) = admin("DELETE", &gw, "/admin/consumers/acme", None).await;
    assert_eq!(s, 204);
    assert_eq!(with_key(&gw, "/api/keys/data", &key2).await.1["error"], "invalid_api_key");
    let (s, bad) = admin("POST", &gw, "/admin/consumers", Some(json!({"id": "bad id"}))).await;
    assert_eq!((s, bad["field"].as_str()), (400, Some("id")));
}

#[actix_rt::test]
async fn logout_revokes_the_token_and_admin_can_revoke_a_subject() {
    let up = MockUpstream::start("up");
    let gw = gateway(&up);
    let t = token(json!({"jti": "session-1", "iat": now()}));
    assert_eq!(call(&gw, "/api/secure/", Some(&t)).await.0, 200);
    let res = client()
        .post(gw.url("/auth/logout"))
        .insert_header(("Authorization", format!("Bearer {t}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (s, _, body) = call(&gw, "/api/secure/", Some(&t)).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("token_revoked")));
    let res = client()
        .post(gw.url("/auth/logout"))
        .insert_header(("Authorization", format!("Bearer {t}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "logout is idempotent");
    let res = client().post(gw.url("/auth/logout")).send().await.unwrap();
    assert_eq!(res.status(), 401);

    let older = token(json!({"sub": "bob", "iat": now() - 60}));
    assert_eq!(call(&gw, "/api/secure/", Some(&older)).await.0, 200);
    let (s, body) = admin("POST", &gw, "/admin/revocations", Some(json!({"sub": "bob"}))).await;
    assert_eq!((s, body), (201, json!({"revoked": 1})));
    assert_eq!(call(&gw, "/api/secure/", Some(&older)).await.2["error"], "token_revoked");
    // A jti is scoped to its subject: alone it is refused, naming the missing field.
    let (s, body) = admin("POST", &gw, "/admin/revocations", Some(json!({"jti": "x"}))).await;
    assert_eq!((s, body["error"].as_str(), body["field"].as_str()), (400, Some("validation_failed"), Some("sub")));
    let (s, body) = admin(
        "POST",
        &gw,
        "/admin/revocations",
        Some(json!({"jti": "x", "sub": "y", "issued_before": "2026-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("validation_failed")));
}

/// An Ed25519 key pair from the openssl CLI: (private PEM, JWK `x`).
fn ed25519(dir: &std::path::Path, name: &str) -> (Vec<u8>, String) {
    use base64::Engine;
    use std::process::{Command, Stdio};
    let private = dir.join(format!("{name}.pem"));
    let der = dir.join(format!("{name}.der"));
    let run = |args: &[&std::ffi::OsStr]| {
        let ok =
            Command::new("openssl").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap().success();
        assert!(ok, "openssl {args:?}");
    };
    run(&["genpkey".as_ref(), "-algorithm".as_ref(), "ED25519".as_ref(), "-out".as_ref(), private.as_os_str()]);
    run(&[
        "pkey".as_ref(),
        "-in".as_ref(),
        private.as_os_str(),
        "-pubout".as_ref(),
        "-outform".as_ref(),
        "DER".as_ref(),
        "-out".as_ref(),
        der.as_os_str(),
    ]);
    let der = std::fs::read(der).unwrap();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
    (std::fs::read(private).unwrap(), x)
}

fn jwks(keys: &[(&str, &str)]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(kid, x)| json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid, "x": x}))
        .collect();
    json!({"keys": keys}).to_string()
}

#[actix_rt::test]
async fn a_key_rotated_at_the_identity_provider_works_at_once() {
    let dir = std::env::temp_dir().join(format!("gw-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (old_private, old_x) = ed25519(&dir, "old");
    let (new_private, new_x) = ed25519(&dir, "new");
    let idp = MockUpstream::start("idp");
    idp.set_behavior(cluster_tests::upstream::Behavior { body: Some(jwks(&[("old", &old_x)])), ..Default::default() });
    let up = MockUpstream::start("up");
    let gw = GatewayProcess::start(&format!(
        "[node]\nworkers = 1\n[auth.jwt]\nalgorithms = [\"EdDSA\"]\njwks_url = \"{}/.well-known/jwks.json\"\njwks_refresh = \"1h\"\n[[services]]\nname = \"secure\"\nauth = \"jwt\"\nendpoints = [\"{}\"]\n",
        idp.url(),
        up.url()
    ));
    let sign = |kid: &str, pem: &[u8]| {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(kid.into());
        encode(&h, &json!({"sub": "dana", "exp": now() + 600}), &EncodingKey::from_ed_pem(pem).unwrap()).unwrap()
    };
    let old = sign("old", &old_private);
    let url = gw.url("/api/secure/");
    let first = cluster_tests::eventually(std::time::Duration::from_secs(5), async || {
        (client().get(url.as_str()).bearer_auth(&old).send().await.ok()?.status() == 200).then_some(())
    })
    .await;
    assert!(first.is_some(), "token signed with the published key refused");

    // The provider rotates: the very first request with the new kid succeeds.
    idp.set_behavior(cluster_tests::upstream::Behavior { body: Some(jwks(&[("new", &new_x)])), ..Default::default() });
    let new = sign("new", &new_private);
    assert_eq!(client().get(gw.url("/api/secure/")).bearer_auth(&new).send().await.unwrap().status(), 200);
    // A kid the provider never published stays refused (and costs no extra fetch).
    let bogus = sign("bogus", &new_private);
    let (status, _, body) = call(&gw, "/api/secure/", Some(&bogus)).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")));
    let fetches = idp.recorded().len();
    assert!(fetches <= 3, "unknown kids caused {fetches} JWKS fetches");
    let _ = std::fs::remove_dir_all(dir);
}
