//! `[services.cors]` (SPEC §17): which browser origins may call a service, with which
//! methods and headers. The gateway answers preflights itself and adds the
//! `Access-Control-*` headers to every answer of an allowed origin.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use super::{FieldError, MethodList};
use crate::units::HumanDuration;
use crate::units::bounds::MAX_PERIOD;

/// One `origins` entry: `*`, an exact origin (`https://app.example.com`, with a port when
/// not the scheme's default), or the subdomains of a name (`*.example.com` for any
/// scheme, `https://*.example.com` for one; a port is matched when given).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OriginPattern {
    /// Every origin.
    Any,
    /// One origin, lower-case, without the default port.
    Exact(String),
    /// Origins whose host ends with `suffix` (`.example.com`, with `:port` when given)
    /// below at least one more label; `scheme` when given must match too.
    Subdomains {
        /// `https`, `http`, ... (`None`: any).
        scheme: Option<String>,
        /// `.example.com` or `.example.com:8443`.
        suffix: String,
    },
}

impl OriginPattern {
    /// Whether the `Origin` value `origin` (as the browser sent it) matches.
    pub fn matches(&self, origin: &str) -> bool {
        match self {
            // An opaque origin (`null`: sandboxed frames, files) is never a wildcard match.
            Self::Any => origin != "null",
            Self::Exact(o) => o.eq_ignore_ascii_case(origin),
            Self::Subdomains { scheme, suffix } => {
                let Some((sc, rest)) = origin.split_once("://") else { return false };
                if scheme.as_ref().is_some_and(|want| !want.eq_ignore_ascii_case(sc)) || sc.is_empty() {
                    return false;
                }
                let Some(label) = rest.len().checked_sub(suffix.len()).and_then(|n| rest.get(..n)) else {
                    return false;
                };
                !label.is_empty()
                    && rest[label.len()..].eq_ignore_ascii_case(suffix)
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            }
        }
    }
}

fn dns_name(h: &str) -> bool {
    !h.is_empty() && h.len() <= 253 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn ip_literal(h: &str) -> bool {
    h.strip_prefix('[').and_then(|r| r.strip_suffix(']')).is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
}

/// Splits `host[:port]`; the port must be 1-65535.
fn host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match s.rfind(':').filter(|i| !s[*i..].contains(']')) {
        Some(i) => (&s[..i], Some(s[i + 1..].parse::<u16>().ok().filter(|p| *p > 0)?)),
        None => (s, None),
    };
    Some((host, port))
}

impl FromStr for OriginPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!(
                "invalid origin {s:?}: {why}; write \"scheme://host[:port]\", \"*.example.com\", \
                 \"https://*.example.com\" or \"*\""
            )
        };
        let t = s.trim().to_ascii_lowercase();
        if t == "*" {
            return Ok(Self::Any);
        }
        let (scheme, rest) = match t.split_once("://") {
            Some((sc, rest)) => {
                let ok = sc.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                    && sc.bytes().all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b));
                if !ok {
                    return Err(bad("the scheme is not valid"));
                }
                (Some(sc.to_string()), rest)
            }
            None if t.starts_with("*.") => (None, t.as_str()),
            None => return Err(bad("an exact origin needs its scheme")),
        };
        if rest.contains(['/', '?', '#', '@', ' ', '\t']) {
            return Err(bad("an origin has no path, query or user (no trailing '/')"));
        }
        let (host, port) = host_port(rest).ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
        let default_port = match scheme.as_deref() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => None,
        };
        let port = port.filter(|p| Some(*p) != default_port);
        let with_port = |h: &str| match port {
            Some(p) => format!("{h}:{p}"),
            None => h.to_string(),
        };
        if let Some(base) = host.strip_prefix("*.") {
            if !dns_name(base) || base.starts_with('.') || base.contains("..") {
                return Err(bad("the name after \"*.\" is not a DNS name"));
            }
            return Ok(Self::Subdomains { scheme, suffix: with_port(&format!(".{base}")) });
        }
        if !(dns_name(host) || ip_literal(host)) {
            return Err(bad("the host is not a DNS name or an address"));
        }
        let scheme = scheme.unwrap_or_default();
        Ok(Self::Exact(format!("{scheme}://{}", with_port(host))))
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(o) => f.write_str(o),
            Self::Subdomains { scheme: Some(sc), suffix } => write!(f, "{sc}://*{suffix}"),
            Self::Subdomains { scheme: None, suffix } => write!(f, "*{suffix}"),
        }
    }
}

impl Serialize for OriginPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OriginPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// A header name as an operator writes it (case kept for the answer; compared without
/// case), or `*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeaderToken(String);

impl HeaderToken {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the wildcard `*`.
    pub fn is_wildcard(&self) -> bool {
        self.0 == "*"
    }
}

impl FromStr for HeaderToken {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if s == "*" || ((1..=128).contains(&s.len()) && s.bytes().all(tchar) && !s.contains('*')) {
            Ok(Self(s.to_string()))
        } else {
            Err(format!("invalid header name {s:?}: 1-128 characters of A-Z a-z 0-9 and !#$%&'+-.^_`|~, or \"*\""))
        }
    }
}

impl Serialize for HeaderToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for HeaderToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// `[services.cors]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSpec {
    /// Origins allowed to call the service.
    pub origins: Vec<OriginPattern>,
    /// Methods a preflight may ask for (`None`: the service's `methods`, or any).
    #[serde(default)]
    pub methods: Option<MethodList>,
    /// Request headers a preflight may ask for (`None` or `*`: any, echoed).
    #[serde(default)]
    pub headers: Option<Vec<HeaderToken>>,
    /// Response headers scripts may read besides the safelisted ones.
    #[serde(default)]
    pub expose_headers: Vec<HeaderToken>,
    /// Whether requests with cookies or credentials may read answers.
    #[serde(default)]
    pub credentials: bool,
    /// How long a browser may cache a preflight answer (`None`: the browser's default).
    #[serde(default)]
    pub max_age: Option<HumanDuration>,
}

impl CorsSpec {
    /// Whether the `Origin` value may call the service.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o.matches(origin))
    }

    /// Whether every allowed origin gets `Access-Control-Allow-Origin: *` (a `*` entry
    /// without credentials; with credentials the origin is echoed, as Fetch requires).
    pub fn any_origin(&self) -> bool {
        !self.credentials && self.origins.contains(&OriginPattern::Any)
    }

    /// The methods a preflight may ask for: `cors.methods`, else the service's `methods`
    /// (`None`: any method).
    pub fn methods<'a>(&'a self, service: Option<&'a MethodList>) -> Option<&'a MethodList> {
        self.methods.as_ref().or(service)
    }

    /// Whether a preflight may ask for request header `name`.
    pub fn allows_header(&self, name: &str) -> bool {
        self.headers.as_ref().is_none_or(|l| l.iter().any(|h| h.is_wildcard() || h.0.eq_ignore_ascii_case(name)))
    }

    /// Whether requested headers are echoed (`headers` absent or `*`).
    pub fn echoes_headers(&self) -> bool {
        self.headers.as_ref().is_none_or(|l| l.iter().any(HeaderToken::is_wildcard))
    }

    /// Cross-field rules; `service` is the service's `methods`. Errors name `cors.*`.
    pub fn validate(&self, service: Option<&MethodList>) -> Result<(), FieldError> {
        if self.origins.is_empty() {
            return Err(FieldError::new("cors.origins", "must list at least one origin (\"*\" for any)"));
        }
        if let Some(m) = &self.methods {
            m.validate("cors.methods")?;
            if let Some(service) = service
                && let Some(i) = m.0.iter().position(|m| !service.allows(m.as_str()))
            {
                return Err(FieldError::new(
                    format!("cors.methods[{i}]"),
                    format!("{} is not in the service's methods: the request would get 405", m.0[i]),
                ));
            }
        }
        if self.credentials
            && let Some(i) = self.expose_headers.iter().position(HeaderToken::is_wildcard)
        {
            return Err(FieldError::new(
                format!("cors.expose_headers[{i}]"),
                "\"*\" is no wildcard for requests with credentials (Fetch): list the headers",
            ));
        }
        if let Some(age) = self.max_age {
            crate::units::at_most("cors.max_age", age.get(), MAX_PERIOD)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &str) -> OriginPattern {
        s.parse().expect("origin pattern")
    }

    #[test]
    fn origins_match_exactly_by_subdomain_or_all() {
        let exact = origin("https://App.example.com:443");
        assert_eq!(exact.to_string(), "https://app.example.com", "lower-case, default port dropped");
        assert!(exact.matches("https://app.example.com"));
        assert!(!exact.matches("http://app.example.com") && !exact.matches("https://app.example.com:8443"));
        let sub = origin("*.example.com");
        assert!(sub.matches("https://a.example.com") && sub.matches("http://a.b.example.com"));
        assert!(!sub.matches("https://example.com"), "subdomains only");
        assert!(!sub.matches("https://a.example.com:8443"), "no port given: default ports only");
        assert!(!sub.matches("https://evilexample.com") && !sub.matches("https://a.example.com.evil.net"));
        assert!(!sub.matches("https://x/.example.com") && !sub.matches("null"));
        let https_sub = origin("https://*.example.com:8443");
        assert_eq!(https_sub.to_string(), "https://*.example.com:8443");
        assert!(https_sub.matches("https://a.example.com:8443") && !https_sub.matches("http://a.example.com:8443"));
        assert!(origin("*").matches("https://x.test") && !origin("*").matches("null"));
        assert!(origin("http://[::1]:8080").matches("http://[::1]:8080"));
    }

    #[test]
    fn bad_origins_say_what_to_write() {
        for bad in ["app.example.com", "https://app.example.com/", "https://a.com:0", "null", "https://", "*."] {
            assert!(bad.parse::<OriginPattern>().is_err(), "{bad}");
        }
        assert!("https://*.*.example.com".parse::<OriginPattern>().is_err());
    }

    fn cors(json: serde_json::Value) -> CorsSpec {
        serde_json::from_value(json).expect("cors spec")
    }

    #[test]
    fn credentials_echo_the_origin_and_forbid_wildcard_exposure() {
        let c = cors(serde_json::json!({"origins": ["*"], "credentials": true, "expose_headers": ["*"]}));
        assert!(!c.any_origin(), "with credentials the origin is echoed");
        assert_eq!(c.validate(None).map_err(|e| e.field), Err("cors.expose_headers[0]".into()));
        let c = cors(serde_json::json!({"origins": ["*"], "expose_headers": ["*"]}));
        assert!(c.any_origin() && c.validate(None).is_ok());
    }

    #[test]
    fn methods_and_headers_follow_the_service_and_name_the_field() {
        let service: MethodList = serde_json::from_value(serde_json::json!(["GET", "POST"])).expect("methods");
        let c = cors(serde_json::json!({"origins": ["https://a.test"], "methods": ["GET", "HEAD", "DELETE"]}));
        assert_eq!(c.validate(Some(&service)).map_err(|e| e.field), Err("cors.methods[2]".into()));
        let c = cors(serde_json::json!({"origins": ["https://a.test"], "headers": ["Content-Type"]}));
        assert_eq!(c.methods(Some(&service)), Some(&service));
        assert!(c.allows_header("content-type") && !c.allows_header("x-other") && !c.echoes_headers());
        assert_eq!(
            cors(serde_json::json!({"origins": []})).validate(None).map_err(|e| e.field),
            Err("cors.origins".into())
        );
        let long = cors(serde_json::json!({"origins": ["*"], "max_age": "2d"}));
        assert_eq!(long.validate(None).map_err(|e| e.field), Err("cors.max_age".into()));
    }
}
