//! `GET /admin/ratelimits/{policy}/{key}` reads a counter without counting a request;
//! `DELETE` the same resets it. `{key}` is the key value as built for requests
//! (`consumer` → consumer id, `ip` → address, `route` → service name, parts joined by `+`).

use actix_web::{HttpResponse, web};

use super::{AdminError, AdminState};

/// Mounts the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/ratelimits/{policy}/{key}").route(web::get().to(read)).route(web::delete().to(reset)));
}

async fn read(state: web::Data<AdminState>, path: web::Path<(String, String)>) -> Result<HttpResponse, AdminError> {
    let (policy, key) = path.into_inner();
    let spec = state
        .rate_policies
        .get(&policy)
        .ok_or_else(|| AdminError::not_found(format!("rate-limit policy {policy:?} not found")))?;
    let v = state.limiter.peek(&policy, spec, &key).await.map_err(|e| AdminError::unavailable(e.to_string()))?;
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
    if !state.rate_policies.contains_key(&policy) {
        return Err(AdminError::not_found(format!("rate-limit policy {policy:?} not found")));
    }
    state.limiter.reset(&policy, &key).await.map_err(|e| AdminError::unavailable(e.to_string()))?;
    Ok(HttpResponse::NoContent().finish())
}
