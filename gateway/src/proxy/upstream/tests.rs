//! The interface's taxonomy, prepared-header rule and protocol upgrade.

use std::time::Duration;

use actix_web::error::PayloadError;
use actix_web::http::header;
use actors::balancer::EndpointSource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

fn endpoint(url: &str) -> Endpoint {
    Endpoint::new("s-0", url.parse().unwrap(), 1, EndpointSource::Config)
}

#[test]
fn failures_are_classified_by_whose_fault_they_are() {
    use crate::proxy::h1;
    let ep = endpoint("http://127.0.0.1:1");
    let t = Duration::from_secs(1);
    let body = plain::error(h1::Error::Body(PayloadError::Incomplete(None)));
    assert!(body.is_client_body() && !body.is_connect());
    assert!(matches!(body.into_gateway(t, &ep), GatewayError::BadRequest(_)));
    let refused = plain::error(h1::Error::Connect(std::io::ErrorKind::ConnectionRefused.into()));
    assert!(refused.is_connect() && !refused.is_client_body());
    assert!(matches!(refused.into_gateway(t, &ep), GatewayError::UpstreamUnavailable(_)));
    assert!(plain::error(h1::Error::ConnectTimeout).is_connect());
    assert!(matches!(plain::error(h1::Error::ConnectTimeout).into_gateway(t, &ep), GatewayError::UpstreamTimeout(_)));
    assert!(matches!(Error::Timeout.into_gateway(t, &ep), GatewayError::UpstreamTimeout(_)));
    let invalid = plain::error(h1::Error::Invalid("x"));
    assert!(!invalid.is_connect() && !invalid.is_client_body());
    assert!(matches!(invalid.into_gateway(t, &ep), GatewayError::UpstreamUnavailable(_)));
    let tls_body = tls::error(awc::error::SendRequestError::Body(PayloadError::Overflow.into()));
    assert!(tls_body.is_client_body());
    let tls_timeout = tls::error(awc::error::SendRequestError::Connect(awc::error::ConnectError::Timeout));
    assert!(tls_timeout.is_connect());
    assert!(matches!(tls_timeout.into_gateway(t, &ep), GatewayError::UpstreamTimeout(_)));
}

#[test]
fn prepared_headers_lose_hop_by_hop_host_and_length() {
    let mut map = HeaderMap::new();
    map.insert(header::HOST, HeaderValue::from_static("spoofed"));
    map.insert(header::CONTENT_LENGTH, HeaderValue::from_static("9"));
    map.insert(header::CONNECTION, HeaderValue::from_static("close"));
    map.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    map.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    let kept = RequestHeaders::Map(&map).to_map();
    assert_eq!(kept.len(), 1);
    assert!(kept.contains_key(header::ACCEPT));
}

#[test]
fn tls_settings_carry_alpn_and_check_client_certificates() {
    assert!(!TlsSettings::default().build().unwrap().offers_h2());
    let both = TlsSettings::default().alpn(vec![tls::H2.to_vec(), tls::HTTP_11.to_vec()]).build().unwrap();
    assert!(both.offers_h2());
    let err = TlsSettings::default().client_cert(b"", b"").build().err().unwrap();
    assert!(err.contains("client certificate"), "{err}");
}

#[test]
fn a_client_certificate_and_key_are_accepted() {
    let dir = std::env::temp_dir().join(format!("gw-client-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=gateway", "-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(&dir)
        .output();
    if !made.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: no openssl to make a client certificate");
        return;
    }
    let (cert, key) = (std::fs::read(dir.join("cert.pem")).unwrap(), std::fs::read(dir.join("key.pem")).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(TlsSettings::default().client_cert(&cert, &key).build().is_ok());
    let err = TlsSettings::default().client_cert(&cert, &cert).build().err().unwrap();
    assert!(err.contains("private key"), "{err}");
}

/// A raw upstream answering one request with `answer`.
async fn one_answer(answer: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0u8; 1024];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        assert!(head.contains("connection: upgrade\r\n") && head.contains("upgrade: websocket\r\n"), "{head}");
        sock.write_all(answer).await.unwrap();
        // Echo what follows (the new protocol).
        let mut chunk = [0u8; 1024];
        if let Ok(n) = sock.read(&mut chunk).await {
            let _ = sock.write_all(&chunk[..n]).await;
        }
    });
    port
}

fn upgrade_request<'a>(ep: &'a Endpoint, headers: &'a HeaderMap) -> Request<'a, NoStream> {
    Request {
        endpoint: ep,
        method: &Method::GET,
        path: "/ws",
        query: "",
        headers: RequestHeaders::Map(headers),
        body: RequestBody::None,
    }
}

#[actix_rt::test]
async fn a_101_hands_the_connection_over_and_other_answers_come_back() {
    let upstream = Upstream::new(&TlsSettings::default().build().unwrap());
    let protocol = HeaderValue::from_static("websocket");
    let headers = HeaderMap::new();

    let port =
        one_answer(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\nhi").await;
    let ep = endpoint(&format!("http://127.0.0.1:{port}"));
    let Ok(Upgrade::Switched(mut up)) = upstream.upgrade(upgrade_request(&ep, &headers), &protocol).await else {
        panic!("expected a switch");
    };
    assert_eq!(up.headers.get(header::UPGRADE).unwrap(), "websocket");
    assert_eq!(&up.read_ahead[..], b"hi");
    up.io.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    up.io.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping");

    let port = one_answer(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\nno").await;
    let ep = endpoint(&format!("http://127.0.0.1:{port}"));
    let Ok(Upgrade::Refused(res)) = upstream.upgrade(upgrade_request(&ep, &headers), &protocol).await else {
        panic!("expected a refusal");
    };
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(&res.body.read_to_end(16).await.unwrap()[..], b"no");

    let tls_ep = endpoint("https://127.0.0.1:1");
    assert!(matches!(upstream.upgrade(upgrade_request(&tls_ep, &headers), &protocol).await, Err(Error::Protocol(_))));
}
