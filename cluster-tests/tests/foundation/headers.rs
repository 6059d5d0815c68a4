use cluster_tests::{MockUpstream, client};

use crate::{gateway, header, service};

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[actix_rt::test]
async fn valid_request_ids_are_kept_and_others_replaced_end_to_end() {
    let up = MockUpstream::start("up");
    let gw = gateway(&service("s", &[&up], ""));
    let c = client();

    let res = c.get(gw.url("/api/s/")).insert_header(("X-Request-Id", "client-id.42:x_y")).send().await.unwrap();
    assert_eq!(header(&res, "x-request-id"), "client-id.42:x_y");
    let res = c.get(gw.url("/api/s/")).insert_header(("X-Request-Id", "bad id;drop")).send().await.unwrap();
    let replaced = header(&res, "x-request-id");
    assert!(is_uuid(&replaced), "{replaced}");
    let res = c.get(gw.url("/api/s/")).send().await.unwrap();
    let generated = header(&res, "x-request-id");
    assert!(is_uuid(&generated), "{generated}");
    assert_eq!(&generated[14..15], "7", "UUIDv7: {generated}");

    let seen = up.recorded();
    assert_eq!(seen[0].header("x-request-id"), Some("client-id.42:x_y"));
    assert_eq!(seen[1].header("x-request-id"), Some(replaced.as_str()));
    assert_eq!(seen[2].header("x-request-id"), Some(generated.as_str()));
}

#[actix_rt::test]
async fn every_response_carries_a_request_id_health_metrics_and_dashboard_included() {
    let up = MockUpstream::start("up");
    let gw = gateway(&service("s", &[&up], ""));
    let c = client();
    let urls = [
        gw.url("/health"),
        gw.url("/ready"),
        gw.admin_url("/health"),
        gw.admin_url("/ready"),
        gw.admin_url("/metrics"),
        gw.admin_url("/admin/dashboard"),
        gw.admin_url("/nowhere"),
        gw.admin_url("/admin/services"),
    ];
    for url in urls {
        let res = c.get(&url).send().await.unwrap();
        assert!(is_uuid(&header(&res, "x-request-id")), "{url}: no generated X-Request-Id");
        let res = c.get(&url).insert_header(("X-Request-Id", "probe-7")).send().await.unwrap();
        assert_eq!(header(&res, "x-request-id"), "probe-7", "{url}: the client's id is kept");
    }
    // An admin error's body names the same id as its header.
    for url in [gw.admin_url("/nowhere"), gw.admin_url("/admin/services/nope")] {
        let mut res = c.get(&url).send().await.unwrap();
        let id = header(&res, "x-request-id");
        assert_eq!(crate::json(&mut res).await["request_id"], id.as_str(), "{url}");
    }
}

#[actix_rt::test]
async fn every_client_via_line_is_kept_and_ours_appended() {
    let up = MockUpstream::start("up");
    let gw = gateway(&service("s", &[&up], ""));
    client()
        .get(gw.url("/api/s/"))
        .append_header(("Via", "1.0 edge-a"))
        .append_header(("Via", "1.1 edge-b, 1.1 edge-c"))
        .send()
        .await
        .unwrap();
    assert_eq!(up.recorded()[0].header("via"), Some("1.0 edge-a, 1.1 edge-b, 1.1 edge-c, 1.1 gw-test"));
}

#[actix_rt::test]
async fn forwarded_for_from_an_untrusted_peer_is_replaced() {
    let up = MockUpstream::start("up");
    let gw = gateway(&service("s", &[&up], ""));
    client()
        .get(gw.url("/api/s/"))
        .insert_header(("X-Forwarded-For", "6.6.6.6"))
        .insert_header(("X-Forwarded-Proto", "https"))
        .insert_header(("X-Real-IP", "6.6.6.6"))
        .send()
        .await
        .unwrap();
    let seen = &up.recorded()[0];
    assert_eq!(seen.headers_named("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert!(seen.header("x-forwarded-host").is_some_and(|h| h.starts_with("127.0.0.1:")));
    // The upstream sees its own authority as Host; the client's Host travels in X-Forwarded-Host.
    let authority = up.url().trim_start_matches("http://").trim_end_matches('/').to_string();
    assert_eq!(seen.headers_named("host"), vec![authority.as_str()]);
}

#[actix_rt::test]
async fn forwarded_for_from_a_trusted_proxy_is_appended_to() {
    let up = MockUpstream::start("up");
    let gw = crate::GatewayProcess::start(&format!(
        "{}\ntrusted_proxies = [\"127.0.0.0/8\"]\n{}",
        crate::BASE,
        service("s", &[&up], "")
    ));
    client()
        .get(gw.url("/api/s/"))
        .insert_header(("X-Forwarded-For", "203.0.113.7"))
        .insert_header(("X-Forwarded-Proto", "https"))
        .insert_header(("X-Forwarded-Host", "api.example.com"))
        .send()
        .await
        .unwrap();
    let seen = &up.recorded()[0];
    assert_eq!(seen.header("x-forwarded-for"), Some("203.0.113.7, 127.0.0.1"));
    assert_eq!(seen.header("x-real-ip"), Some("203.0.113.7"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-forwarded-host"), Some("api.example.com"));
}

#[actix_rt::test]
async fn hop_by_hop_and_spoofed_identity_headers_are_not_forwarded() {
    let up = MockUpstream::start("up");
    let gw = gateway(&service("s", &[&up], ""));
    // Raw request: HTTP clients rewrite Connection themselves.
    let request = "GET /api/s/ HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\n\
                   Keep-Alive: timeout=5\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nX-Consumer-Id: admin\r\n\
                   X-Consumer-Tier: premium\r\nX-Custom: kept\r\nx-mock-set-header: Keep-Alive: timeout=99\r\n\r\n";
    let port = gw.port;
    let answer = actix_rt::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_millis(1500))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut buf = vec![0u8; 8192];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase()
    })
    .await
    .unwrap();
    let seen = &up.recorded()[0];
    for h in ["x-hop", "keep-alive", "proxy-authorization", "x-consumer-id", "x-consumer-tier"] {
        assert_eq!(seen.header(h), None, "{h} leaked upstream");
    }
    assert_eq!(seen.header("x-custom"), Some("kept"));
    assert_eq!(seen.header("via"), Some("1.1 gw-test"));

    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("\r\nx-gateway-node: gw-test\r\n"), "{answer}");
    assert!(answer.contains("\r\nvia: 1.1 gw-test\r\n"), "{answer}");
    assert!(!answer.contains("timeout=99"), "upstream keep-alive leaked: {answer}");
    assert!(answer.contains("\r\nx-upstream: up\r\n"), "{answer}");
}

#[actix_rt::test]
async fn bodies_stream_through_both_ways_unchanged() {
    let up = MockUpstream::start("up");
    let gw = gateway(&service("s", &[&up], ""));
    let payload = vec![b'x'; 300 * 1024];
    let mut res = client()
        .post(gw.url("/api/s/upload"))
        .insert_header(("content-type", "application/octet-stream"))
        .send_body(payload.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
    assert_eq!(body["body_len"], payload.len());
    assert_eq!(up.recorded()[0].body, payload);
    assert_eq!(up.recorded()[0].header("content-length"), Some("307200"));
}

#[actix_rt::test]
async fn empty_bodies_keep_their_framing_upstream() {
    let up = MockUpstream::start("up");
    let gw = gateway(&service("s", &[&up], ""));
    let res = client().post(gw.url("/api/s/empty")).send_body("").await.unwrap();
    assert_eq!(res.status(), 200);
    // Raw, so that the request surely carries neither Content-Length nor Transfer-Encoding.
    let addr = gw.url("").trim_start_matches("http://").trim_end_matches('/').to_string();
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut sock = std::net::TcpStream::connect(addr).unwrap();
        sock.write_all(b"GET /api/s/none HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        sock.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = up.recorded();
    assert_eq!(seen[0].header("content-length"), Some("0"), "a declared empty body stays declared");
    assert_eq!(seen[1].header("content-length"), None, "no length invented for a request without a body");
    assert_eq!(seen[1].header("transfer-encoding"), None);
}
