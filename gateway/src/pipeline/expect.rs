//! `Expect: 100-continue` (RFC 9110 §10.1.1). actix-http sends `100 Continue` as soon as
//! its expect service lets a request through, before any handler runs. This is the main
//! listener's expect service: it runs the checks the request head alone decides — header
//! limits, loop detection, route, credentials and permissions, declared body size — and a
//! request they refuse gets the pipeline's JSON error (connection closed: its body was
//! never asked for) without ever seeing `100 Continue`, so no refused body is uploaded.
//! Rate limits are decided when the request runs: a decision consumes quota, so it is
//! taken once, after the `100`.

use actix_web::body::BoxBody;
use actix_web::dev::{Response, ServiceFactory, fn_service};
use actix_web::http::ConnectionType;
use actix_web::{HttpMessage, web};
use actors::auth::{AuthError, UNKNOWN_KID};

use super::{Pipeline, auth, limits, normalize, request_id, route};
use crate::error::{GatewayError, Rejected};

/// Paths the main listener serves itself (never routed): left to their handlers.
fn reserved(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/auth/logout") || path.starts_with("/jobs/")
}

/// What the pipeline would refuse from the head alone, if anything.
fn check(cx: &Pipeline, req: &actix_http::Request) -> Result<(), GatewayError> {
    let headers = req.headers();
    route::filter(cx, headers)?;
    let path = normalize::path(req.path());
    if reserved(&path) {
        return Ok(());
    }
    let route = route::find(headers, req.uri(), &path, &cx.routes)?;
    match auth::authenticate(headers, req.method(), &route, cx) {
        // A key id nobody knows yet: the pipeline refetches the JWKS before deciding.
        Err(GatewayError::Unauthorized(AuthError::InvalidToken(UNKNOWN_KID))) if cx.jwks.is_some() => {}
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    limits::body_kind(headers, &cx.limits).map(|_| ())
}

/// The expect service for the main listener.
pub fn gate(
    cx: web::Data<Pipeline>,
) -> impl ServiceFactory<
    actix_http::Request,
    Config = (),
    Response = actix_http::Request,
    Error = Response<BoxBody>,
    InitError = (),
> {
    fn_service(move |req: actix_http::Request| {
        let answer = match check(&cx, &req) {
            Ok(()) => Ok(req),
            Err(error) => {
                let rejected = Rejected { request_id: request_id::of_headers(req.headers()), error };
                let mut res = rejected.to_response();
                res.head_mut().set_connection_type(ConnectionType::Close);
                Err(res.into())
            }
        };
        std::future::ready(answer)
    })
}

#[cfg(test)]
mod tests {
    use super::reserved;

    #[test]
    fn the_listeners_own_paths_are_left_to_their_handlers() {
        assert!(reserved("/health") && reserved("/ready") && reserved("/auth/logout") && reserved("/jobs/x-1"));
        assert!(!reserved("/api/x") && !reserved("/healthz") && !reserved("/jobs"));
    }
}
