//! `GET /admin/circuits` lists every breaker (with active-health state beside it);
//! `POST /admin/circuits/{instance}/reset` closes an instance's breakers cluster-wide.

use actix_web::{HttpResponse, web};
use actors::circuit::{ListCircuits, ResetCircuit};

use super::{ACTOR_WAIT, AdminError, AdminState};

/// Mounts the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/circuits", web::get().to(list)).route("/circuits/{instance}/reset", web::post().to(reset));
}

async fn list(state: web::Data<AdminState>) -> Result<HttpResponse, AdminError> {
    let circuits = state.circuits.send(ListCircuits).timeout(ACTOR_WAIT).await?;
    Ok(HttpResponse::Ok().json(circuits))
}

async fn reset(state: web::Data<AdminState>, path: web::Path<String>) -> Result<HttpResponse, AdminError> {
    let instance = path.into_inner();
    let found = state.circuits.send(ResetCircuit { instance: instance.clone() }).timeout(ACTOR_WAIT).await?;
    if found == 0 {
        return Err(AdminError::not_found(format!("no circuit breaker for instance {instance:?}")));
    }
    Ok(HttpResponse::NoContent().finish())
}
