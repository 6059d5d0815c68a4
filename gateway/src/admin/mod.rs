//! The admin listener: `/health`, `/ready`, `/metrics` and the static `/admin/dashboard`
//! page without a token; everything else under `/admin` behind the bearer token
//! (compared in constant time). Without a token, `guard` keeps web pages out (`Host`,
//! `Origin`, `Sec-Fetch-Site`); bodies must be JSON either way. JSON in and out; errors
//! are `{"error","message","request_id"}` plus `field` for validation errors.

mod analytics;
mod cache;
mod circuits;
mod consumers;
mod dashboard;
mod error;
mod events;
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod instances;
mod json;
mod nodes;
mod openapi;
mod queues;
mod ratelimits;
mod services;
mod stamp;

use std::time::Duration;

use actix::Addr;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};
use actors::membership::Membership;
use actors::registry::ServiceRegistry;
use metrics_exporter_prometheus::PrometheusHandle;

pub use error::AdminError;
pub use guard::host_check;
pub use stamp::stamp;

use crate::config::Secret;
use crate::error::json_error;
use crate::pipeline::request_id;

/// How long an admin call waits for an actor.
const ACTOR_WAIT: Duration = Duration::from_secs(5);
/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 1024 * 1024;

/// Admin listener state.
pub struct AdminState {
    /// Bearer token; `None` only on a loopback listener.
    pub token: Option<Secret>,
    /// The admin listen address (a token-less listener answers only its IP or `localhost`).
    pub listen: std::net::SocketAddr,
    /// Renders `/metrics`.
    pub metrics: Option<PrometheusHandle>,
    /// The registry.
    pub registry: Addr<ServiceRegistry>,
    /// Cluster membership.
    pub membership: Addr<Membership>,
    /// The node's rate-limit policies (services may only name these).
    pub policies: actors::ratelimit::PolicyRegistry,
    /// The rate limiter actor (admin read/reset).
    pub rate_limiter: Addr<actors::ratelimit::RateLimiter>,
    /// Local fan-out of cluster events (SSE).
    pub events: actors::redis::events::EventStream,
    /// Registry storage, for replaying the event log (Redis mode).
    pub registry_store: Option<actors::registry::RegistryStore>,
    /// The auth actor (consumers, keys, revocations).
    pub auth: Addr<actors::auth::AuthGuard>,
    /// The auth snapshot.
    pub auth_view: actors::auth::AuthView,
    /// The cache manager (purges).
    pub cache: Addr<actors::cache::CacheManager>,
    /// The current route table (which services cache).
    pub routes: actors::registry::RoutesView,
    /// The circuit breaker actor.
    pub circuits: Addr<actors::circuit::CircuitBreaker>,
    /// Whether `[auth.jwt]` is configured (services with `auth = jwt|any` need it).
    pub jwt_configured: bool,
    /// `[auth.jwt] issuer`: the default `iss` of an admin revocation by `jti`.
    pub jwt_issuer: Option<String>,
    /// The job queues (counts, dead letters, retry).
    pub queues: actors::queue::Queues,
    /// Usage analytics (reports).
    pub analytics: actors::analytics::Analytics,
}

/// Mounts every admin route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(MAX_ADMIN_BODY))
        .app_data(web::QueryConfig::default().error_handler(|e, _| query_error(&e).into()))
        .route("/metrics", web::get().to(metrics))
        // A static page without secrets: it asks the operator for the token itself.
        .route("/admin/dashboard", web::get().to(dashboard::page))
        .service(
            web::scope("/admin")
                .wrap(from_fn(require_token))
                .configure(services::routes)
                .configure(instances::routes)
                .configure(consumers::routes)
                .configure(nodes::routes)
                .configure(events::routes)
                .configure(openapi::routes)
                .configure(ratelimits::routes)
                .configure(circuits::routes)
                .configure(cache::routes)
                .configure(queues::routes)
                .configure(analytics::routes)
                .default_service(web::to(not_found)),
        )
        .default_service(web::to(not_found));
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

async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let id = request_id::of(req.request());
    let allowed = req.app_data::<web::Data<AdminState>>().is_some_and(|s| authorized(req.request(), s));
    if !allowed {
        let (http, _) = req.into_parts();
        let mut res = json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin bearer token is required".into(),
            &id,
            None,
            false,
        );
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"gateway-admin\""));
        return Ok(ServiceResponse::new(http, res));
    }
    // Without a token the browser checks stand in for it (see `guard`).
    let tokenless = req.app_data::<web::Data<AdminState>>().is_none_or(|s| s.token.is_none());
    if let Err(refusal) = guard::check_api(req.headers(), tokenless) {
        let (http, _) = req.into_parts();
        return Ok(ServiceResponse::new(http, guard::refuse(&refusal, &id)));
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    // Errors carry the request's id in body and header; successes in the header.
    let rendered = res.response().error().and_then(|e| e.as_error::<AdminError>()).map(|e| e.render(&id));
    if let Some(r) = rendered {
        res = res.into_response(r);
    } else if res.status() == StatusCode::METHOD_NOT_ALLOWED && !res.headers().contains_key(header::CONTENT_TYPE) {
        // actix-web's bodiless 405 of a resource: the same JSON as every other error.
        let allow = res.headers().get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let r = method_not_allowed(res.request(), &id, &allow);
        res = res.into_response(r);
    }
    res.headers_mut().insert(crate::names::X_REQUEST_ID.clone(), id);
    Ok(res)
}

/// A query string that does not fit its handler: `400 validation_failed` naming the
/// parameter when serde names it, else `query`.
fn query_error(e: &actix_web::error::QueryPayloadError) -> AdminError {
    let message = match e {
        actix_web::error::QueryPayloadError::Deserialize(inner) => inner.to_string(),
        other => other.to_string(),
    };
    let field = crate::config::error_field("", &message);
    AdminError::validation(if field.is_empty() { "query".into() } else { field }, format!("invalid query: {message}"))
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, AdminError> {
    // A route that exists with other methods: 405 with `Allow` (RFC 9110 §15.5.6).
    if let Some(allow) = openapi::allowed_methods(req.path()) {
        return Ok(method_not_allowed(&req, &request_id::of(&req), &allow));
    }
    Err(AdminError::not_found(format!("no admin route {} {}", req.method(), req.path())))
}

/// `405 method_not_allowed` as JSON with the `Allow` header.
fn method_not_allowed(req: &HttpRequest, id: &header::HeaderValue, allow: &str) -> HttpResponse {
    let message = format!("{} is not allowed on {}; allowed: {allow}", req.method(), req.path());
    let mut res = json_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message, id, None, false);
    if let Ok(v) = header::HeaderValue::from_str(allow) {
        res.headers_mut().insert(header::ALLOW, v);
    }
    res
}
