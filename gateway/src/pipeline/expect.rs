//! `Expect: 100-continue` (RFC 9110 §10.1.1). actix-http sends `100 Continue` as soon as
//! its expect service lets a request through, before any handler runs. This is the main
//! listener's expect service: it runs the checks the request head alone decides — header
//! limits, loop detection, route, IP rules, methods, credentials and permissions,
//! declared body size (the service's `max_body`) — and a request they refuse gets the
//! pipeline's JSON error (connection closed: its body was never asked for; CORS headers
//! as the pipeline adds them) without ever seeing `100 Continue`, so no refused body is
//! uploaded.
//! Rate limits are decided when the request runs: a decision consumes quota, so it is
//! taken once, after the `100`.

use std::sync::Arc;

use actix_web::body::BoxBody;
use actix_web::dev::{Response, ServiceFactory, fn_service};
use actix_web::http::ConnectionType;
use actix_web::http::header;
use actix_web::{HttpMessage, web};
use actors::auth::{AuthError, UNKNOWN_KID};
use actors::registry::Route;

use super::{Pipeline, auth, cors, forwarded, ip, limits, methods, normalize, request_id, route};
use crate::error::{GatewayError, Rejected};

/// Paths the main listener serves itself (never routed): left to their handlers.
fn reserved(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/auth/logout") || path.starts_with("/jobs/")
}

/// A refused head, with its route when it has one (for the CORS headers of the answer).
struct Refused {
    error: GatewayError,
    route: Option<Arc<Route>>,
}

/// What the pipeline would refuse from the head alone, if anything.
fn check(cx: &Pipeline, req: &actix_http::Request) -> Result<(), Refused> {
    let headers = req.headers();
    let unrouted = |error| Refused { error, route: None };
    route::filter(cx, headers).map_err(unrouted)?;
    let path = normalize::path(req.path());
    if reserved(&path) {
        return Ok(());
    }
    let route = route::find(headers, req.uri(), &path, &cx.routes).map_err(unrouted)?;
    routed(cx, req, &route).map_err(|error| Refused { error, route: Some(route) })
}

/// The policies' checks a head alone decides, in the pipeline's order.
fn routed(cx: &Pipeline, req: &actix_http::Request, route: &Route) -> Result<(), GatewayError> {
    let headers = req.headers();
    let peer = req.peer_addr().map(|a| a.ip());
    ip::check(forwarded::client_ip(peer, headers, &cx.trusted_proxies), route)?;
    // A CORS preflight is answered by the CORS policy whatever `methods` says.
    if !(route.spec.cors.is_some() && cors::is_preflight(req.method(), headers)) {
        methods::check(req.method(), route)?;
    }
    match auth::authenticate(headers, req.method(), route, cx) {
        // A key id nobody knows yet: the pipeline refetches the JWKS before deciding.
        Err(GatewayError::Unauthorized(AuthError::InvalidToken(UNKNOWN_KID))) if cx.jwks.is_some() => {}
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    limits::body_kind(headers, &cx.limits.for_service(&route.spec)).map(|_| ())
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
            Err(Refused { error, route }) => {
                let rejected = Rejected { request_id: request_id::of_headers(req.headers()), error };
                let mut res = rejected.to_response();
                if let Some(spec) = route.as_ref().and_then(|r| r.spec.cors.as_ref()) {
                    cors::decorate(spec, req.headers().get(header::ORIGIN), res.headers_mut());
                }
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
