//! `[services.ip]`: allow and deny lists of CIDRs (SPEC §17), evaluated on the client
//! address the gateway believes (after `trusted_proxies`). Deny wins over allow; when
//! `allow` is given, every address outside it is refused.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use super::FieldError;

/// A network (`10.0.0.0/8`, `2001:db8::/32`) or one address (`192.0.2.7`). Host bits
/// below the prefix length are refused (`10.0.0.1/8` is most likely a typo).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

impl Cidr {
    /// Whether `ip` is inside (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&unmapped(ip))
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; other addresses unchanged.
pub fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid CIDR {s:?}: write a network such as \"10.0.0.0/8\" or one address");
        let net = match s.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => IpNet::from(s.parse::<IpAddr>().map_err(|_| bad())?),
        };
        if net.trunc() != net {
            return Err(format!("{s:?} has bits set below its prefix length: did you mean \"{}\"?", net.trunc()));
        }
        Ok(Self(net))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.trim().parse().map_err(de::Error::custom)
    }
}

/// `[services.ip]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpSpec {
    /// When not empty: only these networks may call the service.
    #[serde(default)]
    pub allow: Vec<Cidr>,
    /// These networks may not call the service (wins over `allow`).
    #[serde(default)]
    pub deny: Vec<Cidr>,
}

impl IpSpec {
    /// Whether a client at `ip` may call the service (`None`: the address is unknown,
    /// refused only when `allow` is given).
    pub fn permits(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip.map(unmapped) else { return self.allow.is_empty() };
        !self.deny.iter().any(|n| n.0.contains(&ip))
            && (self.allow.is_empty() || self.allow.iter().any(|n| n.0.contains(&ip)))
    }

    /// At least one list given, no network twice in a list. Errors name `ip.allow[i]`.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.allow.is_empty() && self.deny.is_empty() {
            return Err(FieldError::new("ip", "give allow, deny or both (leave the section out for no IP rules)"));
        }
        for (name, list) in [("allow", &self.allow), ("deny", &self.deny)] {
            for (i, n) in list.iter().enumerate() {
                if list[..i].contains(n) {
                    return Err(FieldError::new(format!("ip.{name}[{i}]"), format!("{n} is listed twice")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(allow: &[&str], deny: &[&str]) -> IpSpec {
        let nets = |l: &[&str]| l.iter().map(|s| s.parse().expect("cidr")).collect();
        IpSpec { allow: nets(allow), deny: nets(deny) }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn deny_wins_and_allow_refuses_everything_else() {
        let s = spec(&["10.0.0.0/8"], &["10.9.0.0/16"]);
        assert!(s.permits(ip("10.1.2.3")));
        assert!(!s.permits(ip("10.9.0.1")), "deny wins over allow");
        assert!(!s.permits(ip("192.0.2.1")), "outside allow");
        assert!(!s.permits(None), "unknown address with an allow list");
        assert!(s.permits(ip("::ffff:10.1.2.3")), "v4-mapped v6 is its v4 address");
        let deny_only = spec(&[], &["192.0.2.7", "2001:db8::/32"]);
        assert!(deny_only.permits(ip("192.0.2.8")) && deny_only.permits(None));
        assert!(!deny_only.permits(ip("192.0.2.7")) && !deny_only.permits(ip("2001:db8::1")));
    }

    #[test]
    fn cidrs_parse_strictly_and_print_back() {
        assert_eq!("192.0.2.7".parse::<Cidr>().map(|c| c.to_string()), Ok("192.0.2.7".into()));
        assert_eq!("10.0.0.0/8".parse::<Cidr>().map(|c| c.to_string()), Ok("10.0.0.0/8".into()));
        assert!("10.0.0.1/8".parse::<Cidr>().expect_err("host bits").contains("10.0.0.0/8"));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err() && "example.com".parse::<Cidr>().is_err());
    }

    #[test]
    fn empty_sections_and_repeats_name_the_field() {
        assert_eq!(spec(&[], &[]).validate().map_err(|e| e.field), Err("ip".into()));
        let twice = spec(&["10.0.0.0/8"], &["192.0.2.7", "192.0.2.7"]);
        assert_eq!(twice.validate().map_err(|e| e.field), Err("ip.deny[1]".into()));
    }
}
