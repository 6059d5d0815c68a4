//! The policy registry: every `[rate_limit.policies.<name>]` of the node, prepared once
//! (its response header values and decision counters made at start), shared by the route
//! table (a service's `rate_limit` names resolve to `Arc<RatePolicy>` when its route is
//! built), the request path, the `RateLimiter` actor and the admin API.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;

use crate::names::M_RATELIMIT_DECISIONS;
use crate::spec::PolicySpec;

/// One named policy with what the request path needs of it made once.
#[derive(Debug)]
pub struct RatePolicy {
    /// The policy's name.
    pub name: Arc<str>,
    /// The policy.
    pub spec: PolicySpec,
    /// Its `RateLimit-Policy` item (`"name";q=100;w=60`).
    pub header: String,
    /// The same item as a header value (when it is a valid one).
    pub header_value: Option<HeaderValue>,
    /// `X-RateLimit-Limit`.
    pub limit_value: HeaderValue,
    /// `gateway_ratelimit_decisions_total{policy, result}`: allowed, limited.
    decisions: [metrics::Counter; 2],
}

impl RatePolicy {
    /// Prepares policy `name`.
    pub fn new(name: &str, spec: PolicySpec) -> Self {
        let header = format!("\"{name}\";q={};w={}", spec.limit, spec.window.get().as_secs().max(1));
        let label = Arc::<str>::from(name);
        let decisions = ["allowed", "limited"]
            .map(|result| metrics::counter!(M_RATELIMIT_DECISIONS, "policy" => Arc::clone(&label), "result" => result));
        Self {
            // Made once; a clone per limited request is a reference count, and nothing is
            // leaked (configs are also validated, and later reloaded, many times).
            header_value: HeaderValue::from_str(&header).ok(),
            limit_value: HeaderValue::from(spec.limit),
            name: label,
            spec,
            header,
            decisions,
        }
    }

    /// Counts one decision of this policy.
    pub fn count(&self, allowed: bool) {
        self.decisions[usize::from(!allowed)].increment(1);
    }
}

/// The node's policies by name: the one registry every reader shares (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct PolicyRegistry(Arc<HashMap<String, Arc<RatePolicy>>>);

impl PolicyRegistry {
    /// The registry of `policies` (validated by the config).
    pub fn new(policies: impl IntoIterator<Item = (String, PolicySpec)>) -> Self {
        Self(Arc::new(
            policies.into_iter().map(|(name, spec)| (name.clone(), Arc::new(RatePolicy::new(&name, spec)))).collect(),
        ))
    }

    /// The policy called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<RatePolicy>> {
        self.0.get(name)
    }

    /// Whether a policy called `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Every policy name, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Resolves a service's policy names: the policies in order, or the first unknown name.
    pub fn resolve<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Result<Box<[Arc<RatePolicy>]>, Arc<str>> {
        names.into_iter().map(|n| self.get(n).cloned().ok_or_else(|| Arc::<str>::from(n.as_str()))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(limit: u64, window: &str) -> PolicySpec {
        serde_json::from_value(serde_json::json!({"limit": limit, "window": window})).expect("valid policy")
    }

    #[test]
    fn a_policy_prepares_its_headers_once() {
        let p = RatePolicy::new("gold", spec(100, "1m"));
        assert_eq!(p.header, "\"gold\";q=100;w=60");
        assert_eq!(p.header_value.as_ref().map(HeaderValue::as_bytes), Some(&b"\"gold\";q=100;w=60"[..]));
        assert_eq!(p.limit_value.as_bytes(), b"100");
    }

    #[test]
    fn resolving_keeps_the_order_and_names_the_first_unknown_policy() {
        let reg = PolicyRegistry::new([("a".to_string(), spec(1, "1s")), ("b".to_string(), spec(2, "1s"))]);
        let names = ["b".to_string(), "a".to_string()];
        let got = reg.resolve(&names).expect("both known");
        assert_eq!(got.iter().map(|p| &*p.name).collect::<Vec<_>>(), ["b", "a"]);
        let names = ["a".to_string(), "nope".to_string(), "zzz".to_string()];
        assert_eq!(reg.resolve(&names).expect_err("unknown").as_ref(), "nope");
        assert_eq!(reg.names(), ["a", "b"]);
        assert!(reg.resolve(&[]).expect("none").is_empty());
    }
}
