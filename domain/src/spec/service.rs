//! A service: where its requests come from (prefix, hosts), where they go (endpoints,
//! balancer) and which pipeline steps apply (auth, rate limit, cache, breaker, queue).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use super::{CorsSpec, EndpointSpec, FieldError, IpSpec, MethodList, canonical_path};
use crate::units::{ByteSize, HumanDuration};

/// A service name: 1–64 characters of `[A-Za-z0-9._-]` (used in URLs, metrics and keys).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ServiceName(String);

impl ServiceName {
    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ServiceName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(format!("invalid service name {s:?}: use 1-64 characters of A-Z a-z 0-9 . _ -"))
        }
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ServiceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// Which credentials a service requires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Anyone may call it.
    #[default]
    None,
    /// `Authorization: Bearer <jwt>`.
    Jwt,
    /// The configured API-key header.
    ApiKey,
    /// Either a JWT or an API key.
    Any,
}

/// What a consistent-hash balancer hashes on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HashKey {
    /// The trusted client address.
    Ip,
    /// The authenticated consumer id (falls back to the client address when anonymous).
    Consumer,
    /// The value of a request header (lowercased name).
    Header(String),
    /// The value of a cookie.
    Cookie(String),
}

/// How a service picks one of its endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum BalancerKind {
    /// In turn.
    #[default]
    RoundRobin,
    /// The endpoint with the fewest requests in flight on this node.
    LeastConn,
    /// Smooth weighted round robin over endpoint weights.
    Weighted,
    /// A hash ring (with weights) over the given key: the same key goes to the same endpoint.
    ConsistentHash(HashKey),
}

impl FromStr for BalancerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "invalid balancer {s:?}: expected round_robin, least_conn, weighted or \
                 consistent_hash:<ip|consumer|header:Name|cookie:Name>"
            )
        };
        Ok(match s {
            "round_robin" => Self::RoundRobin,
            "least_conn" => Self::LeastConn,
            "weighted" => Self::Weighted,
            _ => {
                let key = s.strip_prefix("consistent_hash:").ok_or_else(bad)?;
                let valid_name =
                    |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                Self::ConsistentHash(match key {
                    "ip" => HashKey::Ip,
                    "consumer" => HashKey::Consumer,
                    _ => match key.split_once(':') {
                        Some(("header", n)) if valid_name(n) => HashKey::Header(n.to_ascii_lowercase()),
                        Some(("cookie", n)) if valid_name(n) => HashKey::Cookie(n.to_string()),
                        _ => return Err(bad()),
                    },
                })
            }
        })
    }
}

impl fmt::Display for BalancerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RoundRobin => f.write_str("round_robin"),
            Self::LeastConn => f.write_str("least_conn"),
            Self::Weighted => f.write_str("weighted"),
            Self::ConsistentHash(HashKey::Ip) => f.write_str("consistent_hash:ip"),
            Self::ConsistentHash(HashKey::Consumer) => f.write_str("consistent_hash:consumer"),
            Self::ConsistentHash(HashKey::Header(n)) => write!(f, "consistent_hash:header:{n}"),
            Self::ConsistentHash(HashKey::Cookie(n)) => write!(f, "consistent_hash:cookie:{n}"),
        }
    }
}

impl Serialize for BalancerKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BalancerKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// The rate-limit policies of a service: none, one, or several checked together.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RateLimitRef(pub Vec<String>);

impl RateLimitRef {
    /// True when the service is not rate limited.
    pub fn is_none(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for RateLimitRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [] => s.serialize_str("none"),
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RateLimitRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let names = match Raw::deserialize(d) {
            Ok(Raw::One(s)) if s == "none" || s.is_empty() => Vec::new(),
            Ok(Raw::One(s)) => vec![s],
            Ok(Raw::Many(v)) => v,
            Err(_) => return Err(de::Error::custom("expected a policy name, a list of policy names, or \"none\"")),
        };
        Ok(Self(names))
    }
}

/// Whose cached responses may be shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheScope {
    /// One entry per consumer: nobody sees another consumer's response.
    Consumer,
    /// One entry for everybody.
    Shared,
}

/// What a request's `Cookie` does where the cache is shared (`[services.cache] cookies`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheCookies {
    /// A request with a `Cookie` bypasses the shared cache (its answer may depend on it).
    #[default]
    Bypass,
    /// The service's answers never depend on cookies: requests are cached as without them.
    Ignore,
}

impl CacheCookies {
    /// Whether this is the default (`bypass`, left out when serialized).
    pub fn is_bypass(&self) -> bool {
        *self == Self::Bypass
    }
}

/// `[services.cache]`: response caching for a service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// Freshness used when the response carries none of its own.
    #[serde(default)]
    pub ttl: Option<HumanDuration>,
    /// Response statuses that may be stored.
    #[serde(default = "default_cache_statuses")]
    pub statuses: Vec<u16>,
    /// Sharing scope; default `consumer` for authenticated services, `shared` otherwise.
    #[serde(default)]
    pub scope: Option<CacheScope>,
    /// Requests with a `Cookie` and a shared entry: `bypass` (default) or `ignore`.
    /// Serialized only when not the default, so nodes without the key read stored specs.
    #[serde(default, skip_serializing_if = "CacheCookies::is_bypass")]
    pub cookies: CacheCookies,
}

fn default_cache_statuses() -> Vec<u16> {
    vec![200]
}

/// `[services.health_check]`: active health checking of each endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// Path requested on each endpoint (GET, 2xx/3xx = healthy).
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Time between checks.
    #[serde(default = "default_health_interval")]
    pub interval: HumanDuration,
    /// Per-check timeout.
    #[serde(default = "default_health_timeout")]
    pub timeout: HumanDuration,
    /// Consecutive failures before an endpoint is marked down.
    #[serde(default = "three")]
    pub unhealthy_after: u32,
    /// Consecutive successes before it is marked up again.
    #[serde(default = "two")]
    pub healthy_after: u32,
}

fn default_health_path() -> String {
    "/health".into()
}
fn default_health_interval() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_health_timeout() -> HumanDuration {
    HumanDuration::secs(2)
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}

/// `[services.circuit_breaker]`: per-endpoint breakers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerSpec {
    /// Failure ratio over `window` that opens the breaker.
    #[serde(default = "default_ratio")]
    pub failure_ratio: f64,
    /// Requests needed in the window before the ratio counts.
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    /// Sliding window for the ratio.
    #[serde(default = "default_cb_window")]
    pub window: HumanDuration,
    /// Consecutive failures that open the breaker regardless of volume (0 = off).
    #[serde(default = "five")]
    pub consecutive_failures: u32,
    /// Time spent open before probing.
    #[serde(default = "default_open_for")]
    pub open_for: HumanDuration,
    /// Probes let through, cluster-wide, while half-open.
    #[serde(default = "three")]
    pub half_open_probes: u32,
    /// Upstream statuses counted as failures besides connect errors and timeouts
    /// (default: every 5xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_statuses: Option<Vec<u16>>,
}

impl CircuitBreakerSpec {
    /// Whether an upstream answer with `status` counts as a failure.
    pub fn is_failure(&self, status: u16) -> bool {
        match &self.failure_statuses {
            Some(list) => list.contains(&status),
            None => (500..600).contains(&status),
        }
    }
}

impl Eq for CircuitBreakerSpec {}
impl std::hash::Hash for CircuitBreakerSpec {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.failure_ratio.to_bits().hash(h);
        (self.min_requests, self.window, self.consecutive_failures, self.open_for, self.half_open_probes).hash(h);
        self.failure_statuses.hash(h);
    }
}

fn default_ratio() -> f64 {
    0.5
}
fn default_min_requests() -> u32 {
    20
}
fn default_cb_window() -> HumanDuration {
    HumanDuration::secs(10)
}
fn five() -> u32 {
    5
}
fn default_open_for() -> HumanDuration {
    HumanDuration::secs(30)
}

/// How a queued request is answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueMode {
    /// `202` with the job id at once.
    #[default]
    Async,
    /// Wait up to `wait` for the result, then `202`.
    Sync,
}

/// A start rate: `count` starts per `per` (a sliding window), e.g. `"100/10s"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateSpec {
    /// Starts allowed per window.
    pub count: u32,
    /// Window length.
    pub per: HumanDuration,
}

impl FromStr for RateSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid rate {s:?}: write COUNT/DURATION, e.g. \"100/10s\"");
        let (n, d) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let d = d.trim();
        // "100/s" means one second.
        let d = if d.starts_with(|c: char| c.is_ascii_digit()) { d.to_string() } else { format!("1{d}") };
        let per: HumanDuration = d.parse().map_err(|_| bad())?;
        if count == 0 || per.0.is_zero() {
            return Err(bad());
        }
        Ok(Self { count, per })
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.per)
    }
}

impl Serialize for RateSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// One `queue.match` entry: `"METHOD /path"` exact, or `"METHOD /path/*"` for a prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueueMatch {
    /// Upper-case method.
    pub method: String,
    /// Client path (or path prefix when `prefix` is set).
    pub path: String,
    /// True for a trailing `/*`.
    pub prefix: bool,
    /// `path` in the canonical form requests are compared in (`canonical_path`).
    canon: String,
}

impl QueueMatch {
    /// Whether a request matches this entry. Paths compare in their canonical form
    /// (`canonical_path`: case, trailing and repeated slashes, `;params`, `%2F` and dot
    /// segments erased), so no spelling the upstream treats as the same path escapes.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        let path = canonical_path(path);
        if self.prefix {
            self.canon == "/"
                || path.strip_prefix(self.canon.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        } else {
            *path == self.canon
        }
    }
}

impl FromStr for QueueMatch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid queue match {s:?}: write \"METHOD /path\" or \"METHOD /path/*\"");
        let (m, p) = s.trim().split_once(' ').ok_or_else(bad)?;
        let p = p.trim();
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) || !p.starts_with('/') {
            return Err(bad());
        }
        let (path, prefix) = match p.strip_suffix("/*") {
            Some(base) => (if base.is_empty() { "/" } else { base }, true),
            None => (p, false),
        };
        let canon = canonical_path(path).into_owned();
        Ok(Self { method: m.to_ascii_uppercase(), path: path.to_string(), prefix, canon })
    }
}

impl fmt::Display for QueueMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix {
            write!(f, "{} {}/*", self.method, self.path.trim_end_matches('/'))
        } else {
            write!(f, "{} {}", self.method, self.path)
        }
    }
}

impl Serialize for QueueMatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for QueueMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// `[services.queue]`: requests that become jobs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    /// Which requests are queued.
    #[serde(rename = "match")]
    pub matches: Vec<QueueMatch>,
    /// `async` or `sync`.
    #[serde(default)]
    pub mode: QueueMode,
    /// `sync`: how long to wait for the result before answering `202`.
    #[serde(default = "default_wait")]
    pub wait: HumanDuration,
    /// Cluster-wide start rate.
    #[serde(default = "default_rate")]
    pub rate: RateSpec,
    /// Jobs run at once per node.
    #[serde(default = "four")]
    pub concurrency: u32,
    /// Queued jobs above which new ones are refused.
    #[serde(default = "default_max_depth")]
    pub max_depth: u64,
    /// Runs before a job goes to the dead-letter list.
    #[serde(default = "three")]
    pub max_attempts: u32,
    /// How long a worker holds a job before it is considered lost.
    #[serde(default = "default_lease")]
    pub lease: HumanDuration,
    /// How long results are kept.
    #[serde(default = "default_result_ttl")]
    pub result_ttl: HumanDuration,
}

fn default_wait() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_rate() -> RateSpec {
    RateSpec { count: 100, per: HumanDuration::secs(10) }
}
fn four() -> u32 {
    4
}
fn default_max_depth() -> u64 {
    10_000
}
fn default_lease() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_result_ttl() -> HumanDuration {
    HumanDuration::secs(3600)
}

/// A `[[services]]` table / admin service object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Unique name.
    pub name: ServiceName,
    /// Client path prefix; default `/api/{name}`. Filled in by `validate`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Remove the prefix before forwarding.
    #[serde(default = "yes")]
    pub strip_prefix: bool,
    /// Optional `Host` names this service answers for (`*.example.com` allowed).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Upstream endpoints.
    #[serde(default)]
    pub endpoints: Vec<EndpointSpec>,
    /// Balancer.
    #[serde(default)]
    pub balancer: BalancerKind,
    /// Required credentials.
    #[serde(default)]
    pub auth: AuthMode,
    /// Rate-limit policies.
    #[serde(default)]
    pub rate_limit: RateLimitRef,
    /// Upstream timeout (connect + until response headers).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Extra attempts for idempotent requests that failed to connect.
    #[serde(default = "one")]
    pub retries: u32,
    /// Response caching.
    #[serde(default)]
    pub cache: Option<CacheSpec>,
    /// Active health checks.
    #[serde(default)]
    pub health_check: Option<HealthCheckSpec>,
    /// Per-endpoint circuit breakers.
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    /// Job queue for heavy endpoints.
    #[serde(default)]
    pub queue: Option<QueueSpec>,
    // Wave-2 policies (SPEC §17), left out when unset so older nodes read stored services.
    /// Accepted methods (`None`: all); others get 405.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<MethodList>,
    /// Largest request body, instead of `node.max_body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<ByteSize>,
    /// Client address rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpSpec>,
    /// Browser cross-origin access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSpec>,
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn default_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}

impl ServiceSpec {
    /// A minimal service with defaults for everything but name and endpoints.
    pub fn new(name: ServiceName, endpoints: Vec<EndpointSpec>) -> Self {
        Self {
            name,
            prefix: None,
            strip_prefix: true,
            hosts: Vec::new(),
            endpoints,
            balancer: BalancerKind::RoundRobin,
            auth: AuthMode::None,
            rate_limit: RateLimitRef::default(),
            timeout: default_timeout(),
            retries: 1,
            cache: None,
            health_check: None,
            circuit_breaker: None,
            queue: None,
            methods: None,
            max_body: None,
            ip: None,
            cors: None,
        }
    }

    /// The effective prefix (after `validate`, always set).
    pub fn effective_prefix(&self) -> String {
        self.prefix.clone().unwrap_or_else(|| format!("/api/{}", self.name))
    }

    /// Checks cross-field rules and normalizes (fills the default prefix, lowercases
    /// hosts, trims a trailing slash off the prefix). Errors name the field.
    pub fn validate(mut self) -> Result<Self, FieldError> {
        let prefix = normalize_prefix(&self.effective_prefix()).map_err(|m| FieldError::new("prefix", m))?;
        self.prefix = Some(prefix);
        for (i, h) in self.hosts.iter_mut().enumerate() {
            *h = normalize_host(h).map_err(|m| FieldError::new(format!("hosts[{i}]"), m))?;
        }
        if self.timeout.0.is_zero() {
            return Err(FieldError::new("timeout", "must be greater than 0"));
        }
        if self.retries > 10 {
            return Err(FieldError::new("retries", "must be between 0 and 10"));
        }
        if let Some(c) = &self.cache {
            if c.statuses.is_empty() {
                return Err(FieldError::new("cache.statuses", "must list at least one status"));
            }
            if let Some(i) = c.statuses.iter().position(|s| !(100..=599).contains(s)) {
                return Err(FieldError::new(format!("cache.statuses[{i}]"), "must be an HTTP status (100-599)"));
            }
        }
        if let Some(h) = &self.health_check {
            if !h.path.starts_with('/') {
                return Err(FieldError::new("health_check.path", "must start with '/'"));
            }
            if h.interval.0 < std::time::Duration::from_millis(100) {
                return Err(FieldError::new("health_check.interval", "must be at least 100ms"));
            }
            if h.timeout.0.is_zero() {
                return Err(FieldError::new("health_check.timeout", "must be greater than 0"));
            }
            if h.unhealthy_after == 0 {
                return Err(FieldError::new("health_check.unhealthy_after", "must be at least 1"));
            }
            if h.healthy_after == 0 {
                return Err(FieldError::new("health_check.healthy_after", "must be at least 1"));
            }
        }
        if let Some(cb) = &self.circuit_breaker {
            if !(cb.failure_ratio > 0.0 && cb.failure_ratio <= 1.0) {
                return Err(FieldError::new("circuit_breaker.failure_ratio", "must be in (0, 1]"));
            }
            if cb.min_requests == 0 {
                return Err(FieldError::new("circuit_breaker.min_requests", "must be at least 1"));
            }
            if cb.window.0.is_zero() {
                return Err(FieldError::new("circuit_breaker.window", "must be greater than 0"));
            }
            if cb.open_for.0.is_zero() {
                return Err(FieldError::new("circuit_breaker.open_for", "must be greater than 0"));
            }
            if cb.half_open_probes == 0 {
                return Err(FieldError::new("circuit_breaker.half_open_probes", "must be at least 1"));
            }
            if let Some(i) = cb.failure_statuses.iter().flatten().position(|s| !(100..=599).contains(s)) {
                return Err(FieldError::new(
                    format!("circuit_breaker.failure_statuses[{i}]"),
                    "must be an HTTP status",
                ));
            }
        }
        if let Some(q) = &self.queue {
            if q.matches.is_empty() {
                return Err(FieldError::new("queue.match", "must list at least one \"METHOD /path\""));
            }
            if q.concurrency == 0 {
                return Err(FieldError::new("queue.concurrency", "must be at least 1"));
            }
            if q.max_depth == 0 {
                return Err(FieldError::new("queue.max_depth", "must be at least 1"));
            }
            if q.max_attempts == 0 {
                return Err(FieldError::new("queue.max_attempts", "must be at least 1"));
            }
            if q.lease.0 < std::time::Duration::from_secs(1) {
                return Err(FieldError::new("queue.lease", "must be at least 1s"));
            }
        }
        super::bounds::check(&self)?;
        super::policy_checks::check(&self)?;
        Ok(self)
    }
}

/// Normalizes a route prefix: must start with `/`, no query, no dot segments, no
/// trailing slash (except the root `/`).
pub fn normalize_prefix(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!("prefix {p:?} must start with '/'"));
    }
    if p.contains(['?', '#', ' ', '\t']) || p.contains("//") {
        return Err(format!("prefix {p:?} must be a plain path (no query, spaces or empty segments)"));
    }
    if p.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!("prefix {p:?} must not contain . or .. segments"));
    }
    let t = p.trim_end_matches('/');
    Ok(if t.is_empty() { "/".to_string() } else { t.to_string() })
}

fn normalize_host(h: &str) -> Result<String, String> {
    let h = h.trim().to_ascii_lowercase();
    let body = h.strip_prefix("*.").unwrap_or(&h);
    let ok = !body.is_empty()
        && body.len() <= 253
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok { Ok(h) } else { Err(format!("invalid host {h:?}: a DNS name, optionally starting with \"*.\"")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ServiceSpec, String> {
        let s: ServiceSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
        s.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn service_defaults_fill_the_prefix_and_strip_it() {
        let s = parse(r#"{"name":"users","endpoints":["http://127.0.0.1:3000"]}"#).expect("valid");
        assert_eq!(s.prefix.as_deref(), Some("/api/users"));
        assert!(s.strip_prefix);
        assert_eq!(s.balancer, BalancerKind::RoundRobin);
        assert_eq!(s.retries, 1);
        assert!(s.rate_limit.is_none());
    }

    #[test]
    fn cache_cookies_default_to_bypass_and_only_take_known_values() {
        let spec = |cache: &str| {
            parse(&format!(r#"{{"name":"c","endpoints":["http://127.0.0.1:3000"],"cache":{cache}}}"#))
                .map(|s| s.cache.expect("cache"))
        };
        let default = spec("{}").expect("valid");
        assert_eq!(default.cookies, CacheCookies::Bypass);
        assert!(serde_json::to_value(&default).expect("json").get("cookies").is_none(), "default left out");
        let ignore = spec(r#"{"cookies":"ignore"}"#).expect("valid");
        assert_eq!(ignore.cookies, CacheCookies::Ignore);
        assert_eq!(serde_json::to_value(&ignore).expect("json")["cookies"], "ignore");
        assert!(spec(r#"{"cookies":"sometimes"}"#).is_err());
    }

    #[test]
    fn balancers_parse_every_documented_form() {
        for (text, want) in [
            ("round_robin", BalancerKind::RoundRobin),
            ("least_conn", BalancerKind::LeastConn),
            ("weighted", BalancerKind::Weighted),
            ("consistent_hash:ip", BalancerKind::ConsistentHash(HashKey::Ip)),
            ("consistent_hash:consumer", BalancerKind::ConsistentHash(HashKey::Consumer)),
            ("consistent_hash:header:X-User", BalancerKind::ConsistentHash(HashKey::Header("x-user".into()))),
            ("consistent_hash:cookie:sid", BalancerKind::ConsistentHash(HashKey::Cookie("sid".into()))),
        ] {
            assert_eq!(text.parse::<BalancerKind>().as_ref(), Ok(&want));
        }
        for bad in ["random", "consistent_hash", "consistent_hash:", "consistent_hash:header:"] {
            assert!(bad.parse::<BalancerKind>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_services_name_the_field() {
        let e = parse(r#"{"name":"a","prefix":"api"}"#).expect_err("relative prefix");
        assert!(e.starts_with("prefix:"), "{e}");
        let e = parse(r#"{"name":"a","endpoints":["http://ok:1","gopher://x"]}"#).expect_err("bad url");
        assert!(e.contains("scheme"), "{e}");
        let e = parse(r#"{"name":"a","nope":1}"#).expect_err("unknown field");
        assert!(e.contains("unknown field"), "{e}");
        let e = parse(r#"{"name":"a b"}"#).expect_err("bad name");
        assert!(e.contains("invalid service name"), "{e}");
    }

    #[test]
    fn rate_limit_accepts_none_one_or_many() {
        let s = parse(r#"{"name":"a","rate_limit":"none"}"#).expect("none");
        assert!(s.rate_limit.is_none());
        let s = parse(r#"{"name":"a","rate_limit":["s","h"]}"#).expect("many");
        assert_eq!(s.rate_limit.0, vec!["s".to_string(), "h".to_string()]);
    }

    #[test]
    fn queue_matches_exact_and_prefix_paths() {
        let m: QueueMatch = "POST /api/reports/heavy".parse().expect("valid");
        assert!(m.matches("POST", "/api/reports/heavy"));
        assert!(!m.matches("GET", "/api/reports/heavy"));
        assert!(!m.matches("POST", "/api/reports/heavy/1"));
        let p: QueueMatch = "POST /api/jobs/*".parse().expect("valid");
        assert!(p.matches("post", "/api/jobs/1"));
        assert!(!p.matches("POST", "/api/jobsx"));
        for bypass in [
            "/api/reports/heavy/",
            "/API/Reports/HEAVY",
            "//api/reports//heavy",
            "/api/reports/heavy;x",
            "/api/reports/heavy%2f",
        ] {
            assert!(m.matches("POST", bypass), "{bypass}");
        }
        assert!(p.matches("POST", "/API/jobs/1/") && p.matches("POST", "/api/jobs"));
        assert!(!m.matches("POST", "/api/reports/heavy2"));
        assert_eq!("100/10s".parse::<RateSpec>().map(|r| r.count), Ok(100));
        assert_eq!("20/s".parse::<RateSpec>().map(|r| r.per.0.as_secs()), Ok(1));
    }
}
