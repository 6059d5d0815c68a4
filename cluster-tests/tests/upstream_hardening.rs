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
