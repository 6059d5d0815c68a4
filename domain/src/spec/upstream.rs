//! Upstream endpoint URLs: `http(s)://host:port[/base]`, parsed once and kept in the
//! pieces the proxy needs (scheme, authority, base path).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// The scheme of an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

/// A validated upstream base URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpstreamUrl {
    scheme: Scheme,
    /// `host:port` with the default port filled in.
    authority: String,
    /// Base path without a trailing slash (`""` for the root).
    base_path: String,
}

impl UpstreamUrl {
    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.authority
    }
    /// Base path, without a trailing slash.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }
    /// Host (without the port), for the `Host` header sent upstream.
    pub fn host(&self) -> &str {
        match self.authority.rfind(':') {
            Some(i) if !self.authority.ends_with(']') => &self.authority[..i],
            _ => &self.authority,
        }
    }
    /// `scheme://authority` (no path), the prefix of every URL sent to this upstream.
    pub fn origin(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}", self.authority)
    }
}

impl FromStr for UpstreamUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = url::Url::parse(s.trim()).map_err(|e| format!("invalid URL {s:?}: {e}"))?;
        let scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(format!("invalid URL {s:?}: scheme must be http or https, not {other:?}")),
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
            _ => return Err(format!("invalid URL {s:?}: a host is required")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("invalid URL {s:?}: credentials in upstream URLs are not allowed"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("invalid URL {s:?}: no query or fragment allowed"));
        }
        let port = url.port_or_known_default().unwrap_or(match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        });
        let base_path = url.path().trim_end_matches('/').to_string();
        Ok(Self { scheme, authority: format!("{host}:{port}"), base_path })
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin(), self.base_path)
    }
}

impl Serialize for UpstreamUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UpstreamUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// One configured endpoint: a URL, optionally with a weight (default 1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EndpointSpec {
    /// Where to send requests.
    pub url: UpstreamUrl,
    /// Relative share of traffic for the `weighted` balancer (0 = drained).
    pub weight: u32,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawEndpoint {
    Url(String),
    Table(RawEndpointTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpointTable {
    url: String,
    #[serde(default = "one")]
    weight: u32,
}

fn one() -> u32 {
    1
}

impl<'de> Deserialize<'de> for EndpointSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (url, weight) = match RawEndpoint::deserialize(d) {
            Ok(RawEndpoint::Url(u)) => (u, 1),
            Ok(RawEndpoint::Table(t)) => (t.url, t.weight),
            Err(_) => {
                return Err(de::Error::custom(
                    "expected an endpoint URL string or a table { url = \"http://..\", weight = 1 }",
                ));
            }
        };
        let url = url.parse().map_err(de::Error::custom)?;
        if weight > 10_000 {
            return Err(de::Error::custom("weight must be between 0 and 10000"));
        }
        Ok(Self { url, weight })
    }
}

impl Serialize for EndpointSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.weight == 1 {
            return self.url.serialize(s);
        }
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("url", &self.url)?;
        m.serialize_entry("weight", &self.weight)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_keep_scheme_authority_and_base_path() {
        let u: UpstreamUrl = "http://10.0.0.5:3000/v1/".parse().expect("valid");
        assert_eq!(u.authority(), "10.0.0.5:3000");
        assert_eq!(u.base_path(), "/v1");
        assert_eq!(u.to_string(), "http://10.0.0.5:3000/v1");
        let d: UpstreamUrl = "https://example.com".parse().expect("valid");
        assert_eq!(d.authority(), "example.com:443");
        assert_eq!(d.host(), "example.com");
        assert_eq!(d.base_path(), "");
    }

    #[test]
    fn upstream_urls_reject_what_cannot_be_proxied_to() {
        for bad in ["ftp://x", "http://", "not a url", "http://u:p@h", "http://h/?q=1", "/relative"] {
            assert!(bad.parse::<UpstreamUrl>().is_err(), "{bad} should be rejected");
        }
    }
}
