//! The route table: an immutable snapshot mapping (path, host) to a service and its
//! endpoint pool. Built by the registry actor, read lock-free by the request path.
//!
//! Matching: longest prefix on whole path segments; among routes with the same prefix a
//! route naming the request's host wins over a host-less one; a route with hosts never
//! matches another host.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::balancer::{Endpoint, EndpointSource, Pool};
use crate::ratelimit::{PolicyRegistry, RatePolicy};
use crate::spec::{FieldError, ServiceSpec};

/// A route's rate-limit policies, resolved when the route is built.
#[derive(Debug)]
pub enum RouteLimits {
    /// The service's policies in order (empty: not limited).
    Policies(Box<[Arc<RatePolicy>]>),
    /// The service names a policy this node does not define (a service stored by a node
    /// with another config): its requests are refused, never silently unlimited.
    Unknown(Arc<str>),
}

/// One routable service.
#[derive(Debug)]
pub struct Route {
    /// The registry entry this route was built from.
    pub entry: Arc<ServiceEntry>,
    /// The service name, shared (cheap to clone into metrics labels and logs).
    pub name: Arc<str>,
    /// The full service definition.
    pub spec: Arc<ServiceSpec>,
    /// Normalized prefix (`/` or `/a/b` without trailing slash).
    pub prefix: Arc<str>,
    /// Endpoints and balancer state.
    pub pool: Pool,
    /// The service's rate-limit policies.
    pub limits: RouteLimits,
}

impl Route {
    /// Builds the route for `entry`, reusing endpoints of `old` whose id, URL and weight
    /// did not change. Health comes from the entry.
    fn from_entry(entry: Arc<ServiceEntry>, old: Option<&Pool>, policies: &PolicyRegistry) -> Self {
        let spec = Arc::clone(&entry.spec);
        let limits = match policies.resolve(&spec.rate_limit.0) {
            Ok(list) => RouteLimits::Policies(list),
            Err(name) => RouteLimits::Unknown(name),
        };
        let endpoints = entry
            .endpoint_list()
            .into_iter()
            .map(|(id, url, weight, source)| {
                let ep = old
                    .and_then(|p| p.endpoints().iter().find(|o| *o.id == *id && o.url == url && o.weight == weight))
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Endpoint::new(id.as_str(), url, weight, source)));
                ep.set_healthy(entry.health.get(&id).copied().unwrap_or(true));
                ep
            })
            .collect();
        Self {
            name: spec.name.as_str().into(),
            prefix: spec.effective_prefix().into(),
            pool: Pool::new(spec.balancer.clone(), endpoints),
            limits,
            spec,
            entry,
        }
    }

    /// Whether the route answers for `host` (a lowercased host name without port).
    fn serves_host(&self, host: &str) -> bool {
        self.spec.hosts.is_empty() || self.spec.hosts.iter().any(|h| host_matches(h, host))
    }

    /// The path to send upstream for a client `path` that matched this route: the
    /// endpoint's base path, then the path with the prefix removed when `strip_prefix`.
    pub fn upstream_path<'a>(&self, path: &'a str) -> &'a str {
        if !self.spec.strip_prefix || &*self.prefix == "/" {
            return path;
        }
        let rest = &path[self.prefix.len().min(path.len())..];
        if rest.is_empty() { "/" } else { rest }
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len() + 1
                && host.ends_with(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        }
        None => pattern == host,
    }
}

/// A registered instance (admin-made or self-registered), as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstanceRecord {
    /// Instance id (unique within its service).
    pub id: String,
    /// Base URL.
    pub url: crate::spec::UpstreamUrl,
    /// Weight (default 1).
    #[serde(default = "one")]
    pub weight: u32,
    /// Heartbeat TTL in ms (0 = never expires).
    #[serde(default)]
    pub ttl_ms: u64,
    /// Expiry on the Redis clock, ms since the epoch (0 = never).
    #[serde(default)]
    pub expires_at: u64,
    /// `admin` or `self`.
    pub source: EndpointSource,
}

fn one() -> u32 {
    1
}

/// A service with everything routing needs: spec, origin, instances, health.
#[derive(Debug, Clone)]
pub struct ServiceEntry {
    /// The definition.
    pub spec: Arc<ServiceSpec>,
    /// Where it was defined.
    pub source: super::Source,
    /// Registered instances, by id.
    pub instances: BTreeMap<String, InstanceRecord>,
    /// Health by endpoint id (absent = healthy).
    pub health: HashMap<String, bool>,
}

impl ServiceEntry {
    /// An entry with no instances and no health data.
    pub fn new(spec: Arc<ServiceSpec>, source: super::Source) -> Self {
        Self { spec, source, instances: BTreeMap::new(), health: HashMap::new() }
    }

    /// Every endpoint as `(id, url, weight, source)`: the spec's, then registered ones.
    pub fn endpoint_list(&self) -> Vec<(String, crate::spec::UpstreamUrl, u32, EndpointSource)> {
        let spec_source = match self.source {
            super::Source::Config => EndpointSource::Config,
            super::Source::Admin => EndpointSource::Admin,
        };
        let name = self.spec.name.as_str();
        let mut out: Vec<_> = self
            .spec
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("{name}-{i}"), e.url.clone(), e.weight, spec_source))
            .collect();
        out.extend(self.instances.values().map(|i| (i.id.clone(), i.url.clone(), i.weight, i.source)));
        out
    }
}

/// Immutable routing snapshot.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Registry version this table reflects.
    pub version: u64,
    /// Routes by prefix; within one prefix, host-specific routes come first.
    by_prefix: HashMap<Arc<str>, Vec<Arc<Route>>>,
    /// All routes, by name.
    by_name: HashMap<Arc<str>, Arc<Route>>,
}

/// What building a table does with a service that clashes with one already added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnClash {
    /// Fail the whole build (validating a change).
    Refuse,
    /// Leave the service out and log it (state that storage already accepted).
    Skip,
}

impl RouteTable {
    /// Builds a table from validated services without instances (config validation).
    pub fn build(
        version: u64,
        services: impl IntoIterator<Item = Arc<ServiceSpec>>,
        previous: Option<&RouteTable>,
        policies: &PolicyRegistry,
    ) -> Result<Self, FieldError> {
        let entries = services.into_iter().map(|s| Arc::new(ServiceEntry::new(s, super::Source::Config)));
        Self::build_entries(version, entries, previous, OnClash::Refuse, policies)
    }

    /// Builds a table from service entries in one pass. A route whose entry is the very
    /// same `Arc` as in `previous` is reused as is, so a change costs one route build plus
    /// map inserts; other routes reuse unchanged endpoints (in-flight counts survive).
    ///
    /// A service naming a rate-limit policy `policies` lacks fails a `Refuse` build; a
    /// `Skip` build keeps its route, which then refuses requests (`RouteLimits::Unknown`).
    pub fn build_entries(
        version: u64,
        entries: impl IntoIterator<Item = Arc<ServiceEntry>>,
        previous: Option<&RouteTable>,
        on_clash: OnClash,
        policies: &PolicyRegistry,
    ) -> Result<Self, FieldError> {
        let mut table = RouteTable { version, ..Default::default() };
        for entry in entries {
            let name: Arc<str> = entry.spec.name.as_str().into();
            let old = previous.and_then(|p| p.by_name.get(&name));
            let route = match old {
                Some(r) if Arc::ptr_eq(&r.entry, &entry) => Arc::clone(r),
                _ => Arc::new(Route::from_entry(entry, old.map(|r| &r.pool), policies)),
            };
            if let RouteLimits::Unknown(policy) = &route.limits {
                let why = format!(
                    "service {:?} names rate-limit policy {policy:?}, which this node does not define",
                    route.name
                );
                if on_clash == OnClash::Refuse {
                    return Err(FieldError::new("rate_limit", why));
                }
                tracing::error!(service = %route.name, policy = %policy, "{why}; its requests are refused until the policy exists");
            }
            let same_prefix = table.by_prefix.entry(Arc::clone(&route.prefix)).or_default();
            let clash = if let Some(other) = same_prefix.iter().find(|r| overlaps(r, &route)) {
                Some(FieldError::new(
                    "prefix",
                    format!(
                        "service {:?} and service {:?} both route prefix {:?} for the same hosts",
                        other.name, route.name, route.prefix
                    ),
                ))
            } else if table.by_name.contains_key(&route.name) {
                Some(FieldError::new("name", "duplicate service name"))
            } else {
                None
            };
            if let Some(e) = clash {
                match on_clash {
                    OnClash::Refuse => return Err(e),
                    OnClash::Skip => {
                        tracing::error!(service = %route.name, error = %e, "service not routable");
                        continue;
                    }
                }
            }
            same_prefix.push(Arc::clone(&route));
            same_prefix.sort_by_key(|r| r.spec.hosts.is_empty());
            table.by_name.insert(Arc::clone(&route.name), route);
        }
        Ok(table)
    }

    /// Finds the route for a request path and host (host as sent; port and case ignored).
    pub fn find(&self, path: &str, host: Option<&str>) -> Option<&Arc<Route>> {
        let host = host.map(strip_port).unwrap_or("");
        // Host names compare case-insensitively; lower-case once, not per route.
        let host: std::borrow::Cow<'_, str> = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(host.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(host)
        };
        let mut candidate = path;
        loop {
            if let Some(routes) = self.by_prefix.get(candidate)
                && let Some(r) = routes.iter().find(|r| r.serves_host(&host))
            {
                return Some(r);
            }
            if candidate == "/" || candidate.is_empty() {
                return None;
            }
            candidate = match candidate.rfind('/') {
                Some(0) => "/",
                Some(i) => &candidate[..i],
                None => return None,
            };
        }
    }

    /// A route by service name.
    pub fn get(&self, name: &str) -> Option<&Arc<Route>> {
        self.by_name.get(name)
    }

    /// All routes (unordered).
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.by_name.values()
    }

    /// Number of services.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when no service is routable.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
}

fn overlaps(a: &Route, b: &Route) -> bool {
    let (ha, hb) = (&a.spec.hosts, &b.spec.hosts);
    (ha.is_empty() && hb.is_empty()) || ha.iter().any(|h| hb.contains(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(json: &str) -> Arc<ServiceSpec> {
        let s: ServiceSpec = serde_json::from_str(json).expect("json");
        Arc::new(s.validate().expect("valid"))
    }

    fn table() -> RouteTable {
        RouteTable::build(
            1,
            [
                svc(r#"{"name":"users","endpoints":["http://u:1"]}"#),
                svc(r#"{"name":"admin-users","prefix":"/api/users/admin","endpoints":["http://a:1"]}"#),
                svc(r#"{"name":"users-eu","prefix":"/api/users","hosts":["eu.example.com"],"endpoints":["http://e:1"]}"#),
                svc(r#"{"name":"root","prefix":"/","hosts":["*.apps.example"],"endpoints":["http://r:1"]}"#),
                svc(r#"{"name":"raw","prefix":"/raw","strip_prefix":false,"endpoints":["http://r:1"]}"#),
            ],
            None,
            &PolicyRegistry::default(),
        )
        .expect("no conflicts")
    }

    fn name(t: &RouteTable, path: &str, host: Option<&str>) -> Option<String> {
        t.find(path, host).map(|r| r.name.to_string())
    }

    #[test]
    fn longest_prefix_on_segment_boundaries_wins() {
        let t = table();
        assert_eq!(name(&t, "/api/users", None).as_deref(), Some("users"));
        assert_eq!(name(&t, "/api/users/7", None).as_deref(), Some("users"));
        assert_eq!(name(&t, "/api/users/admin/1", None).as_deref(), Some("admin-users"));
        assert_eq!(name(&t, "/api/usersx", None), None);
        assert_eq!(name(&t, "/other", None), None);
    }

    #[test]
    fn host_specific_routes_win_and_never_match_other_hosts() {
        let t = table();
        assert_eq!(name(&t, "/api/users/7", Some("EU.example.com:8080")).as_deref(), Some("users-eu"));
        assert_eq!(name(&t, "/x", Some("a.apps.example")).as_deref(), Some("root"));
        assert_eq!(name(&t, "/x", Some("apps.example")), None);
    }

    #[test]
    fn strip_prefix_maps_paths_upstream() {
        let t = table();
        let users = t.get("users").expect("users");
        assert_eq!(users.upstream_path("/api/users/42"), "/42");
        assert_eq!(users.upstream_path("/api/users"), "/");
        let raw = t.get("raw").expect("raw");
        assert_eq!(raw.upstream_path("/raw/a"), "/raw/a");
    }

    #[test]
    fn clashing_prefixes_are_refused() {
        let err = RouteTable::build(
            1,
            [svc(r#"{"name":"a","prefix":"/x"}"#), svc(r#"{"name":"b","prefix":"/x/"}"#)],
            None,
            &PolicyRegistry::default(),
        )
        .expect_err("clash");
        assert_eq!(err.field, "prefix");
    }

    #[test]
    fn rebuilt_tables_keep_unchanged_endpoint_state() {
        let t1 = table();
        let ep = Arc::clone(&t1.get("users").expect("users").pool.endpoints()[0]);
        let _busy = crate::balancer::InFlight::start(Arc::clone(&ep));
        let t2 = RouteTable::build(2, t1.routes().map(|r| Arc::clone(&r.spec)), Some(&t1), &PolicyRegistry::default())
            .expect("ok");
        let again = &t2.get("users").expect("users").pool.endpoints()[0];
        assert!(Arc::ptr_eq(&ep, again));
        assert_eq!(again.in_flight(), 1);
    }

    #[test]
    fn policy_names_resolve_when_routes_are_built_and_unknown_ones_never_pass_silently() {
        let spec: crate::spec::PolicySpec =
            serde_json::from_value(serde_json::json!({"limit": 5, "window": "1s"})).expect("policy");
        let policies = PolicyRegistry::new([("p".to_string(), spec)]);
        let limited = svc(r#"{"name":"a","prefix":"/a","rate_limit":"p","endpoints":["http://u:1"]}"#);
        let t = RouteTable::build(1, [limited], None, &policies).expect("known policy");
        let Some(RouteLimits::Policies(list)) = t.get("a").map(|r| &r.limits) else { panic!("policies resolved") };
        assert_eq!(list.iter().map(|p| &*p.name).collect::<Vec<_>>(), ["p"]);
        assert!(Arc::ptr_eq(&list[0], policies.get("p").expect("registered")), "one shared policy, not a copy");

        let unknown = svc(r#"{"name":"b","prefix":"/b","rate_limit":"gold","endpoints":["http://u:1"]}"#);
        let e = RouteTable::build(1, [Arc::clone(&unknown)], None, &policies).expect_err("refused when validating");
        assert_eq!(e.field, "rate_limit");
        assert!(e.message.contains("\"gold\""), "{}", e.message);
        let entry = Arc::new(ServiceEntry::new(unknown, super::super::Source::Admin));
        let t = RouteTable::build_entries(2, [entry], None, OnClash::Skip, &policies).expect("stored state is kept");
        assert!(matches!(t.get("b").map(|r| &r.limits), Some(RouteLimits::Unknown(n)) if &**n == "gold"));
    }
}
