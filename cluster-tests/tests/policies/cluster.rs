//! Validation of the policy sections (admin API and config file), and a change made on
//! one node of three applying on another.

use std::process::Command;
use std::time::{Duration, Instant};

use cluster_tests::{GatewayProcess, MockUpstream, TestRedis, client, eventually, free_port, gateway_bin};
use serde_json::{Value, json};

use crate::{Answer, node, send};

/// How long a registry change may take to reach every node (as in tests/registry).
const PROPAGATION: Duration = Duration::from_secs(10);

async fn admin(gw: &GatewayProcess, method: &str, path: &str, body: Value) -> (u16, Value) {
    let mut res =
        client().request(method.parse().unwrap(), gw.admin_url(path)).send_json(&body).await.expect("admin answers");
    let bytes = res.body().await.unwrap_or_default();
    (res.status().as_u16(), serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Polls `gw` with `method path` (and `headers`) until `done` holds for the answer.
async fn until(
    gw: &GatewayProcess,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    done: impl Fn(&Answer) -> bool,
) -> bool {
    eventually(PROPAGATION, async || {
        let mut req = client().request(method.parse().unwrap(), gw.url(path));
        for h in headers {
            req = req.insert_header(*h);
        }
        let res = send(req, None).await;
        done(&res).then_some(())
    })
    .await
    .is_some()
}

#[actix_rt::test]
async fn a_policy_change_made_on_node_a_applies_on_node_c() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("up");
    let nodes: Vec<GatewayProcess> =
        ["gw-a", "gw-b", "gw-c"].iter().map(|id| node(id, Some(&redis.url()), "", "")).collect();
    let (a, c) = (&nodes[0], &nodes[2]);
    let (status, body) = admin(a, "POST", "/admin/services", json!({"name": "users", "endpoints": [up.url()]})).await;
    assert_eq!(status, 201, "{body}");
    assert!(until(c, "POST", "/api/users/1", &[], |r| r.status == 200).await, "node C routes the service");

    let app = "https://app.example.com";
    let patch = json!({"methods": ["GET"], "cors": {"origins": [app], "max_age": "1m"}});
    let (status, body) = admin(a, "PATCH", "/admin/services/users", patch).await;
    assert_eq!((status, &body["methods"]), (200, &json!(["GET"])), "{body}");
    let changed = Instant::now();
    assert!(until(c, "POST", "/api/users/1", &[], |r| r.status == 405 && r.header("allow") == "GET, HEAD").await);
    let preflight = [("Origin", app), ("Access-Control-Request-Method", "GET")];
    assert!(until(c, "OPTIONS", "/api/users/1", &preflight, |r| r.status == 204).await, "CORS on node C");
    let methods_and_cors = changed.elapsed();

    let (status, body) = admin(a, "PATCH", "/admin/services/users", json!({"ip": {"deny": ["127.0.0.0/8"]}})).await;
    assert_eq!(status, 200, "{body}");
    let changed = Instant::now();
    let refused = |r: &Answer| r.status == 403 && r.json()["error"] == "ip_forbidden";
    assert!(until(c, "GET", "/api/users/1", &[], refused).await, "IP rules on node C");
    let ip = changed.elapsed();
    let (status, _) = admin(a, "PATCH", "/admin/services/users", json!({"ip": null, "methods": null})).await;
    assert_eq!(status, 200);
    assert!(until(c, "DELETE", "/api/users/1", &[], |r| r.status == 200).await, "removed again on node C");
    eprintln!("propagation to node C: methods+cors {methods_and_cors:?}, ip {ip:?} (bound {PROPAGATION:?})");
}

#[actix_rt::test]
async fn policy_sections_are_validated_naming_the_field() {
    let gw = node("v", None, "", "");
    let ep = "http://127.0.0.1:9";
    let cases = [
        (json!({"ip": {"allow": ["10.0.0.0/8", "nope"]}}), "ip.allow[1]"),
        (json!({"ip": {"deny": ["10.0.0.1/8"]}}), "ip.deny[0]"),
        (json!({"ip": {}}), "ip"),
        (json!({"methods": ["GET", "G ET"]}), "methods[1]"),
        (json!({"methods": []}), "methods"),
        (json!({"methods": ["GET"], "cors": {"origins": ["*"], "methods": ["DELETE"]}}), "cors.methods[0]"),
        (json!({"cors": {"origins": ["*", "app.example.com"]}}), "cors.origins[1]"),
        (json!({"cors": {"methods": ["GET"]}}), "cors.origins"),
        (json!({"cors": {"origins": ["*"], "credentials": true, "expose_headers": ["*"]}}), "cors.expose_headers[0]"),
        (json!({"max_body": "10XB"}), "max_body"),
        (json!({"max_body": "2GiB"}), "max_body"),
    ];
    for (extra, field) in cases {
        let mut body = json!({"name": "s", "endpoints": [ep]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let (status, answer) = admin(&gw, "POST", "/admin/services", body.clone()).await;
        assert_eq!((status, answer["error"].as_str()), (400, Some("validation_failed")), "{body}: {answer}");
        assert_eq!(answer["field"].as_str(), Some(field), "{body}: {answer}");
    }
    let ok = json!({"name": "s", "endpoints": [ep], "methods": ["get"], "max_body": "1MiB",
        "ip": {"allow": ["10.0.0.0/8", "192.0.2.7"]}, "cors": {"origins": ["https://*.example.com"]}});
    let (status, answer) = admin(&gw, "POST", "/admin/services", ok).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!((&answer["methods"], &answer["ip"]["allow"][1]), (&json!(["GET"]), &json!("192.0.2.7")));
    // The OpenAPI document describes every field of the answer, inside the sections too.
    let mut res = client().get(gw.admin_url("/admin/openapi.json")).send().await.expect("document");
    let doc: Value = serde_json::from_slice(&res.body().limit(1 << 20).await.unwrap_or_default()).unwrap_or_default();
    let props = &doc["components"]["schemas"]["Service"]["properties"];
    for (key, value) in answer.as_object().unwrap() {
        assert!(props[key].is_object(), "{key} not in the schema");
        for inner in value.as_object().map(|o| o.keys().collect::<Vec<_>>()).unwrap_or_default() {
            assert!(props[key]["properties"][inner].is_object(), "{key}.{inner} not in the schema");
        }
    }

    let file = "[[services]]\nname = \"s\"\nendpoints = [\"http://127.0.0.1:9\"]\n[services.ip]\nallow = [\"10.0.0.0/8\", \"x\"]\n";
    let (code, out) = check_config(file);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("services[0].ip.allow[1] (line 5)"), "{out}");
}

/// Runs `gateway check-config` on `text`: exit code and output.
fn check_config(text: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("gw-policies-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("c.toml");
    std::fs::write(&file, text).expect("write");
    let out = Command::new(gateway_bin()).arg("check-config").arg(&file).output().expect("run check-config");
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}
