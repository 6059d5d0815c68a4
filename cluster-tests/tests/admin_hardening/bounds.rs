//! Every duration and size has an upper bound, checked by `check-config` and the admin
//! API (naming the field): an overflowing duration can no longer reach a worker.

use cluster_tests::{GatewayProcess, MockUpstream, client};

use crate::{admin_json, check_config};

const HUGE: &str = "10000000000000000000s";

#[test]
fn check_config_refuses_durations_and_sizes_above_their_bound() {
    let svc = "[[services]]\nname = \"s\"\nendpoints = [\"http://127.0.0.1:1\"]\n";
    let cases = [
        (format!("[node]\nrequest_timeout = \"{HUGE}\"\n"), "node.request_timeout"),
        ("[node]\nrequest_timeout = \"2h\"\n".into(), "node.request_timeout"),
        ("[node]\nshutdown_grace = \"400d\"\n".into(), "node.shutdown_grace"),
        ("[node]\nmax_body = \"2GiB\"\n".into(), "node.max_body"),
        ("[node]\nmax_body = 99999999999999\n".into(), "node.max_body"),
        ("[node]\nmax_header_bytes = \"2MiB\"\n".into(), "node.max_header_bytes"),
        ("[redis]\ncommand_timeout = \"5m\"\n".into(), "redis.command_timeout"),
        ("[cache]\nl1_capacity = \"1TiB\"\n".into(), "cache.l1_capacity"),
        ("[cache]\ndefault_ttl = \"2y\"\n".into(), "cache.default_ttl"),
        ("[rate_limit.policies.p]\nlimit = 1\nwindow = \"400d\"\n".into(), "rate_limit.policies.p.window"),
        (format!("{svc}timeout = \"{HUGE}\"\n"), "services[0].timeout"),
        (format!("{svc}timeout = \"61m\"\n"), "services[0].timeout"),
        (format!("{svc}[services.health_check]\ninterval = \"2d\"\n"), "services[0].health_check.interval"),
        (format!("{svc}[services.queue]\nmatch = [\"POST /x\"]\nwait = \"2h\"\n"), "services[0].queue.wait"),
    ];
    for (text, field) in cases {
        let (code, out) = check_config(&text);
        assert_eq!(code, 2, "{text}: {out}");
        assert!(out.contains(field), "expected {field:?} in {out:?}");
    }
    // The bounds themselves are accepted.
    let (code, out) = check_config(&format!(
        "[node]\nrequest_timeout = \"1h\"\nmax_body = \"1GiB\"\n[cache]\ndefault_ttl = \"365d\"\n{svc}timeout = \"1h\"\n"
    ));
    assert_eq!(code, 0, "{out}");
}

#[actix_rt::test]
async fn the_admin_api_refuses_durations_above_their_bound_and_the_node_keeps_serving() {
    let up = MockUpstream::start("up");
    let gw = GatewayProcess::start("[node]\nworkers = 1\n[log]\naccess_log = false\n");
    let ep = up.url();
    let (status, body) = admin_json(
        &gw,
        "POST",
        "/admin/services",
        &format!(r#"{{"name":"s","endpoints":["{ep}"],"timeout":"{HUGE}"}}"#),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str(), body["field"].as_str()),
        (400, Some("validation_failed"), Some("timeout")),
        "{body}"
    );
    let (status, body) =
        admin_json(&gw, "POST", "/admin/services", &format!(r#"{{"name":"s","endpoints":["{ep}"]}}"#)).await;
    assert_eq!(status, 201, "{body}");
    for (patch, field) in [
        (format!(r#"{{"timeout":"{HUGE}"}}"#), "timeout"),
        (r#"{"timeout":"2h"}"#.to_string(), "timeout"),
        (r#"{"circuit_breaker":{"open_for":"2d"}}"#.to_string(), "circuit_breaker.open_for"),
        (r#"{"queue":{"match":["POST /x"],"lease":"2h"}}"#.to_string(), "queue.lease"),
    ] {
        let (status, body) = admin_json(&gw, "PATCH", "/admin/services/s", &patch).await;
        assert_eq!((status, body["field"].as_str()), (400, Some(field)), "{patch}: {body}");
    }
    let (status, body) =
        admin_json(&gw, "POST", "/admin/services/s/instances", &format!(r#"{{"url":"{ep}","ttl":"2d"}}"#)).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("ttl")), "{body}");
    // The service still works, with its old timeout.
    let res = client().get(gw.url("/api/s/x")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}
