use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{AccessLog, Line, Settings, writer::Sink};
use crate::config::{AccessLogFormat, LogConfig};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gw-access-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn file_log(path: &Path) -> AccessLog {
    let cfg = LogConfig { access_log_file: path.display().to_string(), ..LogConfig::default() };
    AccessLog::start(&cfg, "gw-test").expect("open").expect("on")
}

fn line(id: &str) -> Line<'_> {
    Line {
        request_id: id.as_bytes(),
        method: "GET",
        path: "/x",
        version: "HTTP/1.1",
        status: 200,
        service: "svc",
        limiter: "none",
        ..Line::default()
    }
}

fn ids(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: torn line {l:?}"));
            v["request_id"].as_str().expect("id").to_string()
        })
        .collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn off_means_no_log() {
    let cfg = LogConfig { access_log: false, ..LogConfig::default() };
    assert!(AccessLog::start(&cfg, "n").expect("no file to open").is_none());
}

#[test]
fn a_missing_directory_is_an_open_error_naming_the_path() {
    let cfg = LogConfig { access_log_file: "/nonexistent-dir/a.log".into(), ..LogConfig::default() };
    let e = AccessLog::start(&cfg, "n").expect_err("cannot open");
    assert!(e.to_string().contains("/nonexistent-dir/a.log"), "{e}");
}

#[actix_rt::test]
async fn every_line_of_every_thread_is_written_whole_and_in_order_by_close() {
    let dir = temp_dir("threads");
    let path = dir.join("access.log");
    let log = file_log(&path);
    const THREADS: usize = 4;
    const PER_THREAD: usize = 1500; // ~30 batches in all: fewer than the queue holds
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let log = log.clone();
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    log.log(&line(&format!("t{t}-{i}")));
                }
            });
        }
    });
    assert!(log.close(Duration::from_secs(5)).await, "drained in time");
    let ids = ids(&path);
    assert_eq!(ids.len(), THREADS * PER_THREAD);
    for t in 0..THREADS {
        let mine: Vec<&String> = ids.iter().filter(|id| id.starts_with(&format!("t{t}-"))).collect();
        let want: Vec<String> = (0..PER_THREAD).map(|i| format!("t{t}-{i}")).collect();
        assert!(mine.iter().zip(&want).all(|(a, b)| *a == b), "thread {t}'s lines out of order");
    }
    assert_eq!(log.dropped(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn lines_reach_the_file_within_a_second_without_a_full_batch() {
    let dir = temp_dir("tick");
    let path = dir.join("access.log");
    let log = file_log(&path);
    log.log(&line("lonely"));
    let started = Instant::now();
    wait_for("the line", || ids(&path) == ["lonely"]);
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    assert!(log.close(Duration::from_secs(5)).await);
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn reopen_moves_new_lines_to_a_new_file_after_logrotate_renamed_the_old_one() {
    let dir = temp_dir("reopen");
    let (path, rotated) = (dir.join("access.log"), dir.join("access.log.1"));
    let log = file_log(&path);
    log.log(&line("before"));
    wait_for("the first line", || ids(&path) == ["before"]);
    std::fs::rename(&path, &rotated).expect("rename");
    log.reopen();
    wait_for("the new file", || path.exists());
    log.log(&line("after"));
    assert!(log.close(Duration::from_secs(5)).await);
    assert_eq!(ids(&rotated), ["before"]);
    assert_eq!(ids(&path), ["after"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn lines_that_cannot_be_written_are_counted_as_dropped() {
    let log = file_log(Path::new("/dev/full"));
    for i in 0..10 {
        log.log(&line(&format!("lost-{i}")));
    }
    assert!(log.close(Duration::from_secs(5)).await);
    assert_eq!(log.dropped(), 10);
}

/// A writer stuck on its output (a pipe nobody reads) never slows the workers: once the
/// queue is full, batches are dropped and counted, and every line is either written or
/// counted.
#[cfg(unix)]
#[actix_rt::test]
async fn a_stuck_output_drops_and_counts_whole_batches_instead_of_blocking() {
    let dir = temp_dir("fifo");
    let fifo = dir.join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut f = std::fs::File::open(&fifo).expect("open for reading");
            let _ = wait.recv();
            let mut all = Vec::new();
            f.read_to_end(&mut all).expect("read");
            all
        })
    };
    let sink = Sink::open(&fifo.display().to_string()).expect("open for writing");
    let log = AccessLog::with_sink(Settings::new(AccessLogFormat::Json, false, "gw"), sink).expect("start");
    const LINES: usize = 40_000;
    let started = Instant::now();
    for i in 0..LINES {
        log.log(&line(&format!("id-{i}")));
    }
    assert!(started.elapsed() < Duration::from_secs(5), "logging blocked: {:?}", started.elapsed());
    let dropped = log.dropped();
    assert!(dropped > 0, "the queue should have overflowed");
    go.send(()).expect("reader waits");
    assert!(log.close(Duration::from_secs(10)).await);
    let text = String::from_utf8(reader.join().expect("reader")).expect("UTF-8");
    let written =
        text.lines().inspect(|l| assert!(serde_json::from_str::<serde_json::Value>(l).is_ok(), "{l}")).count();
    assert_eq!(written as u64 + log.dropped(), LINES as u64);
    let _ = std::fs::remove_dir_all(&dir);
}
