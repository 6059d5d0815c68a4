//! Consumers, their API keys and revocations: the records the admin API manages and the
//! request path checks.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthError, Identity};
use crate::spec::FieldError;

/// What a consumer may call (empty lists = everything).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Service names.
    #[serde(default)]
    pub services: Vec<String>,
    /// HTTP methods (upper case).
    #[serde(default)]
    pub methods: Vec<String>,
}

impl Permissions {
    /// Whether `method` on `service` is allowed.
    pub fn allows(&self, service: &str, method: &str) -> bool {
        (self.services.is_empty() || self.services.iter().any(|s| s == service))
            && (self.methods.is_empty() || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
    }
}

fn yes() -> bool {
    true
}

/// A consumer of the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    /// Id (also the JWT `sub` that maps to it).
    pub id: String,
    /// Rate-limit tier.
    #[serde(default)]
    pub tier: Option<String>,
    /// Disabled consumers are refused (`consumer_disabled`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// What it may call.
    #[serde(default)]
    pub permissions: Permissions,
}

impl Consumer {
    /// Checks the fields; errors name the field.
    pub fn validate(mut self) -> Result<Self, FieldError> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 128
            && self.id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:@-".contains(&b));
        if !id_ok {
            return Err(FieldError::new("id", "use 1-128 characters of A-Z a-z 0-9 . _ : @ -"));
        }
        if self.tier.as_ref().is_some_and(|t| t.is_empty() || t.len() > 64) {
            return Err(FieldError::new("tier", "must be 1-64 characters"));
        }
        for (i, m) in self.permissions.methods.iter_mut().enumerate() {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(FieldError::new(format!("permissions.methods[{i}]"), "must be an HTTP method"));
            }
            *m = m.to_ascii_uppercase();
        }
        for (i, s) in self.permissions.services.iter().enumerate() {
            if s.parse::<crate::spec::ServiceName>().is_err() {
                return Err(FieldError::new(format!("permissions.services[{i}]"), "must be a service name"));
            }
        }
        Ok(self)
    }
}

/// A stored API key (the key itself is never stored; only its SHA-256).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Public id of the key (for deletion).
    pub key_id: String,
    /// Owner.
    pub consumer: String,
    /// Optional label.
    #[serde(default)]
    pub name: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// SHA-256 of a key, hex-encoded (the storage form).
pub fn key_digest(key: &[u8]) -> String {
    crate::hex(&Sha256::digest(key))
}

/// A new random API key: 32 bytes from the OS-seeded CSPRNG, URL-safe.
pub fn new_api_key() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("gwk_{}", crate::hex(&bytes))
}

/// What names one token in the revocation set: its `jti` scoped to issuer and subject
/// (two users' tokens may share a `jti`), or, for a token without `jti`, the SHA-256 of
/// the token itself. Stored as `jti:<hex>` / `tok:<hex>` members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenRef {
    /// SHA-256 over the issuer, subject and `jti` (length-prefixed, domain-separated).
    Jti([u8; 32]),
    /// SHA-256 of the compact token.
    Token([u8; 32]),
}

impl TokenRef {
    /// The reference of a token with a `jti` (`iss` absent = empty).
    pub fn of_jti(iss: &str, sub: &str, jti: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"gw-revocation-jti\0");
        for part in [iss, sub] {
            h.update(u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.update(jti.as_bytes());
        Self::Jti(h.finalize().into())
    }

    /// The reference of a token without `jti`.
    pub fn of_token(token: &[u8]) -> Self {
        Self::Token(Sha256::digest(token).into())
    }

    /// The stored form: `jti:<64 hex>` or `tok:<64 hex>`.
    pub fn member(&self) -> String {
        match self {
            Self::Jti(d) => format!("jti:{}", crate::hex(d)),
            Self::Token(d) => format!("tok:{}", crate::hex(d)),
        }
    }

    /// Reads a stored member. Members of earlier versions were a bare `jti` (revoking
    /// every token with that `jti`, whoever it belonged to) or a bare token SHA-256: a bare
    /// digest still names exactly one token and is kept; a bare `jti` cannot be scoped and
    /// is ignored (`None`), so it can no longer revoke anyone else's token.
    pub fn parse(member: &str) -> Option<Self> {
        let (kind, hex) = match member.split_once(':') {
            Some(("jti", hex)) => (true, hex),
            Some(("tok", hex)) => (false, hex),
            _ => (false, member),
        };
        let digest = parse_hex32(hex)?;
        Some(if kind { Self::Jti(digest) } else { Self::Token(digest) })
    }
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// A revocation rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Revocation {
    /// One token until `exp`.
    Token {
        /// The stored member: `TokenRef::member` (`jti:<hex>` / `tok:<hex>`).
        id: String,
        /// Unix seconds after which the rule can be forgotten.
        exp: u64,
    },
    /// Every token of `sub` issued before `before` (unix seconds).
    Subject {
        /// The subject.
        sub: String,
        /// Cutoff.
        before: u64,
    },
}

/// Consumers, keys and revocations as one immutable set (part of the auth snapshot).
#[derive(Clone, Debug, Default)]
pub struct Directory {
    /// Consumers by id.
    pub consumers: HashMap<String, Consumer>,
    /// Keys by digest.
    pub keys: HashMap<String, KeyRecord>,
    /// Revoked tokens → expiry.
    pub revoked: HashMap<TokenRef, u64>,
    /// Subject → cutoff.
    pub cutoffs: HashMap<String, u64>,
}

impl Directory {
    /// Authenticates an API key.
    pub fn api_key(&self, presented: &[u8]) -> Result<Identity, AuthError> {
        let digest = key_digest(presented);
        let (stored_digest, rec) = self.keys.get_key_value(&digest).ok_or(AuthError::InvalidApiKey)?;
        // The map lookup found it; compare the digests in constant time all the same.
        if !bool::from(stored_digest.as_bytes().ct_eq(digest.as_bytes())) {
            return Err(AuthError::InvalidApiKey);
        }
        let consumer = self.consumers.get(&rec.consumer).ok_or(AuthError::InvalidApiKey)?;
        if !consumer.enabled {
            return Err(AuthError::ConsumerDisabled);
        }
        Ok(Identity {
            consumer: consumer.id.clone(),
            tier: consumer.tier.clone(),
            jti: None,
            exp: None,
            iat: None,
            token_ref: None,
        })
    }

    /// Applies revocations and the consumer record to a verified JWT identity.
    pub fn check_token(&self, mut id: Identity, token: &str) -> Result<Identity, AuthError> {
        let now = crate::now_unix();
        // The verifier computed the reference once per token; a SHA-256 only for an identity
        // without one, and only when anything is revoked.
        if !self.revoked.is_empty() {
            let r = id.token_ref.unwrap_or_else(|| TokenRef::of_token(token.as_bytes()));
            if self.revoked.get(&r).is_some_and(|exp| *exp >= now) {
                return Err(AuthError::TokenRevoked);
            }
        }
        if self.cutoffs.get(&id.consumer).is_some_and(|cutoff| id.iat.is_none_or(|iat| iat < *cutoff)) {
            return Err(AuthError::TokenRevoked);
        }
        if let Some(c) = self.consumers.get(&id.consumer) {
            if !c.enabled {
                return Err(AuthError::ConsumerDisabled);
            }
            if id.tier.is_none() {
                id.tier = c.tier.clone();
            }
        }
        Ok(id)
    }

    /// Whether the consumer (if it has a record) may call `method` on `service`.
    pub fn permitted(&self, consumer: &str, service: &str, method: &str) -> bool {
        self.consumers.get(consumer).is_none_or(|c| c.permissions.allows(service, method))
    }

    /// Adds a revocation.
    pub fn apply(&mut self, r: &Revocation) {
        match r {
            Revocation::Token { id, exp } => {
                if let Some(r) = TokenRef::parse(id) {
                    self.revoked.insert(r, *exp);
                }
            }
            Revocation::Subject { sub, before } => {
                let e = self.cutoffs.entry(sub.clone()).or_insert(0);
                *e = (*e).max(*before);
            }
        }
    }

    /// Drops revocations whose tokens have expired anyway.
    pub fn prune(&mut self) {
        let now = crate::now_unix();
        self.revoked.retain(|_, exp| *exp >= now);
    }
}
