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

/// A revocation rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Revocation {
    /// One token (by `jti`, or by its SHA-256 when it has none) until `exp`.
    Token {
        /// `jti` or token digest.
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
    /// Revoked token ids → expiry.
    pub revoked: HashMap<String, u64>,
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
        Ok(Identity { consumer: consumer.id.clone(), tier: consumer.tier.clone(), jti: None, exp: None, iat: None })
    }

    /// Applies revocations and the consumer record to a verified JWT identity.
    pub fn check_token(&self, mut id: Identity, token: &str) -> Result<Identity, AuthError> {
        let now = crate::now_unix();
        // The digest of a token without `jti` costs a SHA-256: only when anything is revoked.
        if !self.revoked.is_empty() {
            let exp = match &id.jti {
                Some(jti) => self.revoked.get(jti),
                None => self.revoked.get(&key_digest(token.as_bytes())),
            };
            if exp.is_some_and(|exp| *exp >= now) {
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
                self.revoked.insert(id.clone(), *exp);
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
