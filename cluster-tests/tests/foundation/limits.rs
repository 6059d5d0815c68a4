use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use cluster_tests::{MockUpstream, client, free_port};

use crate::{gateway, header, json, service};

/// Sends raw bytes and reads the whole answer (the gateway closes after errors).
fn raw(port: u16, request: &[u8], pause_after: Option<Duration>) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    if let Some(p) = pause_after {
        std::thread::sleep(p);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn json_body(raw: &str) -> serde_json::Value {
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {raw}"))
}

#[actix_rt::test]
async fn unreachable_upstreams_answer_502_upstream_unavailable() {
    let gw = gateway(&format!("[[services]]\nname = \"gone\"\nendpoints = [\"http://127.0.0.1:{}\"]\n", free_port()));
    let mut res = client().get(gw.url("/api/gone/x")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let id = header(&res, "x-request-id");
    let body = json(&mut res).await;
    assert_eq!(body["error"], "upstream_unavailable");
    assert_eq!(body["request_id"], id.as_str());
}

#[actix_rt::test]
async fn slow_upstreams_answer_504_upstream_timeout() {
    let up = MockUpstream::start("slow");
    let gw = gateway(&service("slow", &[&up], "timeout = \"300ms\""));
    let mut res = client().get(gw.url("/api/slow/x")).insert_header(("x-mock-delay-ms", "2000")).send().await.unwrap();
    assert_eq!(res.status(), 504);
    assert_eq!(json(&mut res).await["error"], "upstream_timeout");
}

#[actix_rt::test]
async fn a_service_without_endpoints_answers_503_with_retry_after() {
    let gw = gateway("[[services]]\nname = \"empty\"\n");
    let mut res = client().get(gw.url("/api/empty/x")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(header(&res, "retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(json(&mut res).await["error"], "no_healthy_upstream");
}

const LIMITED: &str = "max_body = \"1KiB\"\nmax_headers = 50\nmax_header_bytes = \"8KiB\"\nrequest_timeout = \"1s\"\n";

fn limited_gateway(up: &MockUpstream) -> cluster_tests::GatewayProcess {
    cluster_tests::GatewayProcess::start(&format!("{}{LIMITED}\n{}", crate::BASE, service("s", &[up], "")))
}

#[actix_rt::test]
async fn bodies_over_max_body_answer_413_whether_declared_or_streamed() {
    let up = MockUpstream::start("up");
    let gw = limited_gateway(&up);
    let mut res = client().post(gw.url("/api/s/x")).send_body(vec![b'a'; 2048]).await.unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(json(&mut res).await["error"], "payload_too_large");

    let chunk = "a".repeat(1500);
    let req = format!(
        "POST /api/s/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let answer = raw(gw.port, req.as_bytes(), None);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(json_body(&answer)["error"], "payload_too_large");
    assert!(answer.to_ascii_lowercase().contains("x-request-id:"));

    assert_eq!(client().post(gw.url("/api/s/x")).send_body(vec![b'a'; 1024]).await.unwrap().status(), 200);
}

#[actix_rt::test]
async fn too_many_or_too_large_headers_answer_431() {
    let up = MockUpstream::start("up");
    let gw = limited_gateway(&up);
    let mut res =
        client().get(gw.url("/api/s/x")).insert_header(("X-Big", "b".repeat(10 * 1024))).send().await.unwrap();
    assert_eq!(res.status(), 431);
    assert!(!header(&res, "x-request-id").is_empty());
    assert_eq!(json(&mut res).await["error"], "headers_too_large");

    let mut req = client().get(gw.url("/api/s/x"));
    for i in 0..60 {
        req = req.insert_header((format!("x-h{i}"), "v"));
    }
    let mut res = req.send().await.unwrap();
    assert_eq!(res.status(), 431);
    assert_eq!(json(&mut res).await["error"], "headers_too_large");
    assert_eq!(up.count(), 0);
}

#[actix_rt::test]
async fn a_client_too_slow_to_send_its_body_gets_408() {
    let up = MockUpstream::start("up");
    let gw = limited_gateway(&up);
    let port = gw.port;
    let answer = actix_rt::task::spawn_blocking(move || {
        raw(port, b"POST /api/s/x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly-ten!!", None)
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(json_body(&answer)["error"], "request_timeout");
}

#[actix_rt::test]
async fn a_client_too_slow_to_send_its_headers_gets_408() {
    let up = MockUpstream::start("up");
    let gw = limited_gateway(&up);
    let port = gw.port;
    let answer =
        actix_rt::task::spawn_blocking(move || raw(port, b"GET /api/s/x HTTP/1.1\r\nHost: t\r\n", None)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(up.count(), 0);
}

#[actix_rt::test]
async fn a_flood_of_malformed_requests_is_counted_and_logged_as_one_summary() {
    let up = MockUpstream::start("up");
    let gw = gateway(&service("s", &[&up], ""));
    let port = gw.port;
    let answers = actix_rt::task::spawn_blocking(move || {
        (0..40)
            .map(|i| {
                // Two Content-Lengths: actix-http answers 400 and logs an ERROR line for it.
                let req =
                    format!("GET /api/s/{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
                raw(port, req.as_bytes(), None)
            })
            .count()
    })
    .await
    .unwrap();
    assert_eq!(answers, 40);
    // One summary line per 5 s window: the 40 may straddle two windows.
    let summaries = cluster_tests::eventually(Duration::from_secs(15), async || {
        let lines: Vec<serde_json::Value> = gw
            .log_text()
            .lines()
            .filter(|l| l.contains("malformed client requests"))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let total: u64 = lines.iter().filter_map(|l| l["count"].as_u64()).sum();
        (total == 40).then_some(lines)
    })
    .await
    .unwrap_or_else(|| panic!("no summary of 40 within 15 s:\n{}", gw.log_text()));
    assert!(summaries.len() <= 2, "{summaries:?}");
    assert!(summaries.iter().all(|l| l["level"] == "WARN" && l["last"].as_str().is_some_and(|m| m.contains("parse"))));
    let log = gw.log_text();
    let per_request = log.lines().filter(|l| l.contains("actix_http")).count();
    assert_eq!(per_request, 0, "no per-request line from actix-http:\n{log}");
    let metrics = client().get(gw.admin_url("/metrics")).send().await.unwrap().body().await.unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(metrics.contains("gateway_client_protocol_errors_total 40"), "{metrics}");
}
