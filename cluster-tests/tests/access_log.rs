//! The access log (issue 26) seen from outside: a real node and a real mock upstream, the
//! log read back from the process's stdout or from its file.
//!
//! - Under concurrent load, exactly one whole JSON line per request, with its request id,
//!   and `gateway_access_log_dropped_total` at 0.
//! - File output reopened on SIGUSR1 after a logrotate-style rename.
//! - The last lines written out on SIGTERM; the combined format.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster_tests::{GatewayProcess, MockUpstream, client, eventually, wait_until};
use futures_util::StreamExt;
use serde_json::Value;

fn config(up: &MockUpstream, log: &str) -> String {
    format!(
        "[node]\nworkers = 2\n[log]\naccess_log = true\n{log}\n[[services]]\nname = \"api\"\nendpoints = [\"{}\"]\n",
        up.url()
    )
}

/// Sends `n` GETs, `concurrency` at a time, with ids `{prefix}-{i}`; all must answer 200.
async fn load(gw: &GatewayProcess, prefix: &str, n: usize, concurrency: usize) -> HashSet<String> {
    let c = client();
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let statuses: Vec<u16> = futures_util::stream::iter(ids.iter())
        .map(|id| {
            let req = c.get(gw.url(&format!("/api/api/items/{id}"))).insert_header(("x-request-id", id.as_str()));
            async move { req.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "not all answered 200: {:?}", &statuses[..10.min(statuses.len())]);
    ids.into_iter().collect()
}

/// The access lines of `text`: every line must be a whole JSON object (the diagnostic
/// log is JSON too), none torn. A last line without its newline is being written while
/// we read, and left for the next look.
fn access_lines(text: &str) -> Vec<Value> {
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("torn or invalid line ({e}): {l:?}")))
        .filter(|v| v["target"] == "access")
        .collect()
}

fn ids_of(lines: &[Value]) -> Vec<String> {
    lines.iter().map(|v| v["request_id"].as_str().expect("request_id").to_string()).collect()
}

async fn dropped_total(gw: &GatewayProcess) -> Option<f64> {
    let mut res = client().get(gw.admin_url("/metrics")).send().await.ok()?;
    let body = res.body().limit(8 << 20).await.ok()?;
    let text = String::from_utf8_lossy(&body).to_string();
    text.lines()
        .find(|l| l.starts_with("gateway_access_log_dropped_total"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
}

#[actix_rt::test]
async fn one_whole_line_per_request_under_concurrency_and_nothing_dropped() {
    let up = MockUpstream::start_with("up", false, 2, std::net::TcpListener::bind("127.0.0.1:0").expect("bind"));
    let gw = GatewayProcess::start(&config(&up, ""));
    const N: usize = 3000;
    let sent = load(&gw, "conc", N, 32).await;

    // Lines reach stdout within about a second (the writer's flush).
    let all =
        eventually(Duration::from_secs(10), async || (access_lines(&gw.log_text()).len() >= N).then_some(())).await;
    assert!(all.is_some(), "fewer than {N} access lines: {}", access_lines(&gw.log_text()).len());
    // A second more, to catch any extra line.
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    let lines = access_lines(&gw.log_text());
    let ids = ids_of(&lines);
    assert_eq!(ids.len(), N, "exactly one line per request");
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), sent, "the lines carry the requests' ids");

    let v = &lines[0];
    assert_eq!(v["message"], "request");
    assert_eq!(v["service"], "api");
    assert_eq!(v["status"], 200);
    assert_eq!(v["upstream_status"], 200);
    assert_eq!(v["method"], "GET");
    assert!(v["path"].as_str().is_some_and(|p| p.starts_with("/api/api/items/conc-")), "{v}");
    assert_eq!(v["upstream"], "api-0");
    assert_eq!(v["upstream_addr"], format!("127.0.0.1:{}", up.port));
    assert_eq!(v["client"], "127.0.0.1");
    assert!(v["bytes_out"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert!(v["bytes_in"].is_null() || v["bytes_in"] == 0, "a GET declares no body: {v}");
    assert!(v["duration_ms"].as_f64().is_some() && v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(v.get("query").is_none());
    drop(lines);

    assert_eq!(dropped_total(&gw).await, Some(0.0), "gateway_access_log_dropped_total at 0 at this load");
}

fn file_ids(path: &Path) -> Vec<String> {
    ids_of(&access_lines(&std::fs::read_to_string(path).unwrap_or_default()))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gw-access-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[actix_rt::test]
async fn a_file_log_is_reopened_on_sigusr1_after_logrotate_moved_it() {
    let up = MockUpstream::start("up");
    let dir = temp_dir("rotate");
    let (file, rotated) = (dir.join("access.log"), dir.join("access.log.1"));
    let mut gw = GatewayProcess::start(&config(&up, &format!("access_log_file = \"{}\"", file.display())));

    let first = load(&gw, "old", 20, 4).await;
    assert!(wait_until(Duration::from_secs(5), || file_ids(&file).len() == 20), "{:?}", file_ids(&file));
    assert!(access_lines(&gw.log_text()).is_empty(), "access lines go to the file, not stdout");

    std::fs::rename(&file, &rotated).expect("rotate");
    gw.signal("USR1");
    assert!(wait_until(Duration::from_secs(5), || file.exists()), "a new file after SIGUSR1");
    let second = load(&gw, "new", 30, 4).await;
    assert!(wait_until(Duration::from_secs(5), || file_ids(&file).len() == 30), "{:?}", file_ids(&file));

    assert_eq!(file_ids(&rotated).into_iter().collect::<HashSet<_>>(), first);
    assert_eq!(file_ids(&file).into_iter().collect::<HashSet<_>>(), second);
    assert!(!gw.exited(), "SIGUSR1 does not stop the node");
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn sigterm_writes_out_the_last_lines_before_exit_in_combined_format() {
    let up = MockUpstream::start("up");
    let dir = temp_dir("term");
    let file = dir.join("access.log");
    let log = format!("access_log_format = \"combined\"\naccess_log_file = \"{}\"", file.display());
    let mut gw = GatewayProcess::start(&config(&up, &log));
    let res = client()
        .get(gw.url("/api/api/x?secret=1"))
        .insert_header(("x-request-id", "last-one"))
        .insert_header(("user-agent", "tester \"q\""))
        .send()
        .await
        .expect("answer");
    assert_eq!(res.status(), 200);
    // At once: the line is still in the worker's batch, and only the shutdown writes it.
    gw.terminate();
    assert!(gw.wait_exit(Duration::from_secs(15)).is_some_and(|s| s.success()), "clean exit");
    let text = std::fs::read_to_string(&file).expect("the log file");
    let line = text.lines().find(|l| l.contains("last-one")).unwrap_or_else(|| panic!("no line in {text:?}"));
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.contains(" +0000] \"GET /api/api/x HTTP/1.1\" 200 "), "no query by default: {line}");
    assert!(line.contains("\"tester \\x22q\\x22\" last-one "), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}
