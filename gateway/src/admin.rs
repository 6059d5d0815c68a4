//! The admin listener: `/health`, `/ready`, `/metrics` without a token; everything under
//! `/admin` behind the bearer token (compared in constant time).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Secret;
use crate::error::json_error;
use crate::pipeline::request_id;

/// Admin listener state.
pub struct AdminState {
    /// Bearer token; `None` only on a loopback listener.
    pub token: Option<Secret>,
    /// Renders `/metrics`.
    pub metrics: Option<PrometheusHandle>,
}

/// `GET /metrics` in the Prometheus text format.
pub async fn metrics(state: web::Data<AdminState>) -> HttpResponse {
    match &state.metrics {
        Some(h) => HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(h.render()),
        None => HttpResponse::ServiceUnavailable().finish(),
    }
}

/// Whether the request carries the admin bearer token (always true without a token).
pub fn authorized(req: &HttpRequest, state: &AdminState) -> bool {
    let Some(token) = &state.token else {
        return true;
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    token.matches(presented)
}

/// The 401 for a missing or wrong admin token.
pub fn unauthorized(req: &HttpRequest) -> HttpResponse {
    let mut res = json_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid admin bearer token is required".into(),
        &request_id::of(req),
        None,
        false,
    );
    res.headers_mut()
        .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"gateway-admin\""));
    res
}

/// Anything else on the admin listener: 401 without the token, else JSON 404.
pub async fn fallback(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    if !authorized(&req, &state) {
        return unauthorized(&req);
    }
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no admin route {} {}", req.method(), req.path()),
        &request_id::of(&req),
        None,
        false,
    )
}
