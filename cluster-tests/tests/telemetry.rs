//! Traces and access logs (SPEC §12): spans exported over OTLP/HTTP JSON to a collector
//! (a mock upstream standing in for one), W3C `traceparent` continued and propagated
//! upstream with the gateway's upstream span as parent, and one access-log line per
//! request with the limiter result, in JSON and in pretty format.

use std::time::Duration;

use cluster_tests::{GatewayProcess, MockUpstream, client, eventually};
use serde_json::Value;

const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn config(up: &MockUpstream, extra: &str) -> String {
    format!(
        r#"
[node]
workers = 1
{extra}
[rate_limit.policies.p]
limit = 100
window = "1m"
key = "ip"
[[services]]
name = "api"
rate_limit = "p"
endpoints = ["{}"]
"#,
        up.url()
    )
}

/// Every span the collector received.
fn exported_spans(collector: &MockUpstream) -> Vec<Value> {
    collector
        .recorded()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/traces")
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .flat_map(|doc| {
            let mut out = Vec::new();
            for rs in doc["resourceSpans"].as_array().into_iter().flatten() {
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    out.extend(ss["spans"].as_array().into_iter().flatten().cloned());
                }
            }
            out
        })
        .collect()
}

#[actix_rt::test]
async fn spans_reach_the_collector_and_traceparent_reaches_the_upstream() {
    let (up, collector) = (MockUpstream::start("up"), MockUpstream::start("collector"));
    let extra = format!("[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"edge\"", collector.url());
    let gw = GatewayProcess::start(&config(&up, &extra));

    let res = client().get(gw.url("/api/api/x")).insert_header(("traceparent", INCOMING)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let sent = up.recorded()[0].header("traceparent").expect("traceparent upstream").to_string();
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "the caller's trace continues");
    assert_ne!(parts[2], "00f067aa0ba902b7", "the upstream's parent is the gateway's span");
    assert_eq!(parts[3], "01");

    let spans = eventually(Duration::from_secs(10), async || {
        let spans = exported_spans(&collector);
        (spans.len() >= 3).then_some(spans)
    })
    .await
    .expect("spans exported within 10 s");
    let server = spans.iter().find(|s| s["kind"] == 2).expect("a SERVER span");
    assert_eq!(server["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(server["parentSpanId"], "00f067aa0ba902b7");
    let upstream = spans.iter().find(|s| s["spanId"] == parts[2]).expect("the upstream span is exported");
    assert_eq!(upstream["kind"], 3);
    assert_eq!(upstream["parentSpanId"], server["spanId"]);
    let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    for child in ["auth", "ratelimit", "upstream"] {
        assert!(names.contains(&child), "{child} missing from {names:?}");
    }
    let post = collector.recorded().into_iter().find(|r| r.path == "/v1/traces").expect("export");
    let doc: Value = serde_json::from_slice(&post.body).expect("OTLP JSON");
    let resource = doc["resourceSpans"][0]["resource"]["attributes"].to_string();
    assert!(resource.contains("service.name") && resource.contains("edge"), "{resource}");

    // Without an incoming trace the gateway starts one.
    client().get(gw.url("/api/api/y")).send().await.unwrap();
    let fresh = up.recorded()[1].header("traceparent").expect("new traceparent").to_string();
    assert!(fresh.starts_with("00-") && !fresh.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "{fresh}");
}

#[actix_rt::test]
async fn without_telemetry_the_clients_traceparent_passes_through_untouched() {
    let up = MockUpstream::start("up");
    let gw = GatewayProcess::start(&config(&up, ""));
    client().get(gw.url("/api/api/x")).insert_header(("traceparent", INCOMING)).send().await.unwrap();
    assert_eq!(up.recorded()[0].header("traceparent"), Some(INCOMING));
}

#[actix_rt::test]
async fn access_log_lines_carry_the_limiter_result_in_json_and_pretty_format() {
    let up = MockUpstream::start("up");
    for format in ["json", "pretty"] {
        let gw = GatewayProcess::builder(config(&up, &format!("[log]\nformat = \"{format}\"\naccess_log = true")))
            .env("NO_COLOR", "1")
            .spawn();
        let res = client().get(gw.url("/api/api/x")).insert_header(("x-request-id", "req-42")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let line = eventually(Duration::from_secs(5), async || {
            gw.log_text().lines().find(|l| l.contains("req-42")).map(str::to_string)
        })
        .await
        .expect("an access-log line");
        for field in ["limiter", "allowed", "api", "status", "duration_ms"] {
            assert!(line.contains(field), "{format}: {field} missing in {line}");
        }
        if format == "json" {
            let v: Value = serde_json::from_str(&line).expect("one JSON object per line");
            assert_eq!(v["limiter"], "allowed");
            assert_eq!(v["request_id"], "req-42");
        }
    }
}
