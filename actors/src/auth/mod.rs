//! `AuthGuard`: owns verification inputs (JWT keys today; consumers, API-key hashes and
//! revocations plug in here) and publishes them as one immutable snapshot (`AuthView`)
//! that the request path checks in memory.

mod jwt;
mod model;
mod store;

use std::sync::Arc;

use actix::prelude::*;

pub use jwt::{
    JwtSettings, JwtVerifier, Key, KeyError, KeyMaterial, KeySpec, MAX_TOKEN_BYTES, UNKNOWN_KID, parse_jwks,
};
pub use model::{Consumer, Directory, KeyRecord, Permissions, Revocation, TokenRef, key_digest, new_api_key};
pub use store::{AuthStore, PutMode, PutOutcome};

use crate::redis::StoreError;
use crate::redis::events::BusMessage;
use crate::snapshot::View;
use crate::spec::FieldError;
use crate::status::NodeStatus;

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Consumer id (JWT `sub`, or the API key's consumer).
    pub consumer: String,
    /// Tier (the role claim, or the consumer's tier).
    pub tier: Option<String>,
    /// JWT id, when present.
    pub jti: Option<String>,
    /// Expiry (seconds since the epoch), when present.
    pub exp: Option<u64>,
    /// Issued-at (seconds since the epoch), when present.
    pub iat: Option<u64>,
    /// How the revocation set names this token (JWTs only).
    pub token_ref: Option<TokenRef>,
}

/// Why a request is not authenticated. `code` is the SPEC §4 error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials at all.
    #[error("credentials are required")]
    MissingCredentials,
    /// A JWT that is wrong in any way but expiry.
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// An expired JWT.
    #[error("token expired")]
    TokenExpired,
    /// A revoked JWT.
    #[error("token revoked")]
    TokenRevoked,
    /// An unknown API key.
    #[error("invalid API key")]
    InvalidApiKey,
    /// A disabled consumer.
    #[error("consumer disabled")]
    ConsumerDisabled,
}

impl AuthError {
    /// The machine-readable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingCredentials => "missing_credentials",
            Self::InvalidToken(_) => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::TokenRevoked => "token_revoked",
            Self::InvalidApiKey => "invalid_api_key",
            Self::ConsumerDisabled => "consumer_disabled",
        }
    }
}

/// What the request path checks against.
#[derive(Clone, Default)]
pub struct AuthState {
    /// JWT verification, when `[auth.jwt]` is configured.
    pub jwt: Option<Arc<JwtVerifier>>,
    /// Consumers, API keys, revocations.
    pub dir: Arc<Directory>,
}

/// Lock-free read access to the auth snapshot.
pub type AuthView = View<AuthState>;

/// Why an auth admin change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthAdminError {
    /// A field is invalid.
    #[error("{0}")]
    Invalid(FieldError),
    /// The consumer already exists.
    #[error("consumer {0} already exists")]
    Exists(String),
    /// No such consumer or key.
    #[error("{0} not found")]
    NotFound(String),
    /// Redis could not be reached in time; nothing changed.
    #[error("auth storage unavailable: {0}")]
    Store(#[from] StoreError),
}

/// Create (`create = true`) or replace a consumer.
#[derive(Message)]
#[rtype(result = "Result<Consumer, AuthAdminError>")]
pub struct PutConsumer {
    /// The consumer.
    pub consumer: Consumer,
    /// Fail if it exists.
    pub create: bool,
}

/// Delete a consumer and its keys.
#[derive(Message)]
#[rtype(result = "Result<(), AuthAdminError>")]
pub struct DeleteConsumer(pub String);

/// All consumers, sorted by id.
#[derive(Message)]
#[rtype(result = "Vec<Consumer>")]
pub struct ListConsumers;

/// Create an API key for a consumer; answers the record and the key (shown once).
#[derive(Message)]
#[rtype(result = "Result<(KeyRecord, String), AuthAdminError>")]
pub struct CreateKey {
    /// Owner.
    pub consumer: String,
    /// Optional label.
    pub name: Option<String>,
}

/// Delete an API key by id.
#[derive(Message)]
#[rtype(result = "Result<(), AuthAdminError>")]
pub struct DeleteKey {
    /// Owner.
    pub consumer: String,
    /// Key id.
    pub key_id: String,
}

/// Revoke a token or a subject's tokens, cluster-wide.
#[derive(Message)]
#[rtype(result = "Result<(), AuthAdminError>")]
pub struct Revoke(pub Revocation);

/// Reload everything from Redis.
#[derive(Message)]
#[rtype(result = "()")]
struct Reload;

/// Replace the keys fetched from the JWKS endpoint.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetJwks(pub Vec<Key>);

/// The auth actor: sole writer of `AuthView`.
pub struct AuthGuard {
    view: AuthView,
    /// The verifier with the configured keys only (JWKS keys are added to a copy).
    jwt_base: Option<JwtVerifier>,
    jwt: Option<Arc<JwtVerifier>>,
    dir: Directory,
    store: Option<AuthStore>,
    status: NodeStatus,
}

impl AuthGuard {
    /// A guard publishing into `view`; `store` is `None` in memory mode.
    pub fn new(jwt: Option<JwtVerifier>, store: Option<AuthStore>, view: AuthView, status: NodeStatus) -> Self {
        let guard =
            Self { view, jwt: jwt.clone().map(Arc::new), jwt_base: jwt, dir: Directory::default(), store, status };
        guard.publish();
        if guard.store.is_none() {
            guard.status.set_auth_loaded();
        }
        guard
    }

    fn publish(&self) {
        self.view.publish(AuthState { jwt: self.jwt.clone(), dir: Arc::new(self.dir.clone()) });
    }

    /// Runs a storage write (Redis mode) and then applies `local` to the directory; in
    /// memory mode applies `local` at once.
    fn change<T: 'static>(
        &mut self,
        write: impl std::future::Future<Output = Result<(), AuthAdminError>> + 'static,
        local: impl FnOnce(&mut Directory) -> T + 'static,
    ) -> AtomicResponse<Self, Result<T, AuthAdminError>> {
        if self.store.is_none() {
            let out = local(&mut self.dir);
            self.publish();
            return AtomicResponse::new(Box::pin(fut::ready(Ok(out))));
        }
        AtomicResponse::new(Box::pin(write.into_actor(self).map(move |r, act, _| {
            r?;
            let out = local(&mut act.dir);
            act.publish();
            Ok(out)
        })))
    }
}

fn ready<T: 'static>(v: Result<T, AuthAdminError>) -> AtomicResponse<AuthGuard, Result<T, AuthAdminError>> {
    AtomicResponse::new(Box::pin(fut::ready(v)))
}

impl Actor for AuthGuard {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.store.is_some() {
            ctx.notify(Reload);
        }
        // Forget revocations of tokens that have expired anyway.
        ctx.run_interval(std::time::Duration::from_secs(60), |act, _| {
            act.dir.prune();
            act.publish();
        });
    }
}

impl Handler<PutConsumer> for AuthGuard {
    type Result = AtomicResponse<Self, Result<Consumer, AuthAdminError>>;
    fn handle(&mut self, msg: PutConsumer, _: &mut Context<Self>) -> Self::Result {
        let c = match msg.consumer.validate() {
            Ok(c) => c,
            Err(e) => return ready(Err(AuthAdminError::Invalid(e))),
        };
        if msg.create && self.dir.consumers.contains_key(&c.id) {
            return ready(Err(AuthAdminError::Exists(c.id)));
        }
        let store = self.store.clone();
        let stored = c.clone();
        let mode = if msg.create { PutMode::Create } else { PutMode::Replace };
        let write = async move {
            let Some(store) = store else { return Ok(()) };
            match store.put_consumer(&stored, mode).await? {
                PutOutcome::Exists => Err(AuthAdminError::Exists(stored.id)),
                PutOutcome::Missing => Err(AuthAdminError::NotFound(format!("consumer {}", stored.id))),
                PutOutcome::Applied => Ok(()),
            }
        };
        self.change(write, move |dir| {
            dir.consumers.insert(c.id.clone(), c.clone());
            c
        })
    }
}

impl Handler<DeleteConsumer> for AuthGuard {
    type Result = AtomicResponse<Self, Result<(), AuthAdminError>>;
    fn handle(&mut self, msg: DeleteConsumer, _: &mut Context<Self>) -> Self::Result {
        let id = msg.0;
        if self.store.is_none() && !self.dir.consumers.contains_key(&id) {
            return ready(Err(AuthAdminError::NotFound(format!("consumer {id}"))));
        }
        let store = self.store.clone();
        let target = id.clone();
        let write = async move {
            let Some(store) = store else { return Ok(()) };
            if store.delete_consumer(&target).await? {
                Ok(())
            } else {
                Err(AuthAdminError::NotFound(format!("consumer {target}")))
            }
        };
        self.change(write, move |dir| {
            dir.consumers.remove(&id);
            dir.keys.retain(|_, k| k.consumer != id);
        })
    }
}

impl Handler<ListConsumers> for AuthGuard {
    type Result = Vec<Consumer>;
    fn handle(&mut self, _: ListConsumers, _: &mut Context<Self>) -> Self::Result {
        let mut all: Vec<Consumer> = self.dir.consumers.values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}

impl Handler<CreateKey> for AuthGuard {
    type Result = AtomicResponse<Self, Result<(KeyRecord, String), AuthAdminError>>;
    fn handle(&mut self, msg: CreateKey, _: &mut Context<Self>) -> Self::Result {
        if !self.dir.consumers.contains_key(&msg.consumer) {
            return ready(Err(AuthAdminError::NotFound(format!("consumer {}", msg.consumer))));
        }
        let key = new_api_key();
        let digest = key_digest(key.as_bytes());
        let suffix: [u8; 6] = rand::random();
        let rec = KeyRecord {
            key_id: format!("k-{}", crate::hex(&suffix)),
            consumer: msg.consumer,
            name: msg.name,
            created_at: crate::now_rfc3339(),
        };
        let store = self.store.clone();
        let (d, r) = (digest.clone(), rec.clone());
        let write = async move {
            if let Some(store) = store {
                store.put_key(&d, &r).await?;
            }
            Ok(())
        };
        self.change(write, move |dir| {
            dir.keys.insert(digest, rec.clone());
            (rec, key)
        })
    }
}

impl Handler<DeleteKey> for AuthGuard {
    type Result = AtomicResponse<Self, Result<(), AuthAdminError>>;
    fn handle(&mut self, msg: DeleteKey, _: &mut Context<Self>) -> Self::Result {
        let found = self
            .dir
            .keys
            .iter()
            .find(|(_, k)| k.key_id == msg.key_id && k.consumer == msg.consumer)
            .map(|(d, k)| (d.clone(), k.clone()));
        let Some((digest, rec)) = found else {
            return ready(Err(AuthAdminError::NotFound(format!("key {}", msg.key_id))));
        };
        let store = self.store.clone();
        let d = digest.clone();
        let write = async move {
            if let Some(store) = store {
                store.delete_key(&d, &rec).await?;
            }
            Ok(())
        };
        self.change(write, move |dir| {
            dir.keys.remove(&digest);
        })
    }
}

impl Handler<Revoke> for AuthGuard {
    type Result = AtomicResponse<Self, Result<(), AuthAdminError>>;
    fn handle(&mut self, msg: Revoke, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let rule = msg.0.clone();
        let write = async move {
            if let Some(store) = store {
                store.revoke(&rule).await?;
            }
            Ok(())
        };
        self.change(write, move |dir| dir.apply(&msg.0))
    }
}

impl Handler<SetJwks> for AuthGuard {
    type Result = ();
    fn handle(&mut self, msg: SetJwks, _: &mut Context<Self>) {
        if let Some(base) = &self.jwt_base {
            self.jwt = Some(Arc::new(base.with_jwks(msg.0)));
            self.publish();
        }
    }
}

impl Handler<Reload> for AuthGuard {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, _: Reload, _: &mut Context<Self>) -> Self::Result {
        let Some(store) = self.store.clone() else {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        };
        AtomicResponse::new(Box::pin(async move { store.load().await }.into_actor(self).map(|r, act, ctx| match r {
            Ok(dir) => {
                act.dir = dir;
                act.publish();
                act.status.set_auth_loaded();
                act.status.set_degraded("auth", false);
            }
            Err(e) => {
                tracing::warn!(error = %e, "auth reload failed; serving the last snapshot");
                act.status.set_degraded("auth", true);
                ctx.run_later(std::time::Duration::from_secs(1), |_, ctx| ctx.notify(Reload));
            }
        })))
    }
}

impl Handler<BusMessage> for AuthGuard {
    type Result = ();
    fn handle(&mut self, msg: BusMessage, ctx: &mut Context<Self>) {
        match msg {
            // Revocations may have been missed: load the full set again.
            BusMessage::Connected => ctx.notify(Reload),
            BusMessage::Disconnected => self.status.set_degraded("auth", true),
            BusMessage::Event(ev) => match ev.kind.as_str() {
                "revocation" => {
                    // The event carries the rule: apply it without a Redis round trip.
                    let rule = serde_json::from_str::<serde_json::Value>(&ev.raw)
                        .ok()
                        .and_then(|v| serde_json::from_value::<Revocation>(v.get("revocation")?.clone()).ok());
                    match rule {
                        Some(r) => {
                            self.dir.apply(&r);
                            self.publish();
                        }
                        None => ctx.notify(Reload),
                    }
                }
                "consumer_updated" | "consumer_deleted" | "key_created" | "key_deleted" => ctx.notify(Reload),
                _ => {}
            },
        }
    }
}

#[cfg(test)]
mod tests;
