use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde_json::Value;

use super::{Line, Settings, clock, needs_escape};
use crate::config::AccessLogFormat;

/// 2026-11-26T02:38:48.123Z
const NOW: Duration = Duration::from_millis(1_795_660_728_123);

fn full() -> Line<'static> {
    Line {
        request_id: b"req-42",
        client: Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))),
        method: "GET",
        path: "/api/users/7",
        query: "token=secret&x=1",
        version: "HTTP/1.1",
        status: 200,
        bytes_in: Some(12),
        bytes_out: Some(345),
        duration: Duration::from_micros(1_234_567),
        upstream: Some(("users-0", "127.0.0.1:3000")),
        upstream_status: Some(200),
        upstream_time: Some(Duration::from_micros(900)),
        attempts: 1,
        service: "users",
        consumer: Some("alice"),
        cache: Some("MISS"),
        limiter: "allowed",
        user_agent: Some(b"curl/8.5.0"),
        referer: Some(b"https://example.com/"),
        trace_id: Some([0x4b; 16]),
    }
}

fn json(settings: &Settings, line: &Line<'_>) -> (String, Value) {
    let mut out = Vec::new();
    settings.write(&mut out, line, NOW);
    let text = String::from_utf8(out).expect("UTF-8");
    assert!(text.ends_with('\n'), "{text}");
    assert_eq!(text.matches('\n').count(), 1, "one line: {text}");
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (text, value)
}

#[test]
fn json_lines_carry_every_field_with_the_tracing_names_kept() {
    let s = Settings::new(AccessLogFormat::Json, false, "gw-1");
    let (_, v) = json(&s, &full());
    assert_eq!(v["timestamp"], "2026-11-26T02:38:48.123Z");
    assert_eq!(v["target"], "access");
    assert_eq!(v["message"], "request");
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["request_id"], "req-42");
    assert_eq!(v["node"], "gw-1");
    assert_eq!(v["client"], "10.1.2.3");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/api/users/7");
    assert!(v.get("query").is_none(), "queries are opt-in: {v}");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes_in"], 12);
    assert_eq!(v["bytes_out"], 345);
    assert_eq!(v["duration_ms"].as_f64(), Some(1234.567));
    assert_eq!(v["upstream"], "users-0");
    assert_eq!(v["upstream_addr"], "127.0.0.1:3000");
    assert_eq!(v["upstream_status"], 200);
    assert_eq!(v["upstream_ms"].as_f64(), Some(0.9));
    assert_eq!(v["attempts"], 1);
    assert_eq!(v["service"], "users");
    assert_eq!(v["consumer"], "alice");
    assert_eq!(v["cache"], "MISS");
    assert_eq!(v["limiter"], "allowed");
    assert_eq!(v["user_agent"], "curl/8.5.0");
    assert_eq!(v["trace_id"], "4b".repeat(16));
}

#[test]
fn json_lines_say_null_for_what_is_unknown_and_log_queries_only_when_asked() {
    let s = Settings::new(AccessLogFormat::Json, true, "gw-1");
    let line = Line {
        request_id: b"r",
        method: "GET",
        path: "/",
        version: "HTTP/1.1",
        status: 404,
        service: "none",
        limiter: "none",
        ..Line::default()
    };
    let (_, v) = json(&s, &line);
    for field in [
        "client",
        "bytes_in",
        "bytes_out",
        "upstream",
        "upstream_addr",
        "upstream_status",
        "upstream_ms",
        "consumer",
        "cache",
        "user_agent",
        "trace_id",
    ] {
        assert!(v[field].is_null(), "{field}: {v}");
    }
    assert_eq!(v["query"], "");
    assert_eq!(v["attempts"], 0);
    let (_, v) = json(&s, &full());
    assert_eq!(v["query"], "token=secret&x=1");
}

#[test]
fn json_escapes_quotes_control_characters_and_invalid_utf8_from_clients() {
    let s = Settings::new(AccessLogFormat::Json, true, "node \"q\"\n");
    let nasty = "/a\"b\\c\nd\re\tf\u{1}g\u{7f}é/%ZZ";
    let line = Line {
        path: nasty,
        query: "q=\"}{\"",
        method: "GET",
        service: "svc\"x",
        consumer: Some("al\u{0}ice"),
        user_agent: Some(b"bad \xff\xfe agent \"x\"\n"),
        request_id: b"r\"1",
        ..full()
    };
    let (text, v) = json(&s, &line);
    assert_eq!(v["path"], nasty);
    assert_eq!(v["query"], "q=\"}{\"");
    assert_eq!(v["node"], "node \"q\"\n");
    assert_eq!(v["service"], "svc\"x");
    assert_eq!(v["consumer"], "al\u{0}ice");
    assert_eq!(v["user_agent"], "bad \u{fffd}\u{fffd} agent \"x\"\n");
    assert_eq!(v["request_id"], "r\"1");
    assert!(!text.trim_end().contains(['\n', '\r', '\t', '\u{1}', '\u{0}']), "raw control bytes in {text:?}");
}

#[test]
fn combined_lines_follow_nginx_and_end_with_the_request_id_and_duration() {
    let s = Settings::new(AccessLogFormat::Combined, false, "gw-1");
    let mut out = Vec::new();
    s.write(&mut out, &full(), NOW);
    assert_eq!(
        String::from_utf8(out).expect("ASCII"),
        "10.1.2.3 - alice [26/Nov/2026:02:38:48 +0000] \"GET /api/users/7 HTTP/1.1\" 200 345 \
         \"https://example.com/\" \"curl/8.5.0\" req-42 1.234\n"
    );

    let with_query = Settings::new(AccessLogFormat::Combined, true, "gw-1");
    let line = Line {
        client: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        consumer: None,
        bytes_out: None,
        referer: None,
        user_agent: Some(b"ua \"quoted\" \\ \xff\n"),
        path: "/p\"ath",
        duration: Duration::from_millis(7),
        ..full()
    };
    let mut out = Vec::new();
    with_query.write(&mut out, &line, NOW);
    assert_eq!(
        String::from_utf8(out).expect("ASCII"),
        "::1 - - [26/Nov/2026:02:38:48 +0000] \"GET /p\\x22ath?token=secret&x=1 HTTP/1.1\" 200 - \"-\" \
         \"ua \\x22quoted\\x22 \\x5C \\xFF\\x0A\" req-42 0.007\n"
    );
}

#[test]
fn combined_escapes_spaces_in_unquoted_fields() {
    let s = Settings::new(AccessLogFormat::Combined, false, "gw-1");
    let mut out = Vec::new();
    s.write(&mut out, &Line { consumer: Some("a b"), ..full() }, NOW);
    let text = String::from_utf8(out).expect("ASCII");
    assert!(text.starts_with("10.1.2.3 - a\\x20b ["), "{text}");
}

#[test]
fn the_clock_formats_utc_dates_across_leap_days_and_centuries() {
    let iso = |secs: u64| String::from_utf8(clock(secs).iso.to_vec()).expect("ASCII");
    let clf = |secs: u64| String::from_utf8(clock(secs).clf.to_vec()).expect("ASCII");
    assert_eq!(iso(0), "1970-01-01T00:00:00");
    assert_eq!(iso(1_709_251_199), "2024-02-29T23:59:59");
    assert_eq!(iso(1_709_251_200), "2024-03-01T00:00:00");
    assert_eq!(iso(951_868_800), "2000-03-01T00:00:00");
    assert_eq!(iso(253_402_300_799), "9999-12-31T23:59:59");
    assert_eq!(clf(1_795_660_728), "26/Nov/2026:02:38:48");
    assert_eq!(clf(0), "01/Jan/1970:00:00:00");
}

#[test]
fn the_cached_seconds_follow_the_clock_within_one_thread() {
    let s = Settings::new(AccessLogFormat::Json, false, "n");
    for (now, want) in [
        (NOW, "2026-11-26T02:38:48.123Z"),
        (NOW + Duration::from_millis(5), "2026-11-26T02:38:48.128Z"),
        (NOW + Duration::from_millis(900), "2026-11-26T02:38:49.023Z"),
        (NOW - Duration::from_secs(86_400), "2026-11-25T02:38:48.123Z"),
    ] {
        let mut out = Vec::new();
        s.write(&mut out, &full(), now);
        let v: Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(v["timestamp"], want);
    }
}

#[test]
fn the_word_at_a_time_escape_scan_agrees_with_the_byte_rule_everywhere() {
    let naive = |b: &[u8]| b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
    for len in 0..20 {
        for pos in 0..len {
            for c in 0..=255u8 {
                // Neighbours that sit next to the thresholds (0x1f/0x20, 0x21/0x23, 0x5b/0x5d).
                for fill in [b'a', 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff] {
                    let mut v = vec![fill; len];
                    v[pos] = c;
                    assert_eq!(needs_escape(&v), naive(&v), "{v:?}");
                }
            }
        }
    }
}
