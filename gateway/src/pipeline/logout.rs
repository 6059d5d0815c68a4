//! `POST /auth/logout`: revokes the presented bearer token on every node until it
//! expires (by `jti` scoped to issuer + subject, or by the token's SHA-256 when it has
//! no `jti`). Idempotent: logging out
//! an expired or already revoked token also answers `204`.

use actix::Addr;
use actix_web::{HttpRequest, HttpResponse, web};
use actors::auth::{AuthError, AuthGuard, Revocation, Revoke, TokenRef};

use super::auth::bearer_token;
use super::{Pipeline, request_id};
use crate::error::{GatewayError, Rejected};
use crate::names;

/// The handler.
pub async fn logout(req: HttpRequest, cx: web::Data<Pipeline>, guard: web::Data<Addr<AuthGuard>>) -> HttpResponse {
    let id = request_id::of(&req);
    let reject = |error: GatewayError| Rejected { request_id: id.clone(), error }.to_response();
    let Some(token) = bearer_token(&req) else {
        return reject(GatewayError::Unauthorized(AuthError::MissingCredentials));
    };
    let auth = cx.auth.load_full();
    let Some(jwt) = auth.jwt.as_ref() else {
        return reject(GatewayError::Unauthorized(AuthError::InvalidToken("no JWT keys configured")));
    };
    let verified = jwt.verify(token).and_then(|i| auth.dir.check_token(i, token));
    let identity = match verified {
        Ok(i) => i,
        Err(AuthError::TokenExpired | AuthError::TokenRevoked) => return done(&id),
        Err(e) => return reject(GatewayError::Unauthorized(e)),
    };
    // By `jti` scoped to issuer + subject (so another user's token with the same `jti`
    // stays valid), or by the token's digest when it has no `jti`.
    let token_ref = identity.token_ref.unwrap_or_else(|| TokenRef::of_token(token.as_bytes()));
    let rule = Revocation::Token {
        id: token_ref.member(),
        exp: identity.exp.unwrap_or_else(|| actors::now_unix() + 24 * 3600),
    };
    match guard.send(Revoke(rule)).await {
        Ok(Ok(())) => done(&id),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "logout could not be recorded");
            crate::error::json_error(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "redis_unavailable",
                "the revocation could not be stored; try again".into(),
                &id,
                Some(1),
                false,
            )
        }
        Err(e) => reject(GatewayError::UpstreamUnavailable(format!("auth actor unavailable: {e}"))),
    }
}

fn done(id: &actix_web::http::header::HeaderValue) -> HttpResponse {
    HttpResponse::NoContent().insert_header((names::X_REQUEST_ID.clone(), id.clone())).finish()
}
