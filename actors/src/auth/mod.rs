//! `AuthGuard`: owns verification inputs (JWT keys today; consumers, API-key hashes and
//! revocations plug in here) and publishes them as one immutable snapshot (`AuthView`)
//! that the request path checks in memory.

mod jwt;

use actix::prelude::*;

pub use jwt::{JwtSettings, JwtVerifier, KeyError, KeyMaterial, KeySpec, MAX_TOKEN_BYTES};

use crate::snapshot::View;

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
#[derive(Default)]
pub struct AuthState {
    /// JWT verification, when `[auth.jwt]` is configured.
    pub jwt: Option<JwtVerifier>,
}

/// Lock-free read access to the auth snapshot.
pub type AuthView = View<AuthState>;

/// The auth actor: sole writer of `AuthView`.
pub struct AuthGuard {
    view: AuthView,
}

impl AuthGuard {
    /// A guard publishing `state` into `view`.
    pub fn new(state: AuthState, view: AuthView) -> Self {
        view.publish(state);
        Self { view }
    }

    /// The published view.
    pub fn view(&self) -> &AuthView {
        &self.view
    }
}

impl Actor for AuthGuard {
    type Context = Context<Self>;
}

#[cfg(test)]
mod tests;
