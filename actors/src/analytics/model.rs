//! The analytics vocabulary: one request's `Record`, the limiter outcome, the latency
//! histogram (fixed log-scale buckets, so histograms of any node and minute merge by
//! adding counts) and the per-minute aggregate — a flat map of counter fields that is
//! the same in memory and in a Redis hash, so one report builder serves both.
//!
//! Field names (per service `<svc>`; service names never contain `|`):
//! `<svc>|n` requests, `<svc>|e` errors (status ≥ 500), `<svc>|r` rate limited (429 from
//! the limiter), `<svc>|c` cache hits, `<svc>|1`..`<svc>|5` status classes, `<svc>|h<i>`
//! latency bucket `i`, `<svc>|u <consumer>` per consumer, `<svc>|p <METHOD> <path>` per
//! endpoint.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use actix::Message;

/// Service label of requests that matched no route (as in the Prometheus metrics).
pub const NO_SERVICE: &str = "none";
/// Endpoint path / consumer id that collects everything above the per-minute caps.
pub const OTHER: &str = "other";
/// Number of latency buckets.
pub const BUCKETS: usize = 40;
/// Upper bound of the first bucket (ms); each next bucket is √2 wider.
const FIRST_BUCKET_MS: f64 = 0.25;

/// What the rate limiter said about a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LimiterResult {
    /// The service has no limit (or the request never reached the limiter).
    #[default]
    Unlimited,
    /// Every policy admitted it.
    Allowed,
    /// A policy refused it (`429`).
    Limited,
    /// The limiter's storage failed and `failure_mode = closed` refused it.
    Unavailable,
}

impl LimiterResult {
    /// Label for logs and the stream (`none|allowed|limited|unavailable`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unlimited => "none",
            Self::Allowed => "allowed",
            Self::Limited => "limited",
            Self::Unavailable => "unavailable",
        }
    }
}

/// One finished request, as the request path hands it to the analytics actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Record {
    /// Arrival time, ms since the Unix epoch.
    pub at_ms: u64,
    /// Matched service (`None`: no route).
    pub service: Option<Arc<str>>,
    /// Method label.
    pub method: &'static str,
    /// Client path (templated by the actor, not on the request thread).
    pub path: String,
    /// Response status.
    pub status: u16,
    /// Verified consumer.
    pub consumer: Option<String>,
    /// Time in the gateway, µs.
    pub latency_us: u64,
    /// Time until the upstream's response head, µs.
    pub upstream_us: Option<u64>,
    /// `HIT|MISS|BYPASS|STALE` for caching services.
    pub cache: Option<&'static str>,
    /// Rate-limit outcome.
    pub limiter: LimiterResult,
}

/// Latency bucket of `ms`.
pub fn bucket_of(ms: f64) -> usize {
    if ms.is_nan() || ms <= FIRST_BUCKET_MS {
        return 0;
    }
    let i = ((ms / FIRST_BUCKET_MS).log2() * 2.0).ceil();
    (i as usize).min(BUCKETS - 1)
}

/// Upper bound (ms) of bucket `i`: a percentile is reported as the bound of its bucket.
pub fn bucket_upper_ms(i: usize) -> f64 {
    FIRST_BUCKET_MS * 2f64.powf(i as f64 / 2.0)
}

/// The `q` quantile (0..1) of a histogram, as its bucket's upper bound; 0 when empty.
pub fn quantile(hist: &[u64; BUCKETS], q: f64) -> f64 {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return (bucket_upper_ms(i) * 100.0).round() / 100.0;
        }
    }
    bucket_upper_ms(BUCKETS - 1)
}

/// Counter fields of one minute (`field → count`).
pub type Minute = HashMap<String, u64>;

/// Per-minute counters, keyed by minute number (unix seconds / 60).
#[derive(Debug, Default, Clone)]
pub struct Aggregates {
    /// Minute → fields.
    pub minutes: BTreeMap<u64, Minute>,
}

impl Aggregates {
    /// Adds `n` to `field` of `minute`, allocating the field name only when new.
    fn bump(&mut self, minute: u64, field: &str, n: u64) {
        let m = self.minutes.entry(minute).or_default();
        match m.get_mut(field) {
            Some(v) => *v += n,
            None => {
                m.insert(field.to_string(), n);
            }
        }
    }

    /// Adds every field of `other` (a failed flush goes back this way).
    pub fn merge(&mut self, other: Aggregates) {
        for (minute, fields) in other.minutes {
            for (f, n) in fields {
                self.bump(minute, &f, n);
            }
        }
    }

    /// Whether there is nothing to flush.
    pub fn is_empty(&self) -> bool {
        self.minutes.is_empty()
    }

    /// Requests counted in `minute` (all services).
    pub fn requests_in(&self, minute: u64) -> u64 {
        self.minutes
            .get(&minute)
            .map(|m| m.iter().filter(|(k, _)| k.ends_with("|n")).map(|(_, v)| *v).sum())
            .unwrap_or(0)
    }

    /// Drops minutes older than `oldest`; returns the requests they held.
    pub fn prune_before(&mut self, oldest: u64) -> u64 {
        let old: Vec<u64> = self.minutes.range(..oldest).map(|(m, _)| *m).collect();
        let lost = old.iter().map(|m| self.requests_in(*m)).sum();
        for m in old {
            self.minutes.remove(&m);
        }
        lost
    }
}

/// Caps the distinct endpoints and consumers a node records per minute; the rest fold
/// into `other` so a path full of ids cannot blow up the aggregates.
#[derive(Debug)]
pub struct Caps {
    max: usize,
    seen: BTreeMap<u64, (HashSet<String>, HashSet<String>)>,
}

impl Caps {
    /// At most `max` endpoints and `max` consumers per minute.
    pub fn new(max: usize) -> Self {
        Self { max, seen: BTreeMap::new() }
    }

    fn admit<'a>(max: usize, set: &mut HashSet<String>, value: &'a str) -> &'a str {
        if set.contains(value) {
            return value;
        }
        if set.len() >= max {
            return OTHER;
        }
        set.insert(value.to_string());
        value
    }
}

/// Replaces path segments that look like ids (numbers, UUIDs, long hex or base64-ish
/// tokens) by `:id`, so `/users/42` and `/users/43` count as one endpoint.
pub fn template_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    write_template_path(&mut out, path);
    out
}

/// Appends `template_path(path)` to `out`.
pub fn write_template_path(out: &mut String, path: &str) {
    let start = out.len();
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(if looks_like_id(seg) { ":id" } else { seg });
    }
    if out.len() == start {
        out.push('/');
    }
}

fn looks_like_id(seg: &str) -> bool {
    if seg.is_empty() {
        return false;
    }
    let digits = seg.bytes().filter(u8::is_ascii_digit).count();
    let hexish = seg.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    seg.bytes().all(|b| b.is_ascii_digit())
        || (seg.len() >= 16 && hexish && digits > 0)
        || (seg.len() >= 24 && digits >= 4)
}

/// Adds one record to `agg` (endpoint and consumer capped through `caps`).
pub fn add(agg: &mut Aggregates, caps: &mut Caps, r: &Record) {
    let mut pending = Pending::default();
    pending.fold(r);
    pending.drain_into(agg, caps);
}

/// The counters of the records that share minute, service, method, path and consumer.
#[derive(Debug)]
struct Tally {
    minute: u64,
    service: Option<Arc<str>>,
    method: &'static str,
    path: String,
    consumer: Option<String>,
    requests: u64,
    errors: u64,
    limited: u64,
    hits: u64,
    classes: [u64; 5],
    hist: [u64; BUCKETS],
}

/// Records folded by what their counter fields share: one hash lookup per record, and the
/// field names (path template, endpoint and consumer caps) built once per distinct
/// combination when drained into `Aggregates`, instead of once per record.
#[derive(Debug, Default)]
pub struct Pending {
    tallies: HashMap<String, Tally>,
    key: String,
}

impl Pending {
    /// Counts `r`.
    pub fn fold(&mut self, r: &Record) {
        let minute = r.at_ms / 60_000;
        self.key.clear();
        self.key.push_str(itoa::Buffer::new().format(minute));
        for part in [r.service.as_deref().unwrap_or(NO_SERVICE), r.method, &r.path, r.consumer.as_deref().unwrap_or("")]
        {
            self.key.push('\u{1f}');
            self.key.push_str(part);
        }
        if r.consumer.is_none() {
            self.key.push('\u{1e}');
        }
        let t = match self.tallies.get_mut(self.key.as_str()) {
            Some(t) => t,
            None => self.tallies.entry(self.key.clone()).or_insert_with(|| Tally {
                minute,
                service: r.service.clone(),
                method: r.method,
                path: r.path.clone(),
                consumer: r.consumer.clone(),
                requests: 0,
                errors: 0,
                limited: 0,
                hits: 0,
                classes: [0; 5],
                hist: [0; BUCKETS],
            }),
        };
        t.requests += 1;
        t.errors += u64::from(r.status >= 500);
        t.limited += u64::from(r.limiter == LimiterResult::Limited);
        t.hits += u64::from(r.cache == Some("HIT"));
        t.classes[usize::from((r.status / 100).clamp(1, 5) - 1)] += 1;
        t.hist[bucket_of(r.latency_us as f64 / 1000.0)] += 1;
    }

    /// Whether nothing was folded since the last drain.
    pub fn is_empty(&self) -> bool {
        self.tallies.is_empty()
    }

    /// Moves every tally into `agg` (endpoint and consumer capped through `caps`).
    pub fn drain_into(&mut self, agg: &mut Aggregates, caps: &mut Caps) {
        let mut tallies: Vec<Tally> = self.tallies.drain().map(|(_, t)| t).collect();
        // Oldest minute first: `caps` keeps only the two latest minutes' sets.
        tallies.sort_by_key(|t| t.minute);
        for t in tallies {
            t.add_to(agg, caps);
        }
    }
}

impl Tally {
    fn add_to(&self, agg: &mut Aggregates, caps: &mut Caps) {
        let minute = self.minute;
        // Keep only the current and the previous minute's sets.
        while caps.seen.len() > 2 {
            caps.seen.pop_first();
        }
        let (endpoints, consumers) = caps.seen.entry(minute).or_default();
        let svc = self.service.as_deref().unwrap_or(NO_SERVICE);
        let mut field = String::with_capacity(svc.len() + 64);
        let mut put = |suffix: &str, n: u64| {
            if n == 0 {
                return;
            }
            field.clear();
            field.push_str(svc);
            field.push('|');
            field.push_str(suffix);
            agg.bump(minute, &field, n);
        };
        put("n", self.requests);
        put("e", self.errors);
        put("r", self.limited);
        put("c", self.hits);
        for (class, n) in ["1", "2", "3", "4", "5"].iter().zip(self.classes) {
            put(class, n);
        }
        for (bucket, n) in self.hist.iter().enumerate().filter(|(_, n)| **n > 0) {
            put(&format!("h{bucket}"), *n);
        }
        let path = template_path(&self.path);
        let endpoint = format!("{} {path}", self.method);
        if Caps::admit(caps.max, endpoints, &endpoint) == OTHER {
            put(&format!("p {} {OTHER}", self.method), self.requests);
        } else {
            put(&format!("p {endpoint}"), self.requests);
        }
        if let Some(c) = &self.consumer {
            let c = Caps::admit(caps.max, consumers, c);
            put(&format!("u {c}"), self.requests);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(service: &str, status: u16, latency_ms: u64) -> Record {
        Record {
            at_ms: 120_000,
            service: Some(service.into()),
            method: "GET",
            path: "/api/users/42".into(),
            status,
            consumer: Some("alice".into()),
            latency_us: latency_ms * 1000,
            upstream_us: None,
            cache: None,
            limiter: LimiterResult::Unlimited,
        }
    }

    #[test]
    fn folded_records_count_as_records_added_one_by_one() {
        let mut records = Vec::new();
        for i in 0..300u64 {
            let mut r = record(["a", "b"][(i % 2) as usize], [200, 404, 503][(i % 3) as usize], i % 17);
            r.path = format!("/api/users/{}", i % 5);
            r.at_ms = 120_000 + (i % 2) * 60_000;
            r.consumer = (i % 4 != 0).then(|| format!("c{}", i % 3));
            r.limiter = if i % 7 == 0 { LimiterResult::Limited } else { LimiterResult::Allowed };
            r.cache = (i % 5 == 0).then_some("HIT");
            records.push(r);
        }
        let (mut one_by_one, mut caps1) = (Aggregates::default(), Caps::new(3));
        for r in &records {
            add(&mut one_by_one, &mut caps1, r);
        }
        let (mut folded, mut caps2, mut pending) = (Aggregates::default(), Caps::new(3), Pending::default());
        for r in &records {
            pending.fold(r);
        }
        pending.drain_into(&mut folded, &mut caps2);
        assert!(pending.is_empty());
        // Same fields and counts (the endpoint caps only see templated paths, all alike).
        assert_eq!(one_by_one.minutes, folded.minutes);
        assert_eq!(folded.requests_in(2), 150);
    }

    #[test]
    fn buckets_grow_by_root_two_and_quantiles_are_ordered() {
        assert_eq!(bucket_of(0.1), 0);
        assert_eq!(bucket_of(0.5), 2);
        assert!(bucket_upper_ms(bucket_of(37.0)) >= 37.0);
        assert_eq!(bucket_of(1e12), BUCKETS - 1);
        let mut h = [0u64; BUCKETS];
        for ms in 1..=100 {
            h[bucket_of(ms as f64)] += 1;
        }
        let (p50, p95, p99) = (quantile(&h, 0.5), quantile(&h, 0.95), quantile(&h, 0.99));
        assert!(p50 <= p95 && p95 <= p99, "{p50} {p95} {p99}");
        assert!((45.0..=75.0).contains(&p50), "{p50}");
        assert_eq!(quantile(&[0; BUCKETS], 0.5), 0.0);
    }

    #[test]
    fn id_segments_are_templated() {
        assert_eq!(template_path("/api/users/42"), "/api/users/:id");
        assert_eq!(template_path("/o/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/items"), "/o/:id/items");
        assert_eq!(template_path("/api/users/me"), "/api/users/me");
        assert_eq!(template_path(""), "/");
    }

    #[test]
    fn a_record_counts_status_class_latency_endpoint_and_consumer() {
        let mut agg = Aggregates::default();
        let mut caps = Caps::new(10);
        add(&mut agg, &mut caps, &record("users", 503, 12));
        let m = &agg.minutes[&2];
        for f in ["users|n", "users|e", "users|5", "users|p GET /api/users/:id", "users|u alice"] {
            assert_eq!(m.get(f), Some(&1), "{f}: {m:?}");
        }
        assert_eq!(agg.requests_in(2), 1);
    }

    #[test]
    fn endpoints_above_the_cap_fold_into_other() {
        let mut agg = Aggregates::default();
        let mut caps = Caps::new(2);
        for p in ["/a", "/b", "/c", "/d"] {
            add(&mut agg, &mut caps, &Record { path: p.into(), ..record("s", 200, 1) });
        }
        let m = &agg.minutes[&2];
        assert_eq!(m.get("s|p GET other"), Some(&2));
        assert_eq!(m.keys().filter(|k| k.starts_with("s|p ")).count(), 3);
    }
}
