use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use cluster_tests::{GatewayProcess, MockUpstream, client, free_port, gateway_bin, wait_until};

use crate::{gateway, header, json, service};

fn check_config(text: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("gw-check-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(gateway_bin()).arg("check-config").arg(&file).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn check_config_accepts_a_valid_file() {
    let (code, out) = check_config(
        "[node]\nlisten = \"0.0.0.0:8080\"\n[[services]]\nname = \"users\"\nendpoints = [\"http://10.0.0.5:3000\"]\n",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn check_config_exits_2_naming_the_field_and_line_of_each_mistake() {
    let cases: [(&str, &str, &str); 10] = [
        ("unknown key", "[node]\nlisten_addr = \"0.0.0.0:1\"\n", "node.listen_addr (line 2)"),
        ("bad duration", "[node]\nrequest_timeout = \"forever\"\n", "node.request_timeout"),
        ("bad size", "[node]\n\nmax_body = \"lots\"\n", "node.max_body"),
        ("bad upstream URL", "[[services]]\nname = \"a\"\nendpoints = [\"ftp://x\"]\n", "services[0].endpoints[0]"),
        ("duplicate service", "[[services]]\nname = \"a\"\n[[services]]\nname = \"a\"\n", "services[1].name (line 4)"),
        ("unknown policy", "[[services]]\nname = \"a\"\nrate_limit = \"gold\"\n", "services[0].rate_limit (line 3)"),
        ("public admin without token", "[node]\nadmin_listen = \"0.0.0.0:9901\"\n", "admin.token"),
        ("syntax error", "[node\nlisten = 1\n", "line 1"),
        (
            "bad public key",
            "[auth.jwt]\nalgorithms = [\"RS256\"]\n[[auth.jwt.keys]]\npublic_key_pem = \"not a key\"\n",
            "auth.jwt.keys[0].public_key_pem",
        ),
        (
            "alg none",
            "[auth.jwt]\nalgorithms = [\"none\"]\n[[auth.jwt.keys]]\nsecret = \"s\"\n",
            "auth.jwt.algorithms[0]",
        ),
    ];
    for (what, text, expected) in cases {
        let (code, out) = check_config(text);
        assert_eq!(code, 2, "{what}: {out}");
        assert!(out.contains(expected), "{what}: expected {expected:?} in {out:?}");
    }
    let out = Command::new(gateway_bin()).args(["check-config", "/nonexistent/gateway.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_bad_config_never_starts_a_node() {
    let mut gw = GatewayProcess::builder("[node]\nworkers = \"two\"\n").no_wait().spawn();
    let status = gw.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(2));
    assert!(gw.log_text().contains("node.workers"), "{}", gw.log_text());
}

#[actix_rt::test]
async fn memory_mode_needs_no_redis_and_says_so_in_health() {
    let up = MockUpstream::start("up");
    let gw = gateway(&service("s", &[&up], ""));
    let c = client();
    for listener in [gw.url("/health"), gw.admin_url("/health")] {
        let mut res = c.get(listener).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body = json(&mut res).await;
        assert_eq!(body["status"], "ok");
        assert_eq!(body["redis"], "memory");
        assert_eq!(body["node"], "gw-test");
        assert_eq!(body["degraded"], serde_json::json!([]));
    }
    assert_eq!(c.get(gw.url("/ready")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(gw.url("/api/s/x")).send().await.unwrap().status(), 200);
    let mut metrics = c.get(gw.admin_url("/metrics")).send().await.unwrap();
    let text = String::from_utf8(metrics.body().await.unwrap().to_vec()).unwrap();
    assert!(text.contains("gateway_requests_total{service=\"s\",method=\"GET\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("gateway_request_duration_seconds_bucket"), "{text}");
}

#[actix_rt::test]
async fn admin_routes_need_the_token() {
    let gw = GatewayProcess::builder(format!("{}\n[admin]\ntoken = {{ env = \"GW_TEST_ADMIN\" }}\n", crate::BASE))
        .env("GW_TEST_ADMIN", "t0ken")
        .spawn();
    let c = client();
    let mut res = c.get(gw.admin_url("/admin/anything")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(json(&mut res).await["error"], "unauthorized");
    let res = c.get(gw.admin_url("/admin/anything")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = c.get(gw.admin_url("/admin/anything")).bearer_auth("t0ken").send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(c.get(gw.admin_url("/metrics")).send().await.unwrap().status(), 200);
}

#[actix_rt::test]
async fn sigterm_finishes_the_in_flight_request_then_exits_0() {
    let up = MockUpstream::start("slow");
    let mut gw = gateway(&service("slow", &[&up], ""));
    let url = gw.url("/api/slow/x");
    let in_flight = actix_rt::spawn(async move {
        let mut res = client().get(url).insert_header(("x-mock-delay-ms", "1500")).send().await.unwrap();
        (res.status().as_u16(), res.body().await.map(|b| b.len()).unwrap_or(0))
    });
    assert!(
        cluster_tests::eventually(Duration::from_secs(5), async || (up.count() == 1).then_some(())).await.is_some()
    );
    gw.terminate();
    let port = gw.port;
    assert!(
        wait_until(Duration::from_secs(2), || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()),
        "the listener still accepts after SIGTERM"
    );
    let (status, len) = in_flight.await.unwrap();
    assert_eq!(status, 200);
    assert!(len > 0);
    let exit = actix_rt::task::spawn_blocking(move || gw.wait_exit(Duration::from_secs(10))).await.unwrap();
    assert_eq!(exit.and_then(|s| s.code()), Some(0));
}

#[actix_rt::test]
async fn demo_answers_its_own_printed_curl_line() {
    let (port, admin) = (free_port(), free_port());
    let mut child = Command::new(gateway_bin())
        .args(["demo", "--listen", &format!("127.0.0.1:{port}"), "--admin-listen", &format!("127.0.0.1:{admin}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Keep draining stdout for the node's whole life, as a terminal would.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut curls = Vec::new();
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("curl ") {
                curls.push(line);
            } else if line.starts_with("Stop with") && !sent {
                let _ = tx.send(std::mem::take(&mut curls));
                sent = true;
            }
        }
    });
    let lines = actix_rt::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default())
        .await
        .unwrap();
    assert!(lines.len() >= 3, "{lines:?}");
    let first = &lines[0];
    let has_curl = Command::new("curl").arg("--version").output().is_ok();
    if has_curl {
        let out = Command::new("sh").arg("-c").arg(format!("{first} -sS")).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 200"), "{first}: {text} {}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("x-gateway-node: demo"), "{text}");
    } else {
        let url = first.split_whitespace().find(|w| w.starts_with("http://")).unwrap();
        let res = client().get(url).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "x-gateway-node"), "demo");
    }
    // The printed demo token opens the JWT service; without it the answer is 401.
    if has_curl {
        let bearer = lines.iter().find(|l| l.contains("Authorization: Bearer")).expect("a curl line with the token");
        let out = Command::new("sh").arg("-c").arg(format!("{bearer} -sS")).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 200"), "{bearer}: {text}");
        assert!(text.contains("\"x-consumer-id\":\"demo-user\""), "{text}");
        let without = bearer.replace(" -H 'Authorization: Bearer ", " -H 'X-Ignored: ");
        let out = Command::new("sh").arg("-c").arg(format!("{without} -sS")).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("HTTP/1.1 401"));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn every_shipped_config_passes_check_config() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<_> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.push(root.join("deploy/gateway.toml"));
    assert!(files.len() >= 3);
    for f in files {
        let out = Command::new(gateway_bin())
            .arg("check-config")
            .arg(&f)
            .env("GATEWAY_ADMIN_TOKEN", "t")
            .env("JWT_SECRET", "0123456789abcdef0123456789abcdef")
            .env("GATEWAY_REDIS_URL", "redis://127.0.0.1:1/0")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}: {}", f.display(), String::from_utf8_lossy(&out.stderr));
    }
}
