//! Building the `/admin/analytics` answer (SPEC §12) from per-minute counter fields,
//! whichever backend they came from: totals, per service (status classes and latency
//! percentiles from the merged histograms), top endpoints and consumers, and one entry
//! per minute of the range.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use super::model::{BUCKETS, Minute, quantile};

/// Entries in the top lists.
pub const TOP: usize = 10;

/// What to report on.
#[derive(Debug, Clone)]
pub struct Query {
    /// Start, ms since the epoch (its minute is included).
    pub from_ms: u64,
    /// End, ms since the epoch (its minute is included).
    pub to_ms: u64,
    /// Only this service.
    pub service: Option<String>,
}

impl Query {
    /// Minute numbers of the range.
    pub fn minutes(&self) -> std::ops::RangeInclusive<u64> {
        (self.from_ms / 60_000)..=(self.to_ms / 60_000)
    }
}

/// The four counters of `totals`.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Totals {
    /// Requests.
    pub requests: u64,
    /// Status ≥ 500.
    pub errors: u64,
    /// Refused by the rate limiter.
    pub rate_limited: u64,
    /// Served from the cache.
    pub cache_hits: u64,
}

/// One service's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStats {
    /// Requests.
    pub requests: u64,
    /// Status classes `2xx`..`5xx`.
    pub status: BTreeMap<&'static str, u64>,
    /// Median latency (ms, bucket upper bound).
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Status ≥ 500.
    pub errors: u64,
    /// Refused by the rate limiter.
    pub rate_limited: u64,
    /// Served from the cache.
    pub cache_hits: u64,
}

/// An entry of `top_endpoints`.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointCount {
    /// Service.
    pub service: String,
    /// Method.
    pub method: String,
    /// Client path, id segments templated as `:id` (`other` above the cap).
    pub path: String,
    /// Requests.
    pub requests: u64,
}

/// An entry of `top_consumers`.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerCount {
    /// Consumer id.
    pub consumer: String,
    /// Requests.
    pub requests: u64,
}

/// One minute of the range.
#[derive(Debug, Clone, Serialize)]
pub struct MinuteStats {
    /// Start of the minute (RFC 3339).
    pub at: String,
    /// Requests.
    pub requests: u64,
    /// Status ≥ 500.
    pub errors: u64,
    /// Refused by the rate limiter.
    pub rate_limited: u64,
    /// 99th percentile latency (ms).
    pub p99_ms: f64,
    /// Median latency (ms).
    pub p50_ms: f64,
    /// Served from the cache.
    pub cache_hits: u64,
}

/// The busiest minute of the range.
#[derive(Debug, Clone, Serialize)]
pub struct Peak {
    /// Start of the minute.
    pub at: String,
    /// Requests in it.
    pub requests: u64,
}

/// The whole `/admin/analytics` answer.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Start of the range (RFC 3339).
    pub from: String,
    /// End of the range (RFC 3339).
    pub to: String,
    /// Sums over the range.
    pub totals: Totals,
    /// Per service.
    pub by_service: BTreeMap<String, ServiceStats>,
    /// Busiest endpoints, most requests first.
    pub top_endpoints: Vec<EndpointCount>,
    /// Busiest consumers, most requests first.
    pub top_consumers: Vec<ConsumerCount>,
    /// Every minute of the range, oldest first.
    pub per_minute: Vec<MinuteStats>,
    /// Overall latency percentiles.
    pub latency: Latency,
    /// The busiest minute (absent without traffic).
    pub peak_minute: Option<Peak>,
    /// `cluster` (Redis aggregates), `memory` (this node, memory mode) or `local` (Redis
    /// unreachable: this node's unflushed counts only).
    pub source: &'static str,
}

/// Overall percentiles.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Median (ms).
    pub p50_ms: f64,
    /// 95th percentile (ms).
    pub p95_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
}

/// RFC 3339 (seconds) of `ms` since the epoch.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

struct Acc {
    totals: Totals,
    status: [u64; 5],
    hist: [u64; BUCKETS],
}

impl Default for Acc {
    fn default() -> Self {
        Self { totals: Totals::default(), status: [0; 5], hist: [0; BUCKETS] }
    }
}

/// Builds the report over `minutes` (minute number → fields; missing minutes are zero).
pub fn build(q: &Query, minutes: &BTreeMap<u64, Minute>, source: &'static str) -> Report {
    let mut services: BTreeMap<String, Acc> = BTreeMap::new();
    let mut endpoints: HashMap<(String, String), u64> = HashMap::new();
    let mut consumers: HashMap<String, u64> = HashMap::new();
    let mut all = Acc::default();
    let mut per_minute = Vec::new();
    for minute in q.minutes() {
        let mut this = Acc::default();
        for (field, &n) in minutes.get(&minute).into_iter().flatten() {
            let Some((svc, rest)) = field.split_once('|') else { continue };
            if q.service.as_deref().is_some_and(|s| s != svc) {
                continue;
            }
            let acc = services.entry(svc.to_string()).or_default();
            for a in [&mut *acc, &mut this] {
                count(a, rest, n);
            }
            if let Some(e) = rest.strip_prefix("p ") {
                *endpoints.entry((svc.to_string(), e.to_string())).or_default() += n;
            } else if let Some(c) = rest.strip_prefix("u ") {
                *consumers.entry(c.to_string()).or_default() += n;
            }
        }
        per_minute.push(MinuteStats {
            at: rfc3339(minute * 60_000),
            requests: this.totals.requests,
            errors: this.totals.errors,
            rate_limited: this.totals.rate_limited,
            p99_ms: quantile(&this.hist, 0.99),
            p50_ms: quantile(&this.hist, 0.5),
            cache_hits: this.totals.cache_hits,
        });
        add_acc(&mut all, &this);
    }
    let by_service = services
        .into_iter()
        .filter(|(_, a)| a.totals.requests > 0)
        .map(|(name, a)| {
            let classes = ["2xx", "3xx", "4xx", "5xx"];
            let status = classes.iter().enumerate().map(|(i, c)| (*c, a.status[i + 1])).collect();
            let t = a.totals;
            let stats = ServiceStats {
                requests: t.requests,
                status,
                p50_ms: quantile(&a.hist, 0.5),
                p95_ms: quantile(&a.hist, 0.95),
                p99_ms: quantile(&a.hist, 0.99),
                errors: t.errors,
                rate_limited: t.rate_limited,
                cache_hits: t.cache_hits,
            };
            (name, stats)
        })
        .collect();
    let mut top_endpoints: Vec<EndpointCount> = endpoints
        .into_iter()
        .map(|((service, e), requests)| {
            let (method, path) = e.split_once(' ').unwrap_or(("", e.as_str()));
            EndpointCount { service, method: method.to_string(), path: path.to_string(), requests }
        })
        .collect();
    top_endpoints
        .sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| (&a.service, &a.path).cmp(&(&b.service, &b.path))));
    top_endpoints.truncate(TOP);
    let mut top_consumers: Vec<ConsumerCount> =
        consumers.into_iter().map(|(consumer, requests)| ConsumerCount { consumer, requests }).collect();
    top_consumers.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.consumer.cmp(&b.consumer)));
    top_consumers.truncate(TOP);
    let peak_minute = per_minute
        .iter()
        .filter(|m| m.requests > 0)
        .max_by_key(|m| m.requests)
        .map(|m| Peak { at: m.at.clone(), requests: m.requests });
    Report {
        from: rfc3339(q.from_ms),
        to: rfc3339(q.to_ms),
        latency: Latency {
            p50_ms: quantile(&all.hist, 0.5),
            p95_ms: quantile(&all.hist, 0.95),
            p99_ms: quantile(&all.hist, 0.99),
        },
        totals: all.totals,
        by_service,
        top_endpoints,
        top_consumers,
        per_minute,
        peak_minute,
        source,
    }
}

fn count(a: &mut Acc, field: &str, n: u64) {
    match field {
        "n" => a.totals.requests += n,
        "e" => a.totals.errors += n,
        "r" => a.totals.rate_limited += n,
        "c" => a.totals.cache_hits += n,
        "1" | "2" | "3" | "4" | "5" => {
            let i = usize::from(field.as_bytes()[0] - b'1');
            a.status[i] += n;
        }
        h if h.starts_with('h') => {
            if let Some(i) = h[1..].parse::<usize>().ok().filter(|i| *i < BUCKETS) {
                a.hist[i] += n;
            }
        }
        _ => {}
    }
}

fn add_acc(into: &mut Acc, from: &Acc) {
    into.totals.requests += from.totals.requests;
    into.totals.errors += from.totals.errors;
    into.totals.rate_limited += from.totals.rate_limited;
    into.totals.cache_hits += from.totals.cache_hits;
    for (a, b) in into.status.iter_mut().zip(from.status.iter()) {
        *a += b;
    }
    for (a, b) in into.hist.iter_mut().zip(from.hist.iter()) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{Aggregates, Caps, LimiterResult, Record, add};
    use super::*;

    fn rec(service: &str, status: u16, consumer: &str, minute: u64) -> Record {
        Record {
            at_ms: minute * 60_000 + 5,
            service: Some(service.into()),
            method: "GET",
            path: "/x".into(),
            status,
            consumer: Some(consumer.into()),
            latency_us: 2_000,
            upstream_us: Some(1_000),
            cache: Some("HIT"),
            limiter: if status == 429 { LimiterResult::Limited } else { LimiterResult::Allowed },
        }
    }

    #[test]
    fn report_sums_minutes_and_filters_by_service() {
        let (mut agg, mut caps) = (Aggregates::default(), Caps::new(100));
        for r in [rec("a", 200, "c1", 10), rec("a", 503, "c1", 11), rec("b", 429, "c2", 11), rec("b", 200, "c2", 12)] {
            add(&mut agg, &mut caps, &r);
        }
        let q = Query { from_ms: 10 * 60_000, to_ms: 12 * 60_000, service: None };
        let r = build(&q, &agg.minutes, "memory");
        assert_eq!(r.totals, Totals { requests: 4, errors: 1, rate_limited: 1, cache_hits: 4 });
        assert_eq!(r.per_minute.len(), 3);
        assert_eq!(r.per_minute[1].requests, 2);
        assert_eq!(r.by_service["a"].status["5xx"], 1);
        assert_eq!(r.by_service["b"].status["4xx"], 1);
        assert_eq!(r.top_consumers[0].requests, 2);
        assert_eq!(r.peak_minute.as_ref().map(|p| p.requests), Some(2));
        assert!(r.by_service["a"].p50_ms > 0.0);

        let only_b = build(&Query { service: Some("b".into()), ..q.clone() }, &agg.minutes, "memory");
        assert_eq!(only_b.totals.requests, 2);
        assert!(!only_b.by_service.contains_key("a"));
        let narrow = build(&Query { from_ms: 12 * 60_000, ..q }, &agg.minutes, "memory");
        assert_eq!(narrow.totals.requests, 1);
    }
}
