//! The gateway against raw-socket upstreams that use HTTP/1.1 the ways real servers do:
//! chunked answers with trailers, close-delimited bodies, keep-alive connections closed
//! between requests, malformed heads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use super::{BASE, header};
use cluster_tests::{GatewayProcess, client};

/// A raw upstream: each connection reads requests and answers each with `answer(n)`
/// (n counts requests across connections); `close_after` closes the connection after
/// each answer without saying so (an upstream whose keep-alive timeout is short).
struct RawUpstream {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

fn raw_upstream(close_after: bool, answer: fn(usize) -> Vec<u8>) -> RawUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let acc = Arc::clone(&accepted);
    thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { return };
            acc.fetch_add(1, Ordering::SeqCst);
            let served = Arc::clone(&served);
            thread::spawn(move || serve(sock, close_after, answer, &served));
        }
    });
    RawUpstream { port, accepted }
}

fn serve(sock: TcpStream, close_after: bool, answer: fn(usize) -> Vec<u8>, served: &AtomicUsize) {
    let mut reader = BufReader::new(sock.try_clone().unwrap());
    let mut sock = sock;
    loop {
        // Request head; bodies are not used by these tests beyond Content-Length.
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let n = served.fetch_add(1, Ordering::SeqCst);
        if sock.write_all(&answer(n)).is_err() || close_after {
            return;
        }
    }
}

fn gateway_for(up: &RawUpstream) -> GatewayProcess {
    GatewayProcess::start(&format!(
        "{BASE}\n[[services]]\nname = \"raw\"\nendpoints = [\"http://127.0.0.1:{}\"]\ntimeout = \"2s\"\n",
        up.port
    ))
}

fn chunked(_: usize) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for i in 0..64 {
        let chunk = format!("line {i:03} {}\n", "x".repeat(1000));
        out.extend_from_slice(format!("{:x};i={i}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nx-checksum: 1\r\n\r\n");
    out
}

#[actix_rt::test]
async fn chunked_answers_with_extensions_and_trailers_arrive_whole() {
    let up = raw_upstream(false, chunked);
    let gw = gateway_for(&up);
    for _ in 0..3 {
        let mut res = client().get(gw.url("/api/raw/stream")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "content-type"), "text/plain");
        let body = res.body().limit(1 << 20).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(text.lines().count(), 64);
        assert!(text.starts_with("line 000 x") && text.ends_with(&format!("line 063 {}\n", "x".repeat(1000))));
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1, "the connection is kept alive between requests");
}

#[actix_rt::test]
async fn connections_the_upstream_closes_between_requests_cost_no_errors() {
    let up = raw_upstream(true, |n| format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-n: {n}\r\n\r\nok").into_bytes());
    let gw = gateway_for(&up);
    for i in 0..20 {
        let res = client().get(gw.url("/api/raw/x")).send().await.unwrap();
        assert_eq!(res.status(), 200, "request {i}");
        // A POST (not idempotent) too: the closed connection must be noticed, not used.
        let res = client().post(gw.url("/api/raw/x")).send_body("hi").await.unwrap();
        assert_eq!(res.status(), 200, "post {i}");
    }
}

#[actix_rt::test]
async fn close_delimited_bodies_are_streamed_to_the_end() {
    let up = raw_upstream(true, |_| b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end".to_vec());
    let gw = gateway_for(&up);
    let mut res = client().get(gw.url("/api/raw/old")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(&res.body().await.unwrap()[..], b"until the end");
}

#[actix_rt::test]
async fn malformed_answers_are_502_and_the_next_request_works() {
    let up = raw_upstream(true, |n| {
        if n == 0 {
            b"HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\n".to_vec()
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()
        }
    });
    let gw = gateway_for(&up);
    let mut res = client().get(gw.url("/api/raw/bad")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let body: serde_json::Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
    assert_eq!(body["error"], "upstream_unavailable");
    let res = client().get(gw.url("/api/raw/good")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[actix_rt::test]
async fn a_body_the_upstream_stops_sending_is_cut_after_the_service_timeout() {
    // Ten bytes announced, five sent, then silence on an open connection.
    let up = raw_upstream(false, |_| b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234".to_vec());
    let gw = gateway_for(&up);
    let addr = gw.url("").trim_start_matches("http://").trim_end_matches('/').to_string();
    let answer = tokio::task::spawn_blocking(move || {
        let mut sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
        sock.write_all(b"GET /api/raw/stall HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        // Ends at EOF (the gateway closes the cut response), or errors at the read timeout.
        let closed = sock.read_to_end(&mut answer).is_ok();
        (closed, String::from_utf8_lossy(&answer).to_ascii_lowercase())
    })
    .await
    .unwrap();
    assert!(answer.0, "the gateway must close the connection, not wait forever: {}", answer.1);
    assert!(answer.1.contains("content-length: 10\r\n"), "{}", answer.1);
    assert!(answer.1.ends_with("\r\n\r\n01234"), "only the bytes the upstream sent: {}", answer.1);
    assert!(gw.log_text().contains("upstream sent nothing for 2s"), "{}", gw.log_text());
}
