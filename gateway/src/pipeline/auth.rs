//! The authenticate phase (SPEC §4 step 3, §5): the credentials the service's `auth` mode
//! asks for, verified in memory (keys, revocations, disabled consumers), then the
//! consumer's permissions for this service and method. An unknown JWT `kid` refetches the
//! JWKS once before deciding.

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actors::auth::{AuthError, Identity, UNKNOWN_KID};
use actors::registry::Route;
use actors::spec::AuthMode;

use super::phase::{Flow, Policy};
use super::{Ctx, Pipeline};
use crate::error::GatewayError;
use crate::otlp::Step;

/// Longest a request waits for a JWKS refetch triggered by an unknown `kid`.
const JWKS_WAIT: Duration = Duration::from_secs(3);

/// The authenticate policy: sets `cx.identity`.
pub struct Authenticate;

impl Policy for Authenticate {
    async fn request(node: &Pipeline, cx: &mut Ctx<'_>) -> Result<Flow, GatewayError> {
        let started = cx.clock();
        let headers = cx.req.headers();
        let identity = match (authenticate(headers, cx.req.method(), &cx.route, node), &node.jwks) {
            // A kid nobody knows yet: the identity provider may have rotated its keys.
            // Refetch the JWKS (at most once per few seconds; concurrent callers share it)
            // and retry.
            (Err(GatewayError::Unauthorized(AuthError::InvalidToken(UNKNOWN_KID))), Some(jwks)) => {
                let _ = jwks.send(crate::jwks::RefreshJwks::UnknownKid).timeout(JWKS_WAIT).await;
                authenticate(headers, cx.req.method(), &cx.route, node)
            }
            (result, _) => result,
        };
        cx.step(Step::Auth, started);
        cx.identity = identity?;
        Ok(Flow::Continue)
    }
}

/// The service's credentials check over a request head: the verified identity (`None`
/// for `auth = none`), with revocations, disabled consumers and permissions applied. Also
/// used before `100 Continue` (see `expect`).
pub(crate) fn authenticate(
    headers: &HeaderMap,
    method: &Method,
    route: &Route,
    node: &Pipeline,
) -> Result<Option<Identity>, GatewayError> {
    let Some(identity) = identify(headers, route, node)? else {
        return Ok(None);
    };
    if !node.auth.load().dir.permitted(&identity.consumer, &route.name, method.as_str()) {
        return Err(GatewayError::Forbidden(format!(
            "consumer {:?} may not {} {}",
            identity.consumer, method, route.name
        )));
    }
    Ok(Some(identity))
}

/// Verifies the credentials `route`'s auth mode asks for (revocations and disabled
/// consumers applied, permissions not): `None` for `auth = none`.
pub(crate) fn identify(headers: &HeaderMap, route: &Route, node: &Pipeline) -> Result<Option<Identity>, GatewayError> {
    if route.spec.auth == AuthMode::None {
        return Ok(None);
    }
    let unauthorized = GatewayError::Unauthorized;
    let auth = node.auth.load();
    let bearer = bearer_of(headers);
    let api_key = headers.get(&node.api_key_header);
    let verify_jwt = |token: &str| {
        let jwt = auth.jwt.as_ref().ok_or(unauthorized(AuthError::InvalidToken("no JWT keys configured")))?;
        let id = jwt.verify(token).map_err(unauthorized)?;
        auth.dir.check_token(id, token).map_err(unauthorized)
    };
    let verify_key = |key: &HeaderValue| auth.dir.api_key(key.as_bytes()).map_err(unauthorized);
    let identity = match (route.spec.auth, bearer, api_key) {
        (AuthMode::Jwt | AuthMode::Any, Some(token), _) => verify_jwt(token)?,
        (AuthMode::ApiKey | AuthMode::Any, _, Some(key)) => verify_key(key)?,
        _ => return Err(unauthorized(AuthError::MissingCredentials)),
    };
    Ok(Some(identity))
}

/// `Authorization: Bearer <token>`, scheme case-insensitive.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    bearer_of(req.headers())
}

fn bearer_of(headers: &HeaderMap) -> Option<&str> {
    // from_utf8 (vectorised) rather than to_str (a check per byte): tokens are long, and
    // anything but base64url fails verification anyway.
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}
