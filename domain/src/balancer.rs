//! Endpoint selection for one service: round robin, least connections, smooth weighted
//! round robin and a weighted consistent-hash ring.
//!
//! Invariant: picking never locks. Counters are atomics; the weighted sequence and the
//! hash ring are computed once when the route table is built and then only read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use crate::circuit::CircuitCell;
use crate::spec::{BalancerKind, UpstreamUrl};

/// Virtual nodes per unit of weight on the consistent-hash ring.
const RING_POINTS_PER_WEIGHT: u32 = 64;
/// Upper bound on ring size, however many endpoints and weights there are.
const RING_MAX_POINTS: usize = 64 * 1024;
/// Upper bound on the precomputed weighted sequence.
const WRR_MAX_LEN: usize = 64 * 1024;

/// Where an endpoint came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointSource {
    /// The config file.
    Config,
    /// Created through the admin API without a TTL.
    Admin,
    /// Self-registered with a TTL (heartbeats).
    #[serde(rename = "self")]
    SelfRegistered,
}

/// One upstream instance of a service, shared between route-table snapshots so that
/// in-flight counts and health survive a table rebuild.
#[derive(Debug)]
pub struct Endpoint {
    /// Stable id (`users-0` for config endpoints, or the id it registered with).
    pub id: Arc<str>,
    /// Base URL.
    pub url: UpstreamUrl,
    /// `scheme://host:port`, precomputed for building upstream URLs.
    pub origin: Arc<str>,
    /// The `Host` header sent upstream: `host:port`, or `host` on port 80 or 443.
    pub host_header: bytes::Bytes,
    /// Relative weight (0 = drained).
    pub weight: u32,
    /// Where it was defined.
    pub source: EndpointSource,
    in_flight: AtomicU32,
    healthy: AtomicBool,
    circuit: CircuitCell,
}

impl Endpoint {
    /// A new endpoint, healthy, with nothing in flight.
    pub fn new(id: impl Into<Arc<str>>, url: UpstreamUrl, weight: u32, source: EndpointSource) -> Self {
        let origin: Arc<str> = url.origin().into();
        let host = url.host();
        let host_header = match url.authority().get(host.len()..) {
            Some(":80" | ":443") => host,
            _ => url.authority(),
        };
        let host_header = bytes::Bytes::copy_from_slice(host_header.as_bytes());
        Self {
            id: id.into(),
            url,
            origin,
            host_header,
            weight,
            source,
            in_flight: AtomicU32::new(0),
            healthy: AtomicBool::new(true),
            circuit: CircuitCell::default(),
        }
    }

    /// Requests currently in flight to this endpoint from this node.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Health as last set by health checks (true without checks).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records the result of a health check.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// This endpoint's breaker as the request path sees it.
    pub fn circuit(&self) -> &CircuitCell {
        &self.circuit
    }

    /// Whether this endpoint may take new requests at all (healthy and not drained).
    pub fn is_selectable(&self) -> bool {
        self.weight > 0 && self.is_healthy()
    }
}

/// Counts a request as in flight to an endpoint until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl InFlight {
    /// Starts counting.
    pub fn start(ep: Arc<Endpoint>) -> Self {
        ep.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(ep)
    }
    /// The endpoint being used.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The endpoints of one service with the state its balancer needs.
#[derive(Debug)]
pub struct Pool {
    kind: BalancerKind,
    endpoints: Vec<Arc<Endpoint>>,
    cursor: AtomicUsize,
    /// Smooth weighted round-robin order (indices into `endpoints`).
    wrr: Vec<u32>,
    /// Sorted `(point, endpoint index)` pairs.
    ring: Vec<(u64, u32)>,
}

impl Pool {
    /// Builds the pool; weighted sequences and rings are computed here, once.
    pub fn new(kind: BalancerKind, endpoints: Vec<Arc<Endpoint>>) -> Self {
        let wrr = match kind {
            BalancerKind::Weighted => smooth_wrr(&endpoints),
            _ => Vec::new(),
        };
        let ring = match kind {
            BalancerKind::ConsistentHash(_) => hash_ring(&endpoints),
            _ => Vec::new(),
        };
        Self { kind, endpoints, cursor: AtomicUsize::new(0), wrr, ring }
    }

    /// The balancer kind.
    pub fn kind(&self) -> &BalancerKind {
        &self.kind
    }

    /// All endpoints, in definition order.
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// Picks an endpoint that `usable` accepts and that is not in `tried` (ids of
    /// endpoints already attempted for this request). `hash_key` is the consistent-hash
    /// input; without one the hash balancer falls back to round robin.
    pub fn pick(
        &self,
        hash_key: Option<&[u8]>,
        tried: &[Arc<str>],
        usable: impl Fn(&Endpoint) -> bool,
    ) -> Option<Arc<Endpoint>> {
        let ok = |e: &Endpoint| e.is_selectable() && usable(e) && !tried.contains(&e.id);
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let chosen = match (&self.kind, hash_key) {
            (BalancerKind::Weighted, _) if !self.wrr.is_empty() => {
                let start = self.cursor.fetch_add(1, Ordering::Relaxed);
                (0..self.wrr.len())
                    .map(|i| self.wrr[(start + i) % self.wrr.len()] as usize)
                    .find(|&i| ok(&self.endpoints[i]))
            }
            (BalancerKind::LeastConn, _) => {
                let start = self.cursor.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| (start + i) % n)
                    .filter(|&i| ok(&self.endpoints[i]))
                    .min_by_key(|&i| self.endpoints[i].in_flight())
            }
            (BalancerKind::ConsistentHash(_), Some(key)) if !self.ring.is_empty() => {
                let h = hash64(key);
                let at = self.ring.partition_point(|(p, _)| *p < h);
                (0..self.ring.len())
                    .map(|i| self.ring[(at + i) % self.ring.len()].1 as usize)
                    .find(|&i| ok(&self.endpoints[i]))
            }
            _ => {
                let start = self.cursor.fetch_add(1, Ordering::Relaxed);
                (0..n).map(|i| (start + i) % n).find(|&i| ok(&self.endpoints[i]))
            }
        };
        chosen.map(|i| Arc::clone(&self.endpoints[i]))
    }
}

/// Nginx's smooth weighted round robin, unrolled into one period of picks.
fn smooth_wrr(endpoints: &[Arc<Endpoint>]) -> Vec<u32> {
    let weights: Vec<u64> = endpoints.iter().map(|e| u64::from(e.weight)).collect();
    let g = weights.iter().copied().filter(|w| *w > 0).fold(0, gcd);
    if g == 0 {
        return Vec::new();
    }
    let weights: Vec<i64> = weights.iter().map(|w| (w / g) as i64).collect();
    let total: i64 = weights.iter().sum();
    let len = usize::try_from(total).unwrap_or(WRR_MAX_LEN).min(WRR_MAX_LEN);
    let mut current = vec![0i64; weights.len()];
    let mut seq = Vec::with_capacity(len);
    for _ in 0..len {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += w;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        seq.push(best as u32);
    }
    seq
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn hash_ring(endpoints: &[Arc<Endpoint>]) -> Vec<(u64, u32)> {
    let total_weight: u64 = endpoints.iter().map(|e| u64::from(e.weight)).sum();
    if total_weight == 0 {
        return Vec::new();
    }
    let per_weight = (RING_MAX_POINTS as u64 / total_weight).clamp(1, u64::from(RING_POINTS_PER_WEIGHT));
    let mut ring = Vec::new();
    for (idx, e) in endpoints.iter().enumerate() {
        // Points are derived from the endpoint URL, so every node builds the same ring.
        let base = e.url.to_string();
        for i in 0..(u64::from(e.weight) * per_weight) {
            ring.push((hash64(format!("{base}#{i}").as_bytes()), idx as u32));
        }
    }
    ring.sort_unstable();
    ring
}

/// FNV-1a followed by a splitmix64 finalizer: stable across nodes and versions.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::HashKey;
    use std::collections::HashMap;

    fn pool(kind: BalancerKind, weights: &[u32]) -> Pool {
        let eps = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let url = format!("http://10.0.0.{i}:80").parse().expect("valid url");
                Arc::new(Endpoint::new(format!("e{i}"), url, *w, EndpointSource::Config))
            })
            .collect();
        Pool::new(kind, eps)
    }

    fn counts(p: &Pool, n: usize, key: impl Fn(usize) -> Option<Vec<u8>>) -> HashMap<String, usize> {
        let mut c = HashMap::new();
        for i in 0..n {
            let k = key(i);
            let e = p.pick(k.as_deref(), &[], |_| true).expect("an endpoint");
            *c.entry(e.id.to_string()).or_default() += 1;
        }
        c
    }

    #[test]
    fn the_host_header_leaves_out_only_the_standard_ports() {
        let host = |u: &str| {
            let e = Endpoint::new("e", u.parse().expect("valid url"), 1, EndpointSource::Config);
            String::from_utf8(e.host_header.to_vec()).expect("ascii")
        };
        assert_eq!(host("http://10.0.0.1:8080/base"), "10.0.0.1:8080");
        assert_eq!(host("http://users.internal"), "users.internal");
        assert_eq!(host("https://users.internal"), "users.internal");
        assert_eq!(host("http://users.internal:443"), "users.internal");
        assert_eq!(host("http://[::1]:9000"), "[::1]:9000");
        assert_eq!(host("http://[::1]"), "[::1]");
    }

    #[test]
    fn round_robin_spreads_evenly() {
        let c = counts(&pool(BalancerKind::RoundRobin, &[1, 1, 1]), 300, |_| None);
        assert!(c.values().all(|v| *v == 100), "{c:?}");
    }

    #[test]
    fn weighted_follows_the_weights_smoothly() {
        let p = pool(BalancerKind::Weighted, &[5, 1, 1]);
        let c = counts(&p, 700, |_| None);
        assert_eq!(c["e0"], 500);
        assert_eq!(c["e1"], 100);
        // Smooth: the heavy endpoint is never picked more than 5 times in a row... and
        // the light ones appear within every period of 7.
        let seq: Vec<_> = (0..7).map(|_| p.pick(None, &[], |_| true).map(|e| e.id.to_string())).collect();
        assert!(seq.iter().any(|s| s.as_deref() == Some("e1")));
    }

    #[test]
    fn least_conn_prefers_the_idle_endpoint() {
        let p = pool(BalancerKind::LeastConn, &[1, 1]);
        let busy = p.pick(None, &[], |_| true).expect("one");
        let _held = InFlight::start(Arc::clone(&busy));
        for _ in 0..10 {
            let e = p.pick(None, &[], |_| true).expect("one");
            assert_ne!(e.id, busy.id);
        }
    }

    #[test]
    fn consistent_hash_is_sticky_and_spreads_keys() {
        let p = pool(BalancerKind::ConsistentHash(HashKey::Ip), &[1, 1, 1]);
        let a = p.pick(Some(b"user-1"), &[], |_| true).expect("one");
        for _ in 0..20 {
            assert_eq!(p.pick(Some(b"user-1"), &[], |_| true).expect("one").id, a.id);
        }
        let c = counts(&p, 3000, |i| Some(format!("k{i}").into_bytes()));
        assert!(c.values().all(|v| *v > 600), "{c:?}");
    }

    #[test]
    fn skips_unhealthy_drained_and_already_tried_endpoints() {
        let p = pool(BalancerKind::RoundRobin, &[1, 0, 1]);
        p.endpoints()[0].set_healthy(false);
        for _ in 0..5 {
            assert_eq!(&*p.pick(None, &[], |_| true).expect("e2").id, "e2");
        }
        assert!(p.pick(None, &["e2".into()], |_| true).is_none());
        assert!(p.pick(None, &[], |e| &*e.id != "e2").is_none());
    }
}
