//! `methods`, `[services.ip]` and `max_body` on one node.

use std::io::{Read, Write};
use std::time::Duration;

use cluster_tests::{MockUpstream, client};

use crate::{node, send, service};

/// Writes `head` on a new connection and reads what comes back until the gateway closes
/// it (or 3 s pass).
fn raw(port: u16, head: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    s.write_all(head.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[actix_rt::test]
async fn other_methods_get_405_with_allow_and_get_implies_head() {
    let up = MockUpstream::start("up");
    let gw = node("m", None, "", &service("m", &up, "methods = [\"GET\", \"POST\"]"));
    for method in ["GET", "HEAD", "POST"] {
        let res = send(client().request(method.parse().unwrap(), gw.url("/api/m/x")), None).await;
        assert_eq!(res.status, 200, "{method}");
    }
    for method in ["DELETE", "PUT", "OPTIONS", "PATCH"] {
        let res = send(client().request(method.parse().unwrap(), gw.url("/api/m/x")), None).await;
        res.assert_error(405, "method_not_allowed");
        assert_eq!(res.header("allow"), "GET, HEAD, POST", "{method}");
    }
    let seen: Vec<String> = up.recorded().into_iter().map(|r| r.method).collect();
    assert_eq!(seen, ["GET", "HEAD", "POST"], "refused methods never reach the upstream");
    // Before `100 Continue`: the refusal comes from the head, the body is never asked for.
    let head = "PUT /api/m/x HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n";
    let answer = raw(gw.port, head);
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(!answer.contains("100 Continue") && answer.contains("method_not_allowed"), "{answer}");
}

#[actix_rt::test]
async fn ip_rules_see_the_forwarded_client_only_through_trusted_proxies() {
    let up = MockUpstream::start("up");
    let rules = "[services.ip]\nallow = [\"203.0.113.0/24\", \"127.0.0.0/8\"]\ndeny = [\"203.0.113.66\"]\n";
    let s = |name: &str, rules: &str| service(name, &up, rules);
    let services = s("allowlisted", rules) + &s("denylisted", "[services.ip]\ndeny = [\"127.0.0.1\"]\n");
    let behind_proxy = node("proxied", None, "trusted_proxies = [\"127.0.0.1\"]", &services);
    let direct = node("direct", None, "", &services);
    let get = |gw: &cluster_tests::GatewayProcess, path: &str, xff: Option<&str>| {
        let mut req = client().get(gw.url(path));
        if let Some(xff) = xff {
            req = req.insert_header(("X-Forwarded-For", xff));
        }
        send(req, None)
    };
    // Behind a trusted proxy the client is the rightmost untrusted X-Forwarded-For entry.
    assert_eq!(get(&behind_proxy, "/api/allowlisted/x", Some("203.0.113.5")).await.status, 200);
    assert_eq!(get(&behind_proxy, "/api/allowlisted/x", Some("10.1.1.1, 203.0.113.5")).await.status, 200);
    for refused in ["203.0.113.66", "198.51.100.1", "203.0.113.5, 198.51.100.1"] {
        let res = get(&behind_proxy, "/api/allowlisted/x", Some(refused)).await;
        res.assert_error(403, "ip_forbidden");
    }
    // The proxy's own address is not the client's: a deny of 127.0.0.1 lets it through.
    assert_eq!(get(&behind_proxy, "/api/denylisted/x", Some("198.51.100.1")).await.status, 200);
    // From an untrusted peer X-Forwarded-For is ignored: the client is 127.0.0.1.
    assert_eq!(get(&direct, "/api/allowlisted/x", Some("198.51.100.1")).await.status, 200);
    get(&direct, "/api/denylisted/x", Some("203.0.113.5")).await.assert_error(403, "ip_forbidden");
    get(&direct, "/api/denylisted/x", None).await.assert_error(403, "ip_forbidden");
    assert_eq!(up.count(), 4, "refused clients never reach the upstream");
    // Refused before `100 Continue` too.
    let head = "POST /api/denylisted/x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n";
    let answer = raw(direct.port, head);
    assert!(answer.starts_with("HTTP/1.1 403") && answer.contains("ip_forbidden"), "{answer}");
}

#[actix_rt::test]
async fn max_body_per_service_overrides_the_nodes_both_ways() {
    let up = MockUpstream::start("up");
    let services = service("small", &up, "max_body = \"1KiB\"")
        + &service("large", &up, "max_body = \"64KiB\"")
        + &service("plain", &up, "");
    let gw = node("b", None, "max_body = \"4KiB\"", &services);
    let post = |path: &str, n: usize| send(client().post(gw.url(path)), Some(vec![b'x'; n]));
    post("/api/small/x", 2048).await.assert_error(413, "payload_too_large");
    assert_eq!(post("/api/plain/x", 2048).await.status, 200, "the node's 4KiB");
    post("/api/plain/x", 8192).await.assert_error(413, "payload_too_large");
    assert_eq!(post("/api/large/x", 32 * 1024).await.status, 200, "above the node's limit");
    post("/api/large/x", 65 * 1024).await.assert_error(413, "payload_too_large");
    // A streamed (chunked) body is cut at the service's limit too.
    let chunks =
        futures_util::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'y'; 512]))));
    let mut res = client().post(gw.url("/api/small/x")).send_stream(chunks).await.expect("answer");
    assert_eq!(res.status().as_u16(), 413);
    let body: serde_json::Value = serde_json::from_slice(&res.body().await.unwrap_or_default()).unwrap_or_default();
    assert_eq!(body["error"], "payload_too_large");
    let sizes: Vec<usize> = up.recorded().iter().map(|r| r.body.len()).collect();
    assert_eq!(sizes, [2048, 32 * 1024], "only bodies within the limit reach the upstream");
    let head = "POST /api/small/x HTTP/1.1\r\nHost: t\r\nContent-Length: 2048\r\nExpect: 100-continue\r\n\r\n";
    let answer = raw(gw.port, head);
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("payload_too_large"), "{answer}");
}
