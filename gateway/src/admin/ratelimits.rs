//! `GET /admin/ratelimits/{policy}/{key}` reads a counter without counting a request;
//! `DELETE` the same resets it. `{key}` is the key value as built for requests
//! (`consumer` → consumer id, `ip` → address, `route` → service name, parts joined by `+`).

use actix_web::{HttpResponse, web};
use actors::ratelimit::{RateLimitAdminError, ReadCounter, ResetCounter};

use super::{ACTOR_WAIT, AdminError, AdminState};

impl From<RateLimitAdminError> for AdminError {
    fn from(e: RateLimitAdminError) -> Self {
        match e {
            RateLimitAdminError::UnknownPolicy(_) => AdminError::not_found(e.to_string()),
            RateLimitAdminError::Unavailable(_) => AdminError::unavailable(e.to_string()),
        }
    }
}

/// Mounts the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/ratelimits/{policy}/{key}").route(web::get().to(read)).route(web::delete().to(reset)));
}

async fn read(state: web::Data<AdminState>, path: web::Path<(String, String)>) -> Result<HttpResponse, AdminError> {
    let (policy, key) = path.into_inner();
    let (spec, v) =
        state.rate_limiter.send(ReadCounter { policy: policy.clone(), key: key.clone() }).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "policy": policy,
        "key": key,
        "limit": spec.limit,
        "remaining": v.remaining,
        "reset": v.reset_ms.div_ceil(1000).max(1),
    })))
}

async fn reset(state: web::Data<AdminState>, path: web::Path<(String, String)>) -> Result<HttpResponse, AdminError> {
    let (policy, key) = path.into_inner();
    state.rate_limiter.send(ResetCounter { policy, key }).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::NoContent().finish())
}
