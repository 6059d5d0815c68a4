//! Formatting one access-log line straight into a byte buffer: JSON (strings escaped by
//! serde_json, numbers by itoa) or nginx's `combined` plus the request id and the duration.
//! The time's seconds part is formatted once per second per thread.

use std::cell::RefCell;
use std::net::IpAddr;
use std::time::Duration;

use crate::config::AccessLogFormat;

/// What one line says about a finished request (borrowed from the request; nothing is
/// copied before formatting).
#[derive(Debug, Clone, Default)]
pub struct Line<'a> {
    /// The request id (`X-Request-Id`).
    pub request_id: &'a [u8],
    /// The client address (the trusted one behind proxies).
    pub client: Option<IpAddr>,
    /// Request method.
    pub method: &'a str,
    /// Request path as received (percent-encoded).
    pub path: &'a str,
    /// Query string without `?` (logged only with `access_log_query`).
    pub query: &'a str,
    /// `HTTP/1.1` and the like.
    pub version: &'static str,
    /// Status sent to the client.
    pub status: u16,
    /// The request's declared `Content-Length`.
    pub bytes_in: Option<u64>,
    /// The response's declared length, when known before the body is sent.
    pub bytes_out: Option<u64>,
    /// Time spent in the gateway.
    pub duration: Duration,
    /// The endpoint that answered or failed last: its id and `host:port`.
    pub upstream: Option<(&'a str, &'a str)>,
    /// The upstream's status, when its answer (not the gateway's) was relayed.
    pub upstream_status: Option<u16>,
    /// Time until the upstream's response head.
    pub upstream_time: Option<Duration>,
    /// Upstream attempts made.
    pub attempts: u32,
    /// The service (`none` before routing).
    pub service: &'a str,
    /// The verified consumer.
    pub consumer: Option<&'a str>,
    /// Cache result (`HIT`, `MISS`, ...), for caching services.
    pub cache: Option<&'static str>,
    /// Rate-limiter result.
    pub limiter: &'static str,
    /// `User-Agent` as sent (any bytes).
    pub user_agent: Option<&'a [u8]>,
    /// `Referer` as sent (combined format only).
    pub referer: Option<&'a [u8]>,
    /// W3C trace id.
    pub trace_id: Option<[u8; 16]>,
}

/// How lines are written (fixed per node).
#[derive(Debug, Clone)]
pub struct Settings {
    /// json or combined.
    pub format: AccessLogFormat,
    /// Whether to log query strings.
    pub query: bool,
    /// The node id as a JSON string (quoted and escaped once).
    node_json: Box<[u8]>,
}

impl Settings {
    /// Settings for node `node`.
    pub fn new(format: AccessLogFormat, query: bool, node: &str) -> Self {
        Self { format, query, node_json: json_string(node).into_boxed_slice() }
    }

    /// Whether lines show the `Referer` (combined only; JSON lines leave it out).
    pub fn logs_referer(&self) -> bool {
        self.format == AccessLogFormat::Combined
    }

    /// Appends `line`, stamped with `now` (since the Unix epoch), and a newline to `out`.
    pub fn write(&self, out: &mut Vec<u8>, line: &Line<'_>, now: Duration) {
        match self.format {
            AccessLogFormat::Json => self.json(out, line, now),
            AccessLogFormat::Combined => self.combined(out, line, now),
        }
    }

    fn json(&self, out: &mut Vec<u8>, l: &Line<'_>, now: Duration) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        with_clock(now, |c| out.extend_from_slice(&c.iso));
        out.push(b'.');
        three_digits(out, now.subsec_millis());
        out.extend_from_slice(b"Z\",\"level\":\"INFO\",\"target\":\"access\",\"message\":\"request\",\"request_id\":");
        bytes(out, l.request_id);
        out.extend_from_slice(b",\"node\":");
        out.extend_from_slice(&self.node_json);
        out.extend_from_slice(b",\"client\":");
        match l.client {
            Some(ip) => {
                out.push(b'"');
                ip_text(out, ip);
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"method\":");
        string(out, l.method);
        out.extend_from_slice(b",\"path\":");
        string(out, l.path);
        if self.query {
            out.extend_from_slice(b",\"query\":");
            string(out, l.query);
        }
        out.extend_from_slice(b",\"status\":");
        uint(out, l.status);
        out.extend_from_slice(b",\"bytes_in\":");
        opt_uint(out, l.bytes_in);
        out.extend_from_slice(b",\"bytes_out\":");
        opt_uint(out, l.bytes_out);
        out.extend_from_slice(b",\"duration_ms\":");
        millis(out, l.duration);
        out.extend_from_slice(b",\"upstream\":");
        opt_string(out, l.upstream.map(|u| u.0));
        out.extend_from_slice(b",\"upstream_addr\":");
        opt_string(out, l.upstream.map(|u| u.1));
        out.extend_from_slice(b",\"upstream_status\":");
        opt_uint(out, l.upstream_status);
        out.extend_from_slice(b",\"upstream_ms\":");
        match l.upstream_time {
            Some(d) => millis(out, d),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"attempts\":");
        uint(out, l.attempts);
        out.extend_from_slice(b",\"service\":");
        string(out, l.service);
        out.extend_from_slice(b",\"consumer\":");
        opt_string(out, l.consumer);
        out.extend_from_slice(b",\"cache\":");
        opt_string(out, l.cache);
        out.extend_from_slice(b",\"limiter\":");
        string(out, l.limiter);
        out.extend_from_slice(b",\"user_agent\":");
        match l.user_agent {
            Some(ua) => bytes(out, ua),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"trace_id\":");
        match &l.trace_id {
            Some(t) => {
                out.push(b'"');
                hex(out, t);
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}\n");
    }

    /// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
    /// "$http_referer" "$http_user_agent" $request_id $request_time`, with the consumer as
    /// `$remote_user`, the time in UTC, and nginx's escaping (`"`, `\`, control and
    /// non-ASCII bytes as `\xHH`).
    fn combined(&self, out: &mut Vec<u8>, l: &Line<'_>, now: Duration) {
        match l.client {
            Some(ip) => ip_text(out, ip),
            None => out.push(b'-'),
        }
        out.extend_from_slice(b" - ");
        match l.consumer {
            Some(c) if !c.is_empty() => clf_escaped(out, c.as_bytes(), true),
            _ => out.push(b'-'),
        }
        out.extend_from_slice(b" [");
        with_clock(now, |c| out.extend_from_slice(&c.clf));
        out.extend_from_slice(b" +0000] \"");
        clf_escaped(out, l.method.as_bytes(), false);
        out.push(b' ');
        clf_escaped(out, l.path.as_bytes(), false);
        if self.query && !l.query.is_empty() {
            out.push(b'?');
            clf_escaped(out, l.query.as_bytes(), false);
        }
        out.push(b' ');
        out.extend_from_slice(l.version.as_bytes());
        out.extend_from_slice(b"\" ");
        uint(out, l.status);
        out.push(b' ');
        match l.bytes_out {
            Some(n) => uint(out, n),
            None => out.push(b'-'),
        }
        for header in [l.referer, l.user_agent] {
            out.extend_from_slice(b" \"");
            match header {
                Some(v) if !v.is_empty() => clf_escaped(out, v, false),
                _ => out.push(b'-'),
            }
            out.push(b'"');
        }
        out.push(b' ');
        clf_escaped(out, l.request_id, true);
        out.push(b' ');
        let ms = l.duration.as_millis();
        uint(out, ms / 1000);
        out.push(b'.');
        three_digits(out, (ms % 1000) as u32);
        out.push(b'\n');
    }
}

/// `s` as a JSON string.
fn json_string(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    string(&mut out, s);
    out
}

/// Appends `s` as a quoted, escaped JSON string.
fn string(out: &mut Vec<u8>, s: &str) {
    // Text without quotes, backslashes or control characters (the common case) is
    // copied as it is: serde_json escapes exactly those.
    if !needs_escape(s.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Whether `b` holds a byte JSON must escape (`"`, `\\`, below 0x20), eight bytes per
/// step: the scan runs over every string of every line.
fn needs_escape(b: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Nonzero exactly when some byte of `x` is below `n` (n <= 0x80).
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let mut chunks = b.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word);
        let hit = below(x, 0x20) | below(x ^ (ONES * u64::from(b'"')), 1) | below(x ^ (ONES * u64::from(b'\\')), 1);
        if hit != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\')
}

/// Appends bytes from the client (headers may carry any bytes) as a JSON string;
/// invalid UTF-8 becomes U+FFFD.
fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => string(out, s),
        Err(_) => string(out, &String::from_utf8_lossy(b)),
    }
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn uint(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn opt_uint(out: &mut Vec<u8>, n: Option<impl itoa::Integer>) {
    match n {
        Some(n) => uint(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

/// A duration as milliseconds with three decimals (microsecond resolution).
fn millis(out: &mut Vec<u8>, d: Duration) {
    let us = d.as_micros();
    uint(out, us / 1000);
    out.push(b'.');
    three_digits(out, (us % 1000) as u32);
}

fn three_digits(out: &mut Vec<u8>, n: u32) {
    let n = n.min(999);
    out.extend_from_slice(&[b'0' + (n / 100) as u8, b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

fn hex(out: &mut Vec<u8>, b: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for x in b {
        out.extend_from_slice(&[DIGITS[usize::from(x >> 4)], DIGITS[usize::from(x & 15)]]);
    }
}

/// nginx's escaping of logged variables: `"`, `\`, control and non-ASCII bytes as `\xHH`
/// (and spaces too where the field is not quoted).
fn clf_escaped(out: &mut Vec<u8>, b: &[u8], space: bool) {
    let plain = |c: u8| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\' && !(space && c == b' ');
    if b.iter().all(|&c| plain(c)) {
        out.extend_from_slice(b);
        return;
    }
    for &c in b {
        if plain(c) {
            out.push(c);
        } else {
            const UPPER: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(&[b'\\', b'x', UPPER[usize::from(c >> 4)], UPPER[usize::from(c & 15)]]);
        }
    }
}

/// An address, formatted once per thread while it stays the same (a node mostly sees a
/// load balancer or a few clients).
fn ip_text(out: &mut Vec<u8>, ip: IpAddr) {
    thread_local! {
        static LAST: RefCell<Option<(IpAddr, String)>> = const { RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((seen, text)) if *seen == ip => out.extend_from_slice(text.as_bytes()),
            _ => {
                let text = ip.to_string();
                out.extend_from_slice(text.as_bytes());
                *last = Some((ip, text));
            }
        }
    })
}

/// The seconds part of the time, in both formats.
struct Clock {
    secs: u64,
    /// `2026-11-26T02:38:48`
    iso: [u8; 19],
    /// `26/Nov/2026:02:38:48`
    clf: [u8; 20],
}

fn with_clock(now: Duration, f: impl FnOnce(&Clock)) {
    thread_local! {
        static CLOCK: RefCell<Option<Clock>> = const { RefCell::new(None) };
    }
    CLOCK.with(|c| {
        let mut c = c.borrow_mut();
        let secs = now.as_secs();
        let clock = match &mut *c {
            Some(clock) if clock.secs == secs => clock,
            slot => slot.insert(clock(secs)),
        };
        f(clock)
    })
}

const MONTHS: [&[u8; 3]; 12] =
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

fn clock(secs: u64) -> Clock {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil(days);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    let y = y.min(9999);
    let year =
        [b'0' + (y / 1000) as u8, b'0' + (y / 100 % 10) as u8, b'0' + (y / 10 % 10) as u8, b'0' + (y % 10) as u8];
    let (mo, dd, h, mi, s) = (two(m), two(d), two(hh), two(mm), two(ss));
    let iso = [
        year[0], year[1], year[2], year[3], b'-', mo[0], mo[1], b'-', dd[0], dd[1], b'T', h[0], h[1], b':', mi[0],
        mi[1], b':', s[0], s[1],
    ];
    let name = MONTHS[(m as usize).clamp(1, 12) - 1];
    let clf = [
        dd[0], dd[1], b'/', name[0], name[1], name[2], b'/', year[0], year[1], year[2], year[3], b':', h[0], h[1],
        b':', mi[0], mi[1], b':', s[0], s[1],
    ];
    Clock { secs, iso, clf }
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
