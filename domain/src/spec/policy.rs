//! Rate-limit policies (`[rate_limit.policies.<name>]`): algorithm, limit, window, key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::units::HumanDuration;

/// The limiting algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Counter per fixed window.
    FixedWindow,
    /// Weighted sum of the current and previous windows.
    #[default]
    SlidingWindow,
    /// Exact log of request times (sorted set).
    SlidingLog,
    /// Token bucket refilled at `limit / window`, capacity `burst`.
    TokenBucket,
    /// Generic cell rate algorithm (virtual scheduling).
    Gcra,
}

/// What a request is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyPart {
    /// The consumer id (anonymous requests fall back to the client address).
    Consumer,
    /// The trusted client address.
    Ip,
    /// The service name.
    Route,
    /// A request header's value (lowercased name).
    Header(String),
}

/// One or more key parts joined by `+` (`"consumer+route"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeySpec(pub Vec<KeyPart>);

impl Default for KeySpec {
    fn default() -> Self {
        Self(vec![KeyPart::Consumer])
    }
}

impl FromStr for KeySpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts = s
            .split('+')
            .map(|p| match p.trim() {
                "consumer" => Ok(KeyPart::Consumer),
                "ip" => Ok(KeyPart::Ip),
                "route" => Ok(KeyPart::Route),
                other => match other.strip_prefix("header:") {
                    Some(h) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) => {
                        Ok(KeyPart::Header(h.to_ascii_lowercase()))
                    }
                    _ => Err(format!("invalid key {s:?}: use consumer, ip, route or header:<Name>, combined with '+'")),
                },
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(parts))
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            match p {
                KeyPart::Consumer => f.write_str("consumer")?,
                KeyPart::Ip => f.write_str("ip")?,
                KeyPart::Route => f.write_str("route")?,
                KeyPart::Header(h) => write!(f, "header:{h}")?,
            }
        }
        Ok(())
    }
}

impl Serialize for KeySpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// What the limiter does when Redis cannot answer in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Apply the policy per node, the limit divided by the live node count.
    #[default]
    Local,
    /// Admit everything.
    Open,
    /// Refuse with `503 redis_unavailable`.
    Closed,
}

/// A named rate-limit policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Algorithm.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Requests allowed per window.
    pub limit: u64,
    /// Window length.
    pub window: HumanDuration,
    /// Bucket capacity for token_bucket / gcra (0 = `limit`).
    #[serde(default)]
    pub burst: u64,
    /// Counting key.
    #[serde(default)]
    pub key: KeySpec,
    /// Behaviour when Redis is unavailable.
    #[serde(default)]
    pub failure_mode: FailureMode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_combine_with_plus() {
        let k: KeySpec = "consumer+route".parse().expect("valid");
        assert_eq!(k.0, vec![KeyPart::Consumer, KeyPart::Route]);
        assert_eq!(k.to_string(), "consumer+route");
        assert!("user".parse::<KeySpec>().is_err());
        assert!("header:".parse::<KeySpec>().is_err());
    }
}
