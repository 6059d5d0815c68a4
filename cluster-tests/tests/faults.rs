//! Fault injection (SPEC §8 last bullet, §13, §15):
//! - Redis frozen with SIGSTOP — slow, not dead. Requests keep being answered by each
//!   actor's fallback instead of hanging on Redis, the Redis guard opens and `/health`
//!   says degraded; after SIGCONT everything recovers without a restart.
//! - A gateway node killed with SIGKILL under load behind HAProxy (health checks on
//!   `/ready`): the load balancer's clients see at most the requests that were in flight
//!   on that node fail, and every request sent after the kill succeeds.

use std::cell::{Cell, RefCell};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use cluster_tests::upstream::Behavior;
use cluster_tests::{GatewayProcess, MockUpstream, TestRedis, client, eventually, free_port, wait_until};
use serde_json::Value;

fn config(up: &MockUpstream, redis: &TestRedis) -> String {
    format!(
        r#"
[node]
workers = 2
[log]
access_log = false
[redis]
url = "{redis}"
command_timeout = "150ms"
[rate_limit.policies.open]
algorithm = "sliding_window"
limit = 1000
window = "1m"
key = "ip"
failure_mode = "open"
[[services]]
name = "limited"
rate_limit = "open"
endpoints = ["{url}"]
[[services]]
name = "cached"
endpoints = ["{url}"]
[services.cache]
[[services]]
name = "broken"
endpoints = ["{url}"]
[services.circuit_breaker]
consecutive_failures = 100
"#,
        redis = redis.url(),
        url = up.url()
    )
}

async fn health(gw: &GatewayProcess) -> Value {
    let mut res = client().get(gw.admin_url("/health")).send().await.expect("health answers");
    serde_json::from_slice(&res.body().await.expect("body")).expect("json")
}

#[actix_rt::test]
async fn a_frozen_redis_costs_requests_nothing_and_the_node_recovers_after_it_thaws() {
    let redis = TestRedis::start();
    let up = MockUpstream::start("up");
    up.set_behavior(Behavior { headers: vec![("cache-control".into(), "max-age=60".into())], ..Behavior::default() });
    let gw = GatewayProcess::start(&config(&up, &redis));
    for path in ["/api/limited/x", "/api/cached/x", "/api/broken/x"] {
        let res = client().get(gw.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path} before the fault");
    }

    redis.pause();
    // Every request is answered through the fallbacks; none hangs on the frozen Redis.
    for i in 0..30 {
        let path = ["/api/limited/x", "/api/cached/y", "/api/broken/x"][i % 3];
        let started = Instant::now();
        let res = client().get(gw.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path} while Redis is frozen");
        assert!(started.elapsed() < Duration::from_secs(3), "{path} hung on the frozen Redis");
    }
    let degraded = eventually(Duration::from_secs(10), async || {
        let h = health(&gw).await;
        (h["status"] == "degraded" && h["redis"] == "down").then_some(h)
    })
    .await;
    let h = degraded.expect("/health reports the frozen Redis");
    assert!(h["degraded"].as_array().unwrap().iter().any(|a| a == "ratelimit"), "{h}");
    let log = gw.log_text();
    assert!(log.contains("redis guard open"), "the guard opened");

    redis.resume();
    let recovered = eventually(Duration::from_secs(15), async || {
        // Traffic lets the guard probe Redis again.
        let _ = client().get(gw.url("/api/limited/x")).send().await;
        let h = health(&gw).await;
        (h["redis"] == "up" && !h["degraded"].as_array().unwrap().iter().any(|a| a == "ratelimit")).then_some(())
    })
    .await;
    assert!(recovered.is_some(), "the node did not recover after SIGCONT: {}", health(&gw).await);
    assert!(gw.log_text().contains("redis guard closed"));
}

// ---- a node killed -9 behind HAProxy ------------------------------------------------------

/// The haproxy binary: on PATH or in the sbin directories Debian installs it to
/// (`scripts/test.sh` installs it when missing).
fn haproxy_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("haproxy")).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path.into_iter().chain(["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"].map(PathBuf::from)).find(|p| p.is_file())
}

/// HAProxy in front of `nodes`, killed on drop.
struct Haproxy {
    child: Child,
    port: u16,
    stats_port: u16,
    dir: PathBuf,
}

impl Haproxy {
    /// Round robin over `nodes`, each health-checked on `/ready` every 200 ms (one failure
    /// takes it out, one success brings it back); a refused connection is retried on
    /// another node (`option redispatch`, `retries`).
    fn start(bin: &PathBuf, nodes: &[&GatewayProcess]) -> Self {
        let (port, stats_port) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("gw-haproxy-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let servers: String =
            nodes.iter().enumerate().map(|(i, n)| format!("    server gw-{i} 127.0.0.1:{} check\n", n.port)).collect();
        let cfg = format!(
            "global\n    maxconn 1024\n\
             defaults\n    mode http\n    option redispatch\n    retries 3\n    timeout connect 1s\n\
             \x20   timeout client 30s\n    timeout server 30s\n    timeout check 2s\n\
             frontend lb\n    bind 127.0.0.1:{port}\n    default_backend nodes\n\
             backend nodes\n    balance roundrobin\n    option httpchk\n\
             \x20   http-check send meth GET uri /ready ver HTTP/1.1 hdr Host lb\n    http-check expect status 200\n\
             \x20   default-server inter 200ms fall 1 rise 1\n{servers}\
             listen stats\n    bind 127.0.0.1:{stats_port}\n    stats enable\n    stats uri /\n"
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("write haproxy.cfg");
        let log = std::fs::File::create(dir.join("haproxy.log")).expect("log file");
        let child = Command::new(bin)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn haproxy");
        Self { child, port, stats_port, dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `(total sessions, status)` of every server of the backend, from the stats CSV.
    async fn servers(&self) -> Vec<(String, u64, String)> {
        let url = format!("http://127.0.0.1:{}/;csv", self.stats_port);
        let Ok(mut res) = client().get(url).send().await else { return Vec::new() };
        let text = res.body().await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").trim_start_matches("# ").split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (Some(px), Some(sv), Some(stot), Some(status)) = (col("pxname"), col("svname"), col("stot"), col("status"))
        else {
            return Vec::new();
        };
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.get(px) == Some(&"nodes") && f.get(sv).is_some_and(|s| s.starts_with("gw-")))
            .map(|f| (f[sv].to_string(), f[stot].parse().unwrap_or(0), f[status].to_string()))
            .collect()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One request of the load: when it was sent, and its status (0: connection error).
struct Sent {
    at: Instant,
    status: u16,
}

#[actix_rt::test]
async fn a_node_killed_9_under_load_costs_the_load_balancers_clients_only_its_in_flight_requests() {
    let Some(bin) = haproxy_bin() else {
        eprintln!("SKIPPED: haproxy not found on PATH or in /usr/sbin (scripts/test.sh installs it with apt-get)");
        return;
    };
    const CONCURRENCY: usize = 16;
    let redis = TestRedis::start();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let up = MockUpstream::start_with("up", false, 2, listener);
    up.set_behavior(Behavior { delay: Duration::from_millis(50), ..Behavior::default() });
    let cfg = format!(
        "[node]\nworkers = 1\n[log]\naccess_log = false\n[redis]\nurl = \"{}\"\n\
         [[services]]\nname = \"svc\"\nendpoints = [\"{}\"]\n",
        redis.url(),
        up.url()
    );
    let mut nodes: Vec<GatewayProcess> = (0..3).map(|_| GatewayProcess::start(&cfg)).collect();
    let lb = Haproxy::start(&bin, &nodes.iter().collect::<Vec<_>>());
    let all_up = eventually(Duration::from_secs(15), async || {
        let s = lb.servers().await;
        (s.len() == 3 && s.iter().all(|(_, _, st)| st == "UP")).then_some(())
    });
    assert!(all_up.await.is_some(), "haproxy never saw the three nodes UP: {:?}", lb.servers().await);

    // CONCURRENCY client loops, each with one request in flight at a time.
    let sent: Rc<RefCell<Vec<Sent>>> = Rc::default();
    let stop = Rc::new(Cell::new(false));
    let loops: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (sent, stop, url) = (Rc::clone(&sent), Rc::clone(&stop), lb.url("/api/svc/x"));
            actix_rt::spawn(async move {
                let http = client();
                while !stop.get() {
                    let at = Instant::now();
                    let status = match http.get(&url).send().await {
                        Ok(mut res) => match res.body().await {
                            Ok(_) => res.status().as_u16(),
                            Err(_) => 0,
                        },
                        Err(_) => 0,
                    };
                    sent.borrow_mut().push(Sent { at, status });
                }
            })
        })
        .collect();

    // Load reaches every node, then node 1 dies mid-load.
    let spread = eventually(Duration::from_secs(20), async || {
        let s = lb.servers().await;
        (s.len() == 3 && s.iter().all(|(_, stot, _)| *stot >= 100)).then_some(())
    });
    assert!(spread.await.is_some(), "the load did not reach every node: {:?}", lb.servers().await);
    let before = sent.borrow().len();
    nodes[1].kill();
    let killed_at = Instant::now();
    let marked_down = eventually(Duration::from_secs(10), async || {
        lb.servers().await.iter().any(|(name, _, st)| name == "gw-1" && st.starts_with("DOWN")).then_some(())
    });
    assert!(marked_down.await.is_some(), "haproxy did not mark the killed node DOWN: {:?}", lb.servers().await);
    // Keep the load on until plenty of requests were sent after the kill.
    let after_enough = eventually(Duration::from_secs(30), async || {
        (sent.borrow().iter().filter(|s| s.at > killed_at).count() >= 30 * CONCURRENCY).then_some(())
    });
    assert!(after_enough.await.is_some(), "the load stalled after the kill");
    stop.set(true);
    for l in loops {
        let _ = l.await;
    }

    let sent = sent.borrow();
    let failed: Vec<&Sent> = sent.iter().filter(|s| s.status != 200).collect();
    let after: Vec<&Sent> = sent.iter().filter(|s| s.at > killed_at).collect();
    let statuses: Vec<u16> = failed.iter().map(|s| s.status).collect();
    eprintln!(
        "load: {} requests ({before} before the kill, {} sent after it), {} failed: {statuses:?}",
        sent.len(),
        after.len(),
        failed.len()
    );
    assert!(before >= CONCURRENCY, "too little load before the kill ({before} requests)");
    assert!(
        failed.len() <= CONCURRENCY,
        "{} of {} requests failed ({statuses:?}); at most the {CONCURRENCY} in flight may",
        failed.len(),
        sent.len()
    );
    assert!(failed.iter().all(|s| s.at < killed_at), "a request sent after the kill failed ({statuses:?})");
    assert!(after.iter().all(|s| s.status == 200), "requests after the kill must all succeed");
    for (i, gw) in nodes.iter().enumerate().filter(|(i, _)| *i != 1) {
        assert!(!gw.log_text().contains("panicked"), "node {i} panicked");
    }
    // The survivors keep serving directly too.
    assert!(wait_until(Duration::from_secs(5), || nodes[0].is_ready() && nodes[2].is_ready()));
}
