//! The typed configuration (SPEC §3): read from TOML, overridden by `GATEWAY__A__B`
//! environment variables, secrets resolved, then validated across fields. Every error
//! names the field and, when it comes from the file, the line.

mod bounds;
mod locate;
mod log;
mod secret;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use actors::spec::{AuthMode, FieldError, PolicySpec, ServiceSpec};
use actors::units::{ByteSize, HumanDuration};
use ipnet::IpNet;
use serde::Deserialize;

pub use log::{AccessLogFormat, LogConfig, LogFormat};
pub use secret::Secret;

/// A config file that cannot be used. `field` is empty for syntax errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the field (`services[0].endpoints[1]`).
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.field.is_empty(), self.line) {
            (true, Some(l)) => write!(f, "line {l}: {}", self.message),
            (true, None) => f.write_str(&self.message),
            (false, Some(l)) => write!(f, "{} (line {l}): {}", self.field, self.message),
            (false, None) => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The whole node configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node.
    #[serde(default)]
    pub node: NodeConfig,
    /// Shared state; absent = memory mode.
    pub redis: Option<RedisConfig>,
    /// Admin API.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Credentials.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Rate-limit policies and tiers.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Response cache sizing.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Usage analytics (`/admin/analytics`, the dashboard).
    #[serde(default)]
    pub analytics: AnalyticsConfig,
    /// Trace export.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Services upserted into the registry at start.
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
}

/// `[node]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Node id; default `hostname-pid`.
    pub id: Option<String>,
    /// Main (proxy) listener.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Admin listener.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// actix-web workers; 0 = number of cores.
    #[serde(default)]
    pub workers: usize,
    /// Peers whose `X-Forwarded-For` is believed (CIDRs or single addresses).
    #[serde(default, deserialize_with = "nets")]
    pub trusted_proxies: Vec<IpNet>,
    /// Largest accepted request body.
    #[serde(default = "default_max_body")]
    pub max_body: ByteSize,
    /// Time a client has to send its whole request (head and body).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// Largest accepted header block (all headers together).
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: ByteSize,
    /// Most headers accepted on one request.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// How long in-flight requests may run after SIGTERM.
    #[serde(default = "default_grace")]
    pub shutdown_grace: HumanDuration,
    /// Idle keep-alive time for client connections.
    #[serde(default = "default_keep_alive")]
    pub keep_alive: HumanDuration,
    /// Extra CA certificates (PEM) trusted for `https://` upstreams, besides the public roots.
    pub upstream_ca_file: Option<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: None,
            listen: default_listen(),
            admin_listen: default_admin_listen(),
            workers: 0,
            trusted_proxies: Vec::new(),
            max_body: default_max_body(),
            request_timeout: default_request_timeout(),
            max_header_bytes: default_max_header_bytes(),
            max_headers: default_max_headers(),
            shutdown_grace: default_grace(),
            keep_alive: default_keep_alive(),
            upstream_ca_file: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9901))
}
fn default_max_body() -> ByteSize {
    ByteSize::mib(10)
}
fn default_request_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_max_header_bytes() -> ByteSize {
    ByteSize::kib(32)
}
fn default_max_headers() -> usize {
    100
}
fn default_grace() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_keep_alive() -> HumanDuration {
    HumanDuration::secs(75)
}

/// Redis topology.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisMode {
    /// One server (or a proxy in front of one).
    #[default]
    Standalone,
    /// Sentinel-managed primary.
    Sentinel,
    /// Redis Cluster.
    Cluster,
}

/// `[redis]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` URL (may carry `user:pass@`).
    #[serde(default = "default_redis_url")]
    pub url: Secret,
    /// Topology.
    #[serde(default)]
    pub mode: RedisMode,
    /// Sentinel addresses (`mode = "sentinel"`): `host:port` or
    /// `redis[s]://[user:pass@]host:port`.
    #[serde(default)]
    pub sentinels: Vec<String>,
    /// Password for sentinels whose address carries none (absent: no AUTH to sentinels;
    /// the master's credentials come from `url`).
    pub sentinel_password: Option<Secret>,
    /// Sentinel master name.
    #[serde(default = "default_master_name")]
    pub master_name: String,
    /// Cluster seed nodes (`mode = "cluster"`), as `redis[s]://host:port` (credentials
    /// missing from them come from `url`).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Standalone Redis: the most command connections a node opens (one shared, and one
    /// per thread that sends commands up to this count); Sentinel and Cluster ignore it.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Connect timeout.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Bound on every request-path command.
    #[serde(default = "default_command_timeout")]
    pub command_timeout: HumanDuration,
    /// Prefix of every key.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// CA bundle for `rediss://`.
    pub tls_ca_file: Option<String>,
    /// Client certificate for mutual TLS.
    pub tls_cert_file: Option<String>,
    /// Client key for mutual TLS.
    pub tls_key_file: Option<String>,
}

fn default_redis_url() -> Secret {
    Secret::new("redis://127.0.0.1:6379/0")
}
fn default_master_name() -> String {
    "mymaster".into()
}
fn default_pool_size() -> usize {
    actors::redis::DEFAULT_POOL_SIZE
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration::millis(500)
}
fn default_command_timeout() -> HumanDuration {
    HumanDuration::millis(250)
}
fn default_key_prefix() -> String {
    "gw:".into()
}

/// `[admin]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token for the admin API; required unless `admin_listen` is loopback.
    pub token: Option<Secret>,
}

/// `[auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// JWT verification.
    pub jwt: Option<JwtConfig>,
    /// API keys.
    #[serde(default)]
    pub api_key: ApiKeyConfig,
}

/// `[auth.jwt]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Accepted algorithms.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Accepted `aud` values, when set.
    #[serde(default, deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp` / `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway: HumanDuration,
    /// Claim holding the rate-limit tier.
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Verification keys (several = rotation), matched by `kid`.
    #[serde(default)]
    pub keys: Vec<JwtKeyConfig>,
    /// Optional JWKS endpoint refreshed in the background.
    pub jwks_url: Option<String>,
    /// JWKS refresh period.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh: HumanDuration,
}

fn default_algorithms() -> Vec<String> {
    ["HS256", "RS256", "ES256", "EdDSA"].map(String::from).to_vec()
}
fn default_leeway() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_role_claim() -> String {
    "role".into()
}
fn default_jwks_refresh() -> HumanDuration {
    HumanDuration::secs(300)
}

fn nets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| serde::de::Error::custom(format!("invalid address or CIDR {s:?}")))
        })
        .collect()
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// `[[auth.jwt.keys]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// Key id (`kid` header); optional when one key fits the algorithm family.
    pub kid: Option<String>,
    /// HMAC secret (HS*).
    pub secret: Option<Secret>,
    /// PEM public key (RS*, PS*, ES*, EdDSA).
    pub public_key_pem: Option<Secret>,
}

/// `[auth.api_key]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Header carrying the key.
    #[serde(default = "default_api_key_header")]
    pub header: String,
}

impl Default for ApiKeyConfig {
    fn default() -> Self {
        Self { header: default_api_key_header() }
    }
}

fn default_api_key_header() -> String {
    "X-API-Key".into()
}

/// `[rate_limit]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Named policies.
    #[serde(default)]
    pub policies: BTreeMap<String, PolicySpec>,
    /// Tier (role claim / consumer tier) → policy name.
    #[serde(default)]
    pub tiers: BTreeMap<String, String>,
}

/// `[cache]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// L1 (per node) capacity.
    #[serde(default = "default_l1_capacity")]
    pub l1_capacity: ByteSize,
    /// L1 entry lifetime.
    #[serde(default = "default_l1_ttl")]
    pub l1_ttl: HumanDuration,
    /// Upper bound on any entry's lifetime.
    #[serde(default = "default_cache_ttl")]
    pub default_ttl: HumanDuration,
    /// Largest cacheable body.
    #[serde(default = "default_max_object")]
    pub max_object: ByteSize,
    /// Bodies above this are stored compressed.
    #[serde(default = "default_compress_above")]
    pub compress_above: ByteSize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            l1_capacity: default_l1_capacity(),
            l1_ttl: default_l1_ttl(),
            default_ttl: default_cache_ttl(),
            max_object: default_max_object(),
            compress_above: default_compress_above(),
        }
    }
}

fn default_l1_capacity() -> ByteSize {
    ByteSize::mib(64)
}
fn default_l1_ttl() -> HumanDuration {
    HumanDuration::secs(1)
}
fn default_cache_ttl() -> HumanDuration {
    HumanDuration::secs(1800)
}
fn default_max_object() -> ByteSize {
    ByteSize::mib(1)
}
fn default_compress_above() -> ByteSize {
    ByteSize::kib(4)
}

fn yes() -> bool {
    true
}

/// `[analytics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsConfig {
    /// Collect per-request records and per-minute aggregates.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Approximate length cap of the Redis stream (`XADD MAXLEN ~`); one entry per flush,
    /// holding that flush's records.
    #[serde(default = "default_stream_max_len")]
    pub stream_max_len: u64,
    /// How long per-minute aggregates are kept (memory mode: at most 24h).
    #[serde(default = "default_retention")]
    pub retention: HumanDuration,
    /// Records per Redis flush (a full batch flushes before `flush_interval`).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Longest time between flushes.
    #[serde(default = "default_flush_interval")]
    pub flush_interval: HumanDuration,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            stream_max_len: default_stream_max_len(),
            retention: default_retention(),
            batch: default_batch(),
            flush_interval: default_flush_interval(),
        }
    }
}

fn default_stream_max_len() -> u64 {
    100_000
}
fn default_retention() -> HumanDuration {
    HumanDuration::secs(7 * 24 * 3600)
}
fn default_batch() -> usize {
    256
}
fn default_flush_interval() -> HumanDuration {
    HumanDuration::secs(1)
}

/// `[telemetry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/HTTP collector base URL (`http://host:4318`); spans go to `<url>/v1/traces`.
    /// Absent = no trace export.
    pub otlp_endpoint: Option<String>,
    /// `service.name` resource attribute of exported spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { otlp_endpoint: None, service_name: default_service_name() }
    }
}

fn default_service_name() -> String {
    "gateway".into()
}

impl Config {
    /// Reads, overrides from the process environment, and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            field: String::new(),
            message: format!("cannot read {}: {e}", path.display()),
            line: None,
        })?;
        Self::from_toml(&text, std::env::vars())
    }

    /// Parses `text` with the given environment (`GATEWAY__*` variables apply).
    pub fn from_toml(text: &str, env: impl Iterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| ConfigError {
            field: String::new(),
            message: e.message().to_string(),
            line: e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1)),
        })?;
        let overridden = apply_env(&mut doc, env)?;
        let at = |field: String, message: String| {
            let line = if overridden.iter().any(|o| field.starts_with(o.as_str())) {
                None
            } else {
                locate::line_of(text, &field)
            };
            ConfigError { field, message, line }
        };
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(doc)).map_err(|e| {
            let message = e.inner().message().to_string();
            at(error_field(&e.path().to_string(), &message), message)
        })?;
        config.validate().map_err(|e| at(e.field, e.message))
    }

    /// Cross-field rules; normalizes services (default prefixes).
    fn validate(mut self) -> Result<Self, FieldError> {
        let n = &self.node;
        if n.workers > 1024 {
            return Err(FieldError::new("node.workers", "must be between 0 and 1024"));
        }
        if n.max_body.bytes() == 0 {
            return Err(FieldError::new("node.max_body", "must be greater than 0"));
        }
        if n.max_header_bytes.bytes() < 1024 {
            return Err(FieldError::new("node.max_header_bytes", "must be at least 1KiB"));
        }
        if !(1..=1000).contains(&n.max_headers) {
            return Err(FieldError::new("node.max_headers", "must be between 1 and 1000"));
        }
        if n.request_timeout.0.is_zero() {
            return Err(FieldError::new("node.request_timeout", "must be greater than 0"));
        }
        if let Some(id) = &n.id
            && (id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
        {
            return Err(FieldError::new("node.id", "use 1-64 characters of A-Z a-z 0-9 . _ -"));
        }
        if let Some(path) = &n.upstream_ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| FieldError::new("node.upstream_ca_file", format!("cannot read {path}: {e}")))?;
            crate::proxy::tls_config(Some(&pem)).map_err(|m| FieldError::new("node.upstream_ca_file", m))?;
        }
        if n.listen == n.admin_listen {
            return Err(FieldError::new("node.admin_listen", "must differ from node.listen"));
        }
        if self.admin.token.is_none() && !n.admin_listen.ip().is_loopback() {
            return Err(FieldError::new(
                "admin.token",
                format!("required because node.admin_listen {} is not a loopback address", n.admin_listen),
            ));
        }
        bounds::check(&self)?;
        if let Some(r) = &self.redis {
            validate_redis(r)?;
        }
        for (name, p) in &self.rate_limit.policies {
            let field = |f: &str| format!("rate_limit.policies.{name}.{f}");
            if p.limit == 0 {
                return Err(FieldError::new(field("limit"), "must be at least 1"));
            }
            if p.window.0.as_millis() == 0 {
                return Err(FieldError::new(field("window"), "must be at least 1ms"));
            }
        }
        for (tier, policy) in &self.rate_limit.tiers {
            if !self.rate_limit.policies.contains_key(policy) {
                return Err(FieldError::new(format!("rate_limit.tiers.{tier}"), format!("unknown policy {policy:?}")));
            }
        }
        if let Some(jwt) = &self.auth.jwt {
            validate_jwt(jwt)?;
        }
        self.log.validate()?;
        validate_analytics(&self.analytics)?;
        validate_telemetry(&self.telemetry)?;
        let services = std::mem::take(&mut self.services);
        let mut seen = std::collections::HashSet::new();
        for (i, s) in services.into_iter().enumerate() {
            let at = format!("services[{i}]");
            let s = s.validate().map_err(|e| e.within(&at))?;
            if !seen.insert(s.name.clone()) {
                return Err(FieldError::new(
                    format!("{at}.name"),
                    format!("duplicate service name {:?}", s.name.as_str()),
                ));
            }
            for (j, p) in s.rate_limit.0.iter().enumerate() {
                if !self.rate_limit.policies.contains_key(p) {
                    let f = if s.rate_limit.0.len() == 1 {
                        format!("{at}.rate_limit")
                    } else {
                        format!("{at}.rate_limit[{j}]")
                    };
                    return Err(FieldError::new(f, format!("unknown policy {p:?}; define [rate_limit.policies.{p}]")));
                }
            }
            if matches!(s.auth, AuthMode::Jwt | AuthMode::Any) && self.auth.jwt.is_none() {
                return Err(FieldError::new(format!("{at}.auth"), "needs an [auth.jwt] section"));
            }
            self.services.push(s);
        }
        let specs = self.services.iter().cloned().map(std::sync::Arc::new);
        let policies = actors::ratelimit::PolicyRegistry::new(self.rate_limit.policies.clone());
        if let Err(e) = actors::registry::RouteTable::build(0, specs, None, &policies) {
            let clash = self.services.iter().rposition(|s| e.message.contains(&format!("{:?}", s.name.as_str())));
            return Err(e.within(&format!("services[{}]", clash.unwrap_or(0))));
        }
        Ok(self)
    }

    /// The node id: configured, or `hostname-pid`.
    pub fn node_id(&self) -> String {
        self.node.id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "gateway".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

fn validate_redis(r: &RedisConfig) -> Result<(), FieldError> {
    let url = r.url.expose();
    if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+unix://")) {
        return Err(FieldError::new("redis.url", "must start with redis:// or rediss://"));
    }
    match r.mode {
        RedisMode::Sentinel if r.sentinels.is_empty() => {
            return Err(FieldError::new("redis.sentinels", "mode = \"sentinel\" needs at least one sentinel address"));
        }
        RedisMode::Sentinel => {
            if let Some(i) = r.sentinels.iter().position(|s| s.contains("://") && !is_redis_url(s)) {
                return Err(FieldError::new(format!("redis.sentinels[{i}]"), "must be host:port or a redis:// URL"));
            }
        }
        RedisMode::Cluster => {
            if let Some(i) = r.nodes.iter().position(|n| !is_redis_url(n)) {
                return Err(FieldError::new(format!("redis.nodes[{i}]"), "must be a redis://host:port URL"));
            }
        }
        _ => {}
    }
    if !(1..=1024).contains(&r.pool_size) {
        return Err(FieldError::new("redis.pool_size", "must be between 1 and 1024"));
    }
    if r.command_timeout.0.is_zero() {
        return Err(FieldError::new("redis.command_timeout", "must be greater than 0"));
    }
    if r.connect_timeout.0.is_zero() {
        return Err(FieldError::new("redis.connect_timeout", "must be greater than 0"));
    }
    if r.key_prefix.contains(['{', '}', ' ']) {
        return Err(FieldError::new("redis.key_prefix", "must not contain braces or spaces"));
    }
    if r.tls_cert_file.is_some() != r.tls_key_file.is_some() {
        return Err(FieldError::new("redis.tls_cert_file", "tls_cert_file and tls_key_file go together"));
    }
    Ok(())
}

fn is_redis_url(s: &str) -> bool {
    s.starts_with("redis://") || s.starts_with("rediss://")
}

impl RedisConfig {
    /// The connection settings the actors' `Store` takes.
    pub fn store_config(&self) -> actors::redis::StoreConfig {
        use actors::redis::{StoreConfig, TlsFiles, Topology};
        let topology = match self.mode {
            RedisMode::Standalone => Topology::Standalone,
            RedisMode::Sentinel => Topology::Sentinel {
                sentinels: self.sentinels.clone(),
                master_name: self.master_name.clone(),
                sentinel_password: self.sentinel_password.as_ref().map(|p| p.expose().to_string()),
            },
            RedisMode::Cluster => Topology::Cluster { nodes: self.nodes.clone() },
        };
        StoreConfig {
            url: self.url.expose().to_string(),
            topology,
            tls: TlsFiles {
                ca_file: self.tls_ca_file.as_ref().map(Into::into),
                cert_file: self.tls_cert_file.as_ref().map(Into::into),
                key_file: self.tls_key_file.as_ref().map(Into::into),
            },
            connect_timeout: self.connect_timeout.get(),
            command_timeout: self.command_timeout.get(),
            key_prefix: self.key_prefix.clone(),
            pool_size: self.pool_size,
        }
    }
}

fn validate_analytics(a: &AnalyticsConfig) -> Result<(), FieldError> {
    if !(1..=100_000_000).contains(&a.stream_max_len) {
        return Err(FieldError::new("analytics.stream_max_len", "must be between 1 and 100000000"));
    }
    if a.retention.get() < std::time::Duration::from_secs(60) {
        return Err(FieldError::new("analytics.retention", "must be at least 1m (aggregates are per minute)"));
    }
    if !(1..=10_000).contains(&a.batch) {
        return Err(FieldError::new("analytics.batch", "must be between 1 and 10000"));
    }
    let flush = a.flush_interval.get();
    if flush < std::time::Duration::from_millis(10) || flush > std::time::Duration::from_secs(5) {
        return Err(FieldError::new(
            "analytics.flush_interval",
            "must be between 10ms and 5s (aggregates must include a request within 10 s)",
        ));
    }
    Ok(())
}

fn validate_telemetry(t: &TelemetryConfig) -> Result<(), FieldError> {
    if let Some(u) = &t.otlp_endpoint
        && !u.starts_with("http://")
    {
        return Err(FieldError::new(
            "telemetry.otlp_endpoint",
            "must be an http:// URL of an OTLP/HTTP collector (e.g. http://127.0.0.1:4318)",
        ));
    }
    if t.service_name.is_empty() {
        return Err(FieldError::new("telemetry.service_name", "must not be empty"));
    }
    Ok(())
}

/// Shortest accepted HMAC secret: as long as the SHA-256 output (RFC 7518 §3.2).
const MIN_HMAC_SECRET: usize = 32;

const JWT_ALGORITHMS: [&str; 12] =
    ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

fn validate_jwt(jwt: &JwtConfig) -> Result<(), FieldError> {
    if jwt.algorithms.is_empty() {
        return Err(FieldError::new("auth.jwt.algorithms", "must list at least one algorithm"));
    }
    for (i, a) in jwt.algorithms.iter().enumerate() {
        if !JWT_ALGORITHMS.contains(&a.as_str()) {
            return Err(FieldError::new(
                format!("auth.jwt.algorithms[{i}]"),
                format!(
                    "unsupported algorithm {a:?} (\"none\" is never accepted); use one of {}",
                    JWT_ALGORITHMS.join(", ")
                ),
            ));
        }
    }
    if jwt.keys.is_empty() && jwt.jwks_url.is_none() {
        return Err(FieldError::new("auth.jwt.keys", "give at least one key or a jwks_url"));
    }
    let mut kids = std::collections::HashSet::new();
    for (i, k) in jwt.keys.iter().enumerate() {
        let at = format!("auth.jwt.keys[{i}]");
        match (&k.secret, &k.public_key_pem) {
            (Some(secret), None) if secret.expose().len() < MIN_HMAC_SECRET => {
                return Err(FieldError::new(
                    format!("{at}.secret"),
                    format!(
                        "an HMAC secret must be at least {MIN_HMAC_SECRET} bytes (RFC 7518 §3.2); generate one with `openssl rand -hex 32`"
                    ),
                ));
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => return Err(FieldError::new(at, "give exactly one of secret or public_key_pem")),
        }
        if let Some(kid) = &k.kid
            && !kids.insert(kid.clone())
        {
            return Err(FieldError::new(format!("{at}.kid"), format!("duplicate kid {kid:?}")));
        }
    }
    if let Some(u) = &jwt.jwks_url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        return Err(FieldError::new("auth.jwt.jwks_url", "must be an http(s) URL"));
    }
    if jwt.jwks_refresh.get() < std::time::Duration::from_secs(1) {
        return Err(FieldError::new("auth.jwt.jwks_refresh", "must be at least 1s"));
    }
    if let Err((i, message)) = actors::auth::JwtVerifier::new(&jwt.settings()) {
        return Err(FieldError::new(format!("auth.jwt.keys[{i}].public_key_pem"), message));
    }
    Ok(())
}

impl JwtConfig {
    /// The verifier settings this section describes.
    pub fn settings(&self) -> actors::auth::JwtSettings {
        use actors::auth::{KeyMaterial, KeySpec};
        actors::auth::JwtSettings {
            algorithms: self.algorithms.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_secs: self.leeway.get().as_secs(),
            role_claim: self.role_claim.clone(),
            keys: self
                .keys
                .iter()
                .map(|k| KeySpec {
                    kid: k.kid.clone(),
                    material: match (&k.secret, &k.public_key_pem) {
                        (Some(secret), _) => KeyMaterial::Secret(secret.expose().as_bytes().to_vec()),
                        (None, Some(pem)) => KeyMaterial::PublicPem(pem.expose().as_bytes().to_vec()),
                        (None, None) => KeyMaterial::Secret(Vec::new()),
                    },
                })
                .collect(),
        }
    }
}

/// The field a deserialization error is about: serde's path, completed with the name of
/// an unknown or missing field when the path stops at its parent. Empty for the document
/// root.
pub fn error_field(path: &str, message: &str) -> String {
    let path = if path == "." { "" } else { path };
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|m| m.split('`').next());
    match named {
        Some(name) if !path.ends_with(name) => {
            if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            }
        }
        _ => path.to_string(),
    }
}

/// Applies `GATEWAY__A__B=value` overrides; returns the overridden field paths.
fn apply_env(doc: &mut toml::Table, env: impl Iterator<Item = (String, String)>) -> Result<Vec<String>, ConfigError> {
    let mut applied = Vec::new();
    let mut vars: Vec<_> = env.filter(|(k, _)| k.starts_with("GATEWAY__")).collect();
    vars.sort();
    for (key, raw) in vars {
        let segs: Vec<String> = key["GATEWAY__".len()..].split("__").map(|s| s.to_ascii_lowercase()).collect();
        let field = segs.iter().fold(String::new(), |acc, s| {
            if s.bytes().all(|b| b.is_ascii_digit()) {
                format!("{acc}[{s}]")
            } else if acc.is_empty() {
                s.clone()
            } else {
                format!("{acc}.{s}")
            }
        });
        let bad = |m: &str| ConfigError {
            field: field.clone(),
            message: format!("{m} (from environment variable {key})"),
            line: None,
        };
        if segs.iter().any(String::is_empty) {
            return Err(bad("empty path segment"));
        }
        let value = parse_env_value(&raw);
        let mut slot: &mut toml::Value =
            doc.entry(segs[0].clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        for seg in &segs[1..] {
            slot = match slot {
                toml::Value::Table(t) => t.entry(seg.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new())),
                toml::Value::Array(a) => {
                    let i: usize = seg.parse().map_err(|_| bad("expected an array index"))?;
                    a.get_mut(i).ok_or_else(|| bad("array index out of range"))?
                }
                _ => return Err(bad("cannot override inside a plain value")),
            };
        }
        *slot = value;
        applied.push(field);
    }
    Ok(applied)
}

/// An env value is TOML when it parses as a TOML value (number, bool, array, inline
/// table, quoted string); anything else is taken as a plain string.
fn parse_env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests;
