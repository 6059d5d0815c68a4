//! Every validation error names its field, a missing required one included — in admin
//! bodies and in the config file.

use cluster_tests::{GatewayProcess, MockUpstream};

use crate::{admin_json, check_config};

#[actix_rt::test]
async fn admin_validation_errors_name_the_field_even_when_it_is_missing() {
    let up = MockUpstream::start("up");
    let gw = GatewayProcess::start("[node]\nworkers = 1\n[log]\naccess_log = false\n");
    let ep = up.url();
    let (status, body) =
        admin_json(&gw, "POST", "/admin/services", &format!(r#"{{"name":"s","endpoints":["{ep}"]}}"#)).await;
    assert_eq!(status, 201, "{body}");
    let cases: Vec<(&str, &str, String, &str)> = vec![
        ("POST", "/admin/services", format!(r#"{{"endpoints":["{ep}"]}}"#), "name"),
        ("POST", "/admin/services", format!(r#"{{"name":"q","endpoints":["{ep}"],"queue":{{}}}}"#), "queue.match"),
        ("POST", "/admin/services", r#"{"name":"x","endpoints":["ftp://x"]}"#.into(), "endpoints[0]"),
        ("POST", "/admin/services", r#"[1, 2]"#.into(), "body"),
        ("POST", "/admin/services", r#"{"name":"#.into(), "name"),
        ("POST", "/admin/services", r#"{"name":"a"} trailing"#.into(), "body"),
        ("PATCH", "/admin/services/s", r#"[1]"#.into(), "body"),
        ("PATCH", "/admin/services/s", r#"{"timeout":5}"#.into(), "timeout"),
        ("PUT", "/admin/services/s", r#""text""#.into(), "body"),
        ("POST", "/admin/consumers", r#"{}"#.into(), "id"),
        ("POST", "/admin/consumers", r#"{"tier":"gold"}"#.into(), "id"),
        ("POST", "/admin/consumers", r#"{"id":"c","permissions":{"services":[1]}}"#.into(), "permissions.services[0]"),
        ("POST", "/admin/consumers", r#"{"id":"c","nope":1}"#.into(), "nope"),
        ("PUT", "/admin/consumers/c", r#"[]"#.into(), "body"),
        ("POST", "/admin/services/s/instances", r#"{}"#.into(), "url"),
        ("POST", "/admin/services/s/instances", r#"{"weight":2}"#.into(), "url"),
        ("POST", "/admin/consumers/c/keys", r#"{"name":1}"#.into(), "name"),
        ("POST", "/admin/revocations", r#"{}"#.into(), "jti"),
    ];
    for (method, path, body, field) in cases {
        let (status, answer) = admin_json(&gw, method, path, &body).await;
        assert_eq!(status, 400, "{method} {path} {body}: {answer}");
        assert_eq!(answer["error"], "validation_failed", "{method} {path} {body}: {answer}");
        assert_eq!(answer["field"].as_str(), Some(field), "{method} {path} {body}: {answer}");
        assert!(answer["request_id"].is_string(), "{answer}");
    }
}

#[test]
fn check_config_names_a_missing_required_field() {
    let cases = [
        ("[[services]]\nendpoints = [\"http://127.0.0.1:1\"]\n", "services[0].name (line 1)"),
        ("[rate_limit.policies.p]\nwindow = \"1s\"\n", "rate_limit.policies.p.limit"),
        (
            "[[services]]\nname = \"q\"\nendpoints = [\"http://127.0.0.1:1\"]\n[services.queue]\nmode = \"async\"\n",
            "services[0].queue.match",
        ),
    ];
    for (text, expected) in cases {
        let (code, out) = check_config(text);
        assert_eq!(code, 2, "{text}: {out}");
        assert!(out.contains(expected), "expected {expected:?} in {out:?}");
    }
}
