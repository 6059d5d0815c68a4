//! `/admin/services/{name}/instances`: list every endpoint of a service with its health
//! and source, register instances (with a `ttl` they are self-registered and must
//! heartbeat), deregister them, and heartbeat.

use actix_web::{HttpResponse, web};
use actors::balancer::EndpointSource;
use actors::registry::{DeregisterInstance, HeartbeatInstance, InstanceRecord, ListInstances, RegisterInstance};
use actors::spec::UpstreamUrl;
use actors::units::HumanDuration;
use serde::Deserialize;

use super::json::parse_json;
use super::{ACTOR_WAIT, AdminError, AdminState};

/// Mounts the instance routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/services/{name}/instances").route(web::get().to(list)).route(web::post().to(register)))
        .route("/services/{name}/instances/{id}", web::delete().to(deregister))
        .route("/services/{name}/instances/{id}/heartbeat", web::put().to(heartbeat));
}

/// The body of `POST .../instances`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewInstance {
    id: Option<String>,
    url: UpstreamUrl,
    #[serde(default = "one")]
    weight: u32,
    ttl: Option<HumanDuration>,
}

fn one() -> u32 {
    1
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

async fn list(state: web::Data<AdminState>, name: web::Path<String>) -> Result<HttpResponse, AdminError> {
    let list = state.registry.send(ListInstances(name.into_inner())).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::Ok().json(list))
}

async fn register(
    state: web::Data<AdminState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    let new: NewInstance = parse_json(&body)?;
    let id = new.id.unwrap_or_else(|| format!("i-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
    if !valid_id(&id) {
        return Err(AdminError::validation("id", "use 1-128 characters of A-Z a-z 0-9 . _ : -"));
    }
    if new.weight > 10_000 {
        return Err(AdminError::validation("weight", "must be between 0 and 10000"));
    }
    let ttl_ms = new.ttl.map_or(0, |t| t.get().as_millis() as u64);
    if new.ttl.is_some() && ttl_ms < 1000 {
        return Err(AdminError::validation("ttl", "must be at least 1s"));
    }
    if let Some(ttl) = new.ttl {
        actors::units::at_most("ttl", ttl.get(), actors::units::bounds::MAX_PERIOD)
            .map_err(|e| AdminError::validation(e.field, e.message))?;
    }
    let source = if ttl_ms > 0 { EndpointSource::SelfRegistered } else { EndpointSource::Admin };
    let record = InstanceRecord { id, url: new.url, weight: new.weight, ttl_ms, expires_at: 0, source };
    let view =
        state.registry.send(RegisterInstance { service: name.into_inner(), record }).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::Created().json(view))
}

async fn deregister(
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AdminError> {
    let (service, id) = path.into_inner();
    state.registry.send(DeregisterInstance { service, id }).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::NoContent().finish())
}

async fn heartbeat(
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AdminError> {
    let (service, id) = path.into_inner();
    state.registry.send(HeartbeatInstance { service, id }).timeout(ACTOR_WAIT).await??;
    Ok(HttpResponse::NoContent().finish())
}
