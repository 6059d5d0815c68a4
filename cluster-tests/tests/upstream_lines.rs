//! Black-box test of a limit of the plain-HTTP upstream client found by the property
//! tests (`gateway/tests/h1_properties.rs`): a chunk-size line longer than 4 KiB is refused
//! even when the whole body arrives in one read (it was refused only when it arrived in
//! pieces, so the same answer passed or failed depending on the network).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread;

use cluster_tests::{GatewayProcess, client};

/// An upstream answering every request with `answer`, written in one `write`.
fn raw_upstream(answer: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { return };
            let answer = answer.clone();
            thread::spawn(move || {
                let mut reader = BufReader::new(sock.try_clone().unwrap());
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" && sock.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[actix_rt::test]
async fn a_chunk_line_over_the_limit_is_refused_when_it_arrives_whole() {
    let mut answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    answer.extend_from_slice(format!("1;ext={}\r\na\r\n0\r\n\r\n", "x".repeat(5000)).as_bytes());
    let port = raw_upstream(answer);
    let gw = GatewayProcess::start(&format!(
        "[node]\nid = \"lines\"\nworkers = 1\n[[services]]\nname = \"raw\"\nendpoints = [\"http://127.0.0.1:{port}\"]\ntimeout = \"2s\"\n"
    ));
    // Refused: a 502, or (once the head went out) a body that fails. Never the body "a".
    match client().get(gw.url("/api/raw/x")).send().await {
        Err(_) => {}
        Ok(res) if res.status() == 502 => {}
        Ok(mut res) => {
            let body = res.body().await;
            assert!(body.is_err(), "a 5000-byte chunk line was accepted: {} {:?}", res.status(), body);
        }
    }
}
