//! `/admin/services`: create, read, replace, merge-patch and delete services. Bodies are
//! the JSON form of a `[[services]]` table; responses show every field's effective value.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use actors::registry::{CreateService, DeleteService, GetService, ListServices, UpsertService};
use actors::spec::{AuthMode, ServiceSpec};
use serde_json::Value;

use super::json::{merge_patch, parse_json, parse_patch, with_path_key};
use super::{ACTOR_WAIT, AdminError, AdminState};

/// Mounts the service routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/services").route(web::get().to(list)).route(web::post().to(create))).service(
        web::resource("/services/{name}")
            .route(web::get().to(get))
            .route(web::put().to(replace))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete)),
    );
}

/// Rules that depend on the node's config (policies, JWT) rather than on the service.
fn check_against_config(spec: &ServiceSpec, state: &AdminState) -> Result<(), AdminError> {
    for (i, p) in spec.rate_limit.0.iter().enumerate() {
        if !state.policies.contains(p) {
            let field =
                if spec.rate_limit.0.len() == 1 { "rate_limit".to_string() } else { format!("rate_limit[{i}]") };
            return Err(AdminError::validation(field, format!("unknown rate-limit policy {p:?}")));
        }
    }
    if matches!(spec.auth, AuthMode::Jwt | AuthMode::Any) && !state.jwt_configured {
        return Err(AdminError::validation("auth", "this gateway has no [auth.jwt] configuration"));
    }
    Ok(())
}

fn validated(spec: ServiceSpec, state: &AdminState) -> Result<ServiceSpec, AdminError> {
    let spec = spec.validate().map_err(|e| AdminError::validation(e.field, e.message))?;
    check_against_config(&spec, state)?;
    Ok(spec)
}

async fn list(state: web::Data<AdminState>) -> Result<HttpResponse, AdminError> {
    let services = state.registry.send(ListServices).timeout(ACTOR_WAIT).await?;
    Ok(HttpResponse::Ok().json(services.iter().map(|s| &**s).collect::<Vec<_>>()))
}

async fn create(state: web::Data<AdminState>, body: web::Bytes) -> Result<HttpResponse, AdminError> {
    let spec = validated(parse_json(&body)?, &state)?;
    let created = state.registry.send(CreateService(spec)).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::Created().json(&*created))
}

async fn get(state: web::Data<AdminState>, name: web::Path<String>) -> Result<HttpResponse, AdminError> {
    let spec = current(&state, &name).await?;
    Ok(HttpResponse::Ok().json(&*spec))
}

async fn current(state: &AdminState, name: &str) -> Result<Arc<ServiceSpec>, AdminError> {
    state
        .registry
        .send(GetService(name.to_string()))
        .timeout(ACTOR_WAIT)
        .await?
        .ok_or_else(|| AdminError::not_found(format!("service {name:?} not found")))
}

async fn replace(
    state: web::Data<AdminState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    let raw: Value = parse_json(&body)?;
    let spec: ServiceSpec = parse_json(&serde_json::to_vec(&with_path_key(raw, "name", &name)?).unwrap_or_default())?;
    let spec = validated(spec, &state)?;
    let (spec, created) = state.registry.send(UpsertService(spec)).timeout(ACTOR_WAIT).await??;
    Ok(if created { HttpResponse::Created() } else { HttpResponse::Ok() }.json(&*spec))
}

async fn patch(
    state: web::Data<AdminState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    let patch = parse_patch(&body)?;
    let existing = current(&state, &name).await?;
    let mut doc = serde_json::to_value(&*existing).unwrap_or(Value::Null);
    merge_patch(&mut doc, &patch);
    let doc = with_path_key(doc, "name", &name)?;
    let spec: ServiceSpec = parse_json(&serde_json::to_vec(&doc).unwrap_or_default())?;
    let spec = validated(spec, &state)?;
    let (spec, _) = state.registry.send(UpsertService(spec)).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::Ok().json(&*spec))
}

async fn delete(state: web::Data<AdminState>, name: web::Path<String>) -> Result<HttpResponse, AdminError> {
    state.registry.send(DeleteService(name.into_inner())).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::NoContent().finish())
}
