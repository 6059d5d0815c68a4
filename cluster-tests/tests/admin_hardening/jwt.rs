//! JWT rules: a configured audience (and issuer) must be present in the token, a `crit`
//! header is refused, and `check-config` refuses short HMAC secrets.

use cluster_tests::{GatewayProcess, MockUpstream, client};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp as now};
use serde_json::{Value, json};

use crate::check_config;

/// The HMAC secret of these tests (32 bytes).
pub const SECRET: &str = "hardening-secret-of-32-bytes-xyz";

/// A node with one `auth = "jwt"` service `secure` over `up` (issuer and audience set).
pub fn jwt_gateway(up: &MockUpstream, extra: &str) -> GatewayProcess {
    GatewayProcess::start(&format!(
        "[node]\nworkers = 1\n[log]\naccess_log = false\n{extra}\n[auth.jwt]\nalgorithms = [\"HS256\"]\n\
         issuer = \"https://issuer.example\"\naudience = [\"api\"]\n[[auth.jwt.keys]]\nkid = \"k1\"\n\
         secret = \"{SECRET}\"\n[[services]]\nname = \"secure\"\nauth = \"jwt\"\nendpoints = [\"{}\"]\n",
        up.url()
    ))
}

/// A token with the usual claims, `patch` applied (`null` removes a claim), and `crit`.
pub fn token_with(patch: Value, crit: Option<Vec<String>>) -> String {
    let mut claims = json!({"sub": "alice", "iss": "https://issuer.example", "aud": "api", "exp": now() + 600});
    for (k, v) in patch.as_object().expect("object") {
        if v.is_null() {
            claims.as_object_mut().expect("object").remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k1".into());
    h.crit = crit;
    encode(&h, &claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("sign")
}

/// `GET path` on the proxy listener with a bearer token: status and the error code.
pub async fn call(gw: &GatewayProcess, path: &str, token: &str) -> (u16, String) {
    let mut res =
        client().get(gw.url(path)).insert_header(("Authorization", format!("Bearer {token}"))).send().await.unwrap();
    let body: Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap_or(Value::Null);
    (res.status().as_u16(), body["error"].as_str().unwrap_or_default().to_string())
}

#[actix_rt::test]
async fn a_token_without_the_configured_audience_or_with_crit_is_refused() {
    let up = MockUpstream::start("up");
    let gw = jwt_gateway(&up, "");
    assert_eq!(call(&gw, "/api/secure/", &token_with(json!({}), None)).await, (200, String::new()));
    let cases = [
        ("no aud", token_with(json!({"aud": null}), None)),
        ("empty aud list", token_with(json!({"aud": []}), None)),
        ("no iss", token_with(json!({"iss": null}), None)),
        ("crit exp", token_with(json!({}), Some(vec!["exp".into()]))),
        ("crit unknown", token_with(json!({"x-ext": 1}), Some(vec!["x-ext".into()]))),
        ("crit empty", token_with(json!({}), Some(vec![]))),
    ];
    for (what, t) in cases {
        assert_eq!(call(&gw, "/api/secure/", &t).await, (401, "invalid_token".to_string()), "{what}");
    }
    assert_eq!(up.count(), 1, "a refused token reached the upstream");
}

#[test]
fn check_config_refuses_short_hmac_secrets() {
    let cfg = |secret: &str| {
        format!("[auth.jwt]\nalgorithms = [\"HS256\"]\n[[auth.jwt.keys]]\nkid = \"b\"\nsecret = \"{secret}\"\n")
    };
    let (code, out) = check_config(&cfg("short-secret"));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("auth.jwt.keys[0].secret"), "{out}");
    assert!(out.contains("32 bytes"), "{out}");
    let (code, out) = check_config(&cfg(&"x".repeat(31)));
    assert_eq!(code, 2, "{out}");
    let (code, out) = check_config(&cfg(SECRET));
    assert_eq!(code, 0, "{out}");
}
