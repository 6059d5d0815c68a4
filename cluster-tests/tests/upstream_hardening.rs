//! Hardening of the upstream side (issue #20): malformed upstream answers are clean 502s
//! that expose nothing internal, client-side faults never charge a breaker, active health
//! checks go through the traffic's own clients (TLS included), a service pointing at the
//! gateway itself is a 508, and `100 Continue` waits for auth and limits.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use cluster_tests::{GatewayProcess, MockUpstream, client, eventually, free_port, wait_until};
use serde_json::Value;

/// One worker, no access log noise.
const NODE: &str = "[node]\nid = \"gw-hard\"\nworkers = 1\n";

/// A raw upstream answering every request with `answer` (then closing the connection).
fn raw_upstream(answer: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { return };
            thread::spawn(move || {
                let mut reader = BufReader::new(sock.try_clone().expect("clone"));
                let mut sock = sock;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                // One write: head and body arrive together.
                let _ = sock.write_all(answer);
                let _ = sock.flush();
                // Let the gateway read before the close.
                thread::sleep(Duration::from_millis(200));
            });
        }
    });
    port
}

fn service_at(port: u16, extra: &str) -> String {
    format!(
        "[[services]]\nname = \"raw\"\nretries = 0\nendpoints = [\"http://127.0.0.1:{port}\"]\ntimeout = \"2s\"\n{extra}\n"
    )
}

/// Status, `X-Request-Id` and the body (JSON or `Null`) of a `GET`.
async fn get(url: &str) -> (u16, String, Value) {
    let mut res = client().get(url).send().await.expect("the gateway answers");
    let id = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body = res.body().limit(1 << 20).await.expect("a complete body");
    (res.status().as_u16(), id, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A 502/504 body: the code, a generic message, the request id; no internals.
fn assert_generic(body: &Value, code: &str, request_id: &str, secrets: &[&str]) {
    assert_eq!(body["error"], code, "{body}");
    assert_eq!(body["request_id"], request_id, "{body}");
    let message = body["message"].as_str().expect("a message");
    for s in secrets {
        assert!(!message.contains(s), "the message exposes {s:?}: {message}");
    }
}

fn head_of_70_kib() -> &'static [u8] {
    let mut out = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..70 {
        out.extend_from_slice(format!("x-filler-{i:02}: {}\r\n", "x".repeat(1000)).as_bytes());
    }
    out.extend_from_slice(b"content-length: 2\r\n\r\nok");
    out.leak()
}

#[actix_rt::test]
async fn a_malformed_first_chunk_size_is_a_502_not_an_empty_reply() {
    let port = raw_upstream(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n");
    let gw = GatewayProcess::start(&format!("{NODE}{}", service_at(port, "")));
    let (status, id, body) = get(&gw.url("/api/raw/chunks")).await;
    assert_eq!(status, 502, "{body}");
    assert_generic(&body, "upstream_unavailable", &id, &["raw-0", "chunk"]);
}

#[actix_rt::test]
async fn a_complete_response_head_above_64_kib_is_refused() {
    let port = raw_upstream(head_of_70_kib());
    let gw = GatewayProcess::start(&format!("{NODE}{}", service_at(port, "")));
    let (status, _, body) = get(&gw.url("/api/raw/big-head")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "upstream_unavailable");
}

#[actix_rt::test]
async fn upstream_failures_answer_a_generic_message_and_log_the_details() {
    let port = raw_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok");
    let closed = free_port();
    let slow = MockUpstream::start("slow");
    slow.set_behavior(cluster_tests::upstream::Behavior {
        delay: Duration::from_secs(5),
        ..cluster_tests::upstream::Behavior::default()
    });
    let config = format!(
        "{NODE}{}[[services]]\nname = \"gone\"\nretries = 0\nendpoints = [\"http://127.0.0.1:{closed}\"]\n\
         [[services]]\nname = \"slow\"\nretries = 0\ntimeout = \"1s\"\nendpoints = [\"{}\"]\n",
        service_at(port, ""),
        slow.url()
    );
    let gw = GatewayProcess::start(&config);
    let (status, id, body) = get(&gw.url("/api/raw/x")).await;
    assert_eq!(status, 502);
    assert_generic(&body, "upstream_unavailable", &id, &["raw-0", "Content-Length", "invalid response", "127.0.0.1"]);
    let (status, id, body) = get(&gw.url("/api/gone/x")).await;
    assert_eq!(status, 502);
    assert_generic(&body, "upstream_unavailable", &id, &["gone-0", &closed.to_string(), "connect", "127.0.0.1"]);
    let (status, id, body) = get(&gw.url("/api/slow/x")).await;
    assert_eq!(status, 504);
    assert_generic(&body, "upstream_timeout", &id, &["slow-0", "1s", "127.0.0.1"]);
    assert!(
        wait_until(Duration::from_secs(5), || gw.log_text().contains("conflicting Content-Length")),
        "the details go to the log: {}",
        gw.log_text()
    );
}

#[actix_rt::test]
async fn status_codes_outside_100_to_599_are_a_502() {
    for answer in
        [&b"HTTP/1.1 600 Odd\r\ncontent-length: 2\r\n\r\nok"[..], b"HTTP/1.1 999 Odd\r\ncontent-length: 2\r\n\r\nok"]
    {
        let port = raw_upstream(answer);
        let gw = GatewayProcess::start(&format!("{NODE}{}", service_at(port, "")));
        let (status, _, body) = get(&gw.url("/api/raw/odd")).await;
        assert_eq!(status, 502, "{}: {body}", String::from_utf8_lossy(answer));
        assert_eq!(body["error"], "upstream_unavailable");
    }
    // The same over TLS (awc): `openssl s_server -HTTP` sends the file as the whole answer.
    let tls = TlsServer::start(&[("odd", "HTTP/1.0 600 Odd\r\ncontent-length: 2\r\n\r\nok")]);
    let gw = GatewayProcess::start(&format!(
        "{NODE}upstream_ca_file = \"{}\"\n[[services]]\nname = \"tls\"\nretries = 0\nendpoints = [\"https://127.0.0.1:{}\"]\n",
        tls.dir.join("ca.pem").display(),
        tls.port
    ));
    let (status, _, body) = get(&gw.url("/api/tls/odd")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "upstream_unavailable");
}

/// `openssl s_server -HTTP` over a private CA: each file in its directory is a complete
/// HTTP answer (status line and headers included).
struct TlsServer {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TlsServer {
    fn start(files: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("gw-hard-tls-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext.cnf");
        let steps: [&[&str]; 3] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=test-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "key.pem",
                "-out",
                "server.csr",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                "ext.cnf",
                "-out",
                "cert.pem",
            ],
        ];
        for args in steps {
            let ok = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl runs")
                .success();
            assert!(ok, "openssl {args:?}");
        }
        for (name, content) in files {
            std::fs::write(dir.join(name), content).expect("file");
        }
        let port = free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-HTTP", "-quiet", "-accept", &port.to_string(), "-cert", "cert.pem", "-key", "key.pem"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        assert!(wait_until(Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port)).is_ok()));
        Self { child, port, dir }
    }
}

#[actix_rt::test]
async fn a_service_pointing_at_the_gateway_itself_answers_508() {
    let up = MockUpstream::start("fine");
    let gw = GatewayProcess::start(&format!("{NODE}[[services]]\nname = \"fine\"\nendpoints = [\"{}\"]\n", up.url()));
    let res = client()
        .post(gw.admin_url("/admin/services"))
        .send_json(&serde_json::json!({"name": "selfie", "endpoints": [gw.url("")]}))
        .await
        .expect("admin answers");
    assert!(res.status().is_success(), "{}", res.status());
    let (status, id, body) = eventually(Duration::from_secs(10), async || {
        let answer = get(&gw.url("/api/selfie/x")).await;
        (answer.0 != 404).then_some(answer)
    })
    .await
    .expect("the service is routed");
    assert_eq!(status, 508, "{body}");
    assert_eq!(body["error"], "loop_detected");
    assert!(!id.is_empty());

    // Only this node's own id, as a whole hop, counts.
    for via in ["1.1 gw-hard0", "1.1 xgw-hard, 1.0 gw-hard-2 (proxy)", "gw-hard"] {
        let res = client().get(gw.url("/api/fine/x")).insert_header(("via", via)).send().await.expect("answers");
        assert_eq!(res.status(), 200, "Via: {via}");
    }
    let mut res = client()
        .get(gw.url("/api/fine/x"))
        .insert_header(("via", "1.0 edge, 1.1 gw-hard"))
        .send()
        .await
        .expect("answers");
    assert_eq!(res.status(), 508);
    let body: Value = serde_json::from_slice(&res.body().await.expect("body")).expect("JSON");
    assert_eq!(body["error"], "loop_detected");
}

/// Sends `head` (and `body`) on a raw connection, then waits (up to 20 s) for the
/// gateway's answer without sending anything more: the status line and the whole reply.
async fn raw_request(port: u16, head: String, body: Vec<u8>) -> (String, String) {
    tokio::task::spawn_blocking(move || {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        sock.write_all(head.as_bytes()).expect("head");
        sock.write_all(&body).expect("body");
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        // Until the JSON body is complete or the connection closes.
        while let Ok(n) = std::io::Read::read(&mut sock, &mut buf) {
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            if reply.ends_with(b"}") {
                break;
            }
        }
        let text = String::from_utf8_lossy(&reply).to_string();
        (text.lines().next().unwrap_or_default().to_string(), text)
    })
    .await
    .expect("the client thread")
}

async fn breaker_state(gw: &GatewayProcess, instance: &str) -> String {
    let (_, _, list) = get(&gw.admin_url("/admin/circuits")).await;
    list.as_array()
        .and_then(|l| l.iter().find(|c| c["instance"] == instance))
        .and_then(|c| c["state"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn breaker_config(up: &MockUpstream, node: &str) -> String {
    format!(
        "[node]\nid = \"gw-hard\"\nworkers = 1\n{node}\n[[services]]\nname = \"svc\"\nretries = 0\ntimeout = \"1s\"\n\
         endpoints = [\"{}\"]\n[services.circuit_breaker]\nconsecutive_failures = 3\nmin_requests = 1000\n\
         open_for = \"1s\"\nhalf_open_probes = 1\n",
        up.url()
    )
}

#[actix_rt::test]
async fn slow_uploads_are_the_clients_408_and_never_open_the_breaker() {
    let up = MockUpstream::start("svc");
    // Service timeout 1 s, the client has 5 s for its request.
    let gw = GatewayProcess::start(&breaker_config(&up, "request_timeout = \"5s\""));
    let head = "POST /api/svc/upload HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 10\r\n\r\n";
    let uploads = (0..3).map(|_| raw_request(gw.port, head.to_string(), b"01234".to_vec()));
    for (status, reply) in futures_util::future::join_all(uploads).await {
        assert!(status.contains(" 408 "), "a stalled upload is the client's timeout: {reply}");
        assert!(reply.contains("\"request_timeout\""), "{reply}");
    }
    assert_eq!(breaker_state(&gw, "svc-0").await, "closed");
    let (status, _, body) = get(&gw.url("/api/svc/after")).await;
    assert_eq!(status, 200, "the breaker must still be closed: {body}");

    // An upload slower than the service timeout but within the request deadline is
    // proxied: the service timeout counts from the request fully sent.
    let (status, reply) = tokio::task::spawn_blocking({
        let port = gw.port;
        move || {
            let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            sock.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
            sock.write_all(head.as_bytes()).expect("head");
            sock.write_all(b"01234").expect("body");
            thread::sleep(Duration::from_millis(1500));
            sock.write_all(b"56789").expect("rest of the body");
            let mut buf = [0u8; 4096];
            let n = std::io::Read::read(&mut sock, &mut buf).unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            (text.lines().next().unwrap_or_default().to_string(), text)
        }
    })
    .await
    .expect("client thread");
    assert!(status.contains(" 200 "), "{reply}");
}

#[actix_rt::test]
async fn a_probe_the_client_failed_does_not_close_the_breaker() {
    client_failed_probe(None).await;
    // Shared breakers: the slot goes back through `circuit.lua` too.
    let redis = cluster_tests::TestRedis::start();
    client_failed_probe(Some(&redis)).await;
}

async fn client_failed_probe(redis: Option<&cluster_tests::TestRedis>) {
    let up = MockUpstream::start("svc");
    up.set_behavior(cluster_tests::upstream::Behavior { status: 500, ..Default::default() });
    let redis = redis.map(|r| format!("[redis]\nurl = \"{}\"\n", r.url())).unwrap_or_default();
    let gw = GatewayProcess::start(&format!("{redis}{}", breaker_config(&up, "max_body = \"1KiB\"")));
    for _ in 0..3 {
        get(&gw.url("/api/svc/fail")).await;
    }
    assert!(
        eventually(Duration::from_secs(10), async || (breaker_state(&gw, "svc-0").await == "open").then_some(()))
            .await
            .is_some(),
        "three failures open the breaker"
    );
    // Once `open_for` has passed, an upload above `max_body` becomes the half-open probe
    // and fails on the client's side (413).
    let head = "POST /api/svc/big HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n";
    let chunked = format!("1000\r\n{}\r\n0\r\n\r\n", "x".repeat(4096)).into_bytes();
    let probed = eventually(Duration::from_secs(10), async || {
        let (status, reply) = raw_request(gw.port, head.to_string(), chunked.clone()).await;
        (!status.contains(" 503 ")).then_some((status, reply))
    })
    .await
    .expect("a probe is granted after open_for");
    assert!(probed.0.contains(" 413 "), "{}", probed.1);
    // The probe slot went back unused: the next request is the probe, and the failing
    // upstream opens the breaker again. (Counted as a success, the 413 would have closed it.)
    // (With Redis, a request racing the slot's return may be refused a probe: 503.)
    let status = eventually(Duration::from_secs(10), async || {
        let (status, _, _) = get(&gw.url("/api/svc/next")).await;
        (status != 503).then_some(status)
    })
    .await;
    assert_eq!(status, Some(500));
    assert!(
        eventually(Duration::from_secs(10), async || (breaker_state(&gw, "svc-0").await == "open").then_some(()))
            .await
            .is_some(),
        "the breaker is {}, not open again",
        breaker_state(&gw, "svc-0").await
    );
}

/// `healthy` of each instance of `service`, as the admin API lists them.
async fn health_of(gw: &GatewayProcess, service: &str) -> Vec<bool> {
    let (_, _, list) = get(&gw.admin_url(&format!("/admin/services/{service}/instances"))).await;
    list.as_array().map(|l| l.iter().map(|i| i["healthy"] == true).collect()).unwrap_or_default()
}

#[actix_rt::test]
async fn https_endpoints_are_health_checked_over_tls_with_their_status_code() {
    let answer = |status: &str| format!("HTTP/1.0 {status}\r\ncontent-length: 2\r\n\r\nok");
    // Trusted (the node's CA), healthy path answers 500.
    let failing = TlsServer::start(&[("health", &answer("500 Internal Server Error"))]);
    // Trusted, answers 200: stays healthy.
    let fine = TlsServer::start(&[("health", &answer("200 OK"))]);
    // Answers 200, but with a certificate from a CA the node does not trust.
    let untrusted = TlsServer::start(&[("health", &answer("200 OK"))]);
    // One CA file with both trusted CAs.
    let ca = format!(
        "{}{}",
        std::fs::read_to_string(failing.dir.join("ca.pem")).expect("ca"),
        std::fs::read_to_string(fine.dir.join("ca.pem")).expect("ca")
    );
    let ca_file = failing.dir.join("both-ca.pem");
    std::fs::write(&ca_file, ca).expect("CA file");
    let check =
        "[services.health_check]\npath = \"/health\"\ninterval = \"200ms\"\nunhealthy_after = 2\nhealthy_after = 1\n";
    let service = |name: &str, port: u16| {
        format!("[[services]]\nname = \"{name}\"\nendpoints = [\"https://127.0.0.1:{port}\"]\n{check}")
    };
    // Plain HTTP through the h1 client: the status code decides too.
    let plain = MockUpstream::start("plain");
    plain.set_behavior(cluster_tests::upstream::Behavior { status: 500, ..Default::default() });
    let gw = GatewayProcess::start(&format!(
        "{NODE}upstream_ca_file = \"{}\"\n{}{}{}[[services]]\nname = \"plain\"\nendpoints = [\"{}\"]\n{check}",
        ca_file.display(),
        service("failing", failing.port),
        service("fine", fine.port),
        service("untrusted", untrusted.port),
        plain.url()
    ));
    for name in ["failing", "untrusted", "plain"] {
        let down =
            eventually(Duration::from_secs(15), async || (health_of(&gw, name).await == [false]).then_some(())).await;
        assert!(down.is_some(), "{name} must go unhealthy: {:?}\n{}", health_of(&gw, name).await, gw.log_text());
    }
    // The trusted 200 endpoint was checked (its first verdict is logged) and is healthy.
    assert!(
        wait_until(Duration::from_secs(15), || gw
            .log_text()
            .lines()
            .any(|l| l.contains("endpoint health changed") && l.contains("fine-0") && l.contains("true"))),
        "{}",
        gw.log_text()
    );
    assert_eq!(health_of(&gw, "fine").await, [true]);
    let (status, _, body) = get(&gw.url("/api/failing/x")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "no_healthy_upstream");
}

/// Sends a head with `Expect: 100-continue` and returns the first status line the
/// gateway answers, without sending any body.
async fn first_line_after_expect(port: u16, path: &str, extra: &str) -> (String, TcpStream) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 10\r\nexpect: 100-continue\r\n{extra}\r\n"
    );
    tokio::task::spawn_blocking(move || {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        sock.write_all(head.as_bytes()).expect("head");
        let mut line = String::new();
        BufReader::new(sock.try_clone().expect("clone")).read_line(&mut line).expect("a status line");
        (line.trim_end().to_string(), sock)
    })
    .await
    .expect("client thread")
}

#[actix_rt::test]
async fn continue_is_only_sent_once_auth_and_limits_passed() {
    let up = MockUpstream::start("up");
    let gw = GatewayProcess::start(&format!(
        "[node]\nid = \"gw-hard\"\nworkers = 1\nmax_body = \"100B\"\n\
         [[services]]\nname = \"secure\"\nauth = \"api_key\"\nendpoints = [\"{0}\"]\n\
         [[services]]\nname = \"open\"\nendpoints = [\"{0}\"]\n",
        up.url()
    ));
    let (line, _) = first_line_after_expect(gw.port, "/api/secure/upload", "").await;
    assert!(line.starts_with("HTTP/1.1 401"), "no credentials: a 401 before any 100, got {line:?}");
    let (line, _) = first_line_after_expect(gw.port, "/api/secure/upload", "x-api-key: not-a-key\r\n").await;
    assert!(line.starts_with("HTTP/1.1 401"), "a bad key: {line:?}");
    let (line, _) = first_line_after_expect(gw.port, "/nowhere", "").await;
    assert!(line.starts_with("HTTP/1.1 404"), "no route: {line:?}");
    let head = "POST /api/open/upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\nexpect: 100-continue\r\n\r\n";
    let (status, reply) = raw_request(gw.port, head.to_string(), Vec::new()).await;
    assert!(status.starts_with("HTTP/1.1 413"), "declared body above max_body: {reply}");

    // A request that passes gets its 100, then the upstream's answer.
    let (line, mut sock) = first_line_after_expect(gw.port, "/api/open/upload", "").await;
    assert_eq!(line, "HTTP/1.1 100 Continue");
    let reply = tokio::task::spawn_blocking(move || {
        sock.write_all(b"0123456789").expect("body");
        let mut buf = vec![0u8; 8192];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("HTTP/1.1 200") {
            match std::io::Read::read(&mut sock, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).to_string()
    })
    .await
    .expect("client thread");
    assert!(reply.contains("HTTP/1.1 200"), "{reply}");
    assert_eq!(up.count(), 1, "only the accepted upload reached the upstream");
}

#[actix_rt::test]
async fn a_malformed_first_chunk_size_over_tls_is_a_502_too() {
    let tls =
        TlsServer::start(&[("chunks", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")]);
    let gw = GatewayProcess::start(&format!(
        "{NODE}upstream_ca_file = \"{}\"\n[[services]]\nname = \"tls\"\nretries = 0\nendpoints = [\"https://127.0.0.1:{}\"]\n",
        tls.dir.join("ca.pem").display(),
        tls.port
    ));
    let (status, id, body) = get(&gw.url("/api/tls/chunks")).await;
    assert_eq!(status, 502, "{body}");
    assert_generic(&body, "upstream_unavailable", &id, &["tls-0", "chunk"]);
}
