//! Secrets in config: a literal string, `{ env = "VAR" }` or `{ file = "/path" }`,
//! resolved when the config is read. The value never appears in `Debug` output or logs.

use std::fmt;

use serde::{Deserialize, Deserializer, de};
use subtle::ConstantTimeEq;

/// A resolved secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret value. Call sites are the few places that need the raw bytes.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Constant-time comparison with a presented value.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSecret {
    Literal(String),
    Source(SecretSource),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretSource {
    env: Option<String>,
    file: Option<String>,
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawSecret::deserialize(d)
            .map_err(|_| de::Error::custom("expected a string, { env = \"VAR\" } or { file = \"/path\" }"))?;
        let value = match raw {
            RawSecret::Literal(s) => s,
            RawSecret::Source(SecretSource { env: Some(var), file: None }) => {
                std::env::var(&var).map_err(|_| de::Error::custom(format!("environment variable {var} is not set")))?
            }
            RawSecret::Source(SecretSource { env: None, file: Some(path) }) => std::fs::read_to_string(&path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| de::Error::custom(format!("cannot read secret file {path}: {e}")))?,
            RawSecret::Source(_) => {
                return Err(de::Error::custom("give exactly one of env or file"));
            }
        };
        if value.is_empty() {
            return Err(de::Error::custom("secret is empty"));
        }
        Ok(Self(value))
    }
}
