//! `GET /admin/queues` (`[{"service","depth","processing","dead"}]`),
//! `GET /admin/queues/{service}/dead` (job objects as `GET /jobs/{id}` shows them) and
//! `POST /admin/queues/{service}/dead/{id}/retry` (`202` with the re-queued job).

use actix_web::{HttpResponse, web};
use actors::queue::QueueError;
use serde_json::Value;

use super::{AdminError, AdminState};

impl From<QueueError> for AdminError {
    fn from(e: QueueError) -> Self {
        AdminError::unavailable(e.to_string())
    }
}

/// Mounts the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/queues", web::get().to(list))
        .route("/queues/{service}/dead", web::get().to(dead))
        .route("/queues/{service}/dead/{id}/retry", web::post().to(retry));
}

fn known(state: &AdminState, service: &str) -> Result<(), AdminError> {
    if state.queues.services().iter().any(|(name, _)| name == service) {
        Ok(())
    } else {
        Err(AdminError::not_found(format!("service {service:?} has no queue")))
    }
}

async fn list(state: web::Data<AdminState>) -> Result<HttpResponse, AdminError> {
    let mut out = Vec::new();
    for (service, _) in state.queues.services() {
        out.push(state.queues.stats(&service).await?);
    }
    Ok(HttpResponse::Ok().json(out))
}

async fn dead(state: web::Data<AdminState>, service: web::Path<String>) -> Result<HttpResponse, AdminError> {
    known(&state, &service)?;
    let jobs: Vec<Value> = state.queues.dead(&service).await?.iter().map(|j| j.view()).collect();
    Ok(HttpResponse::Ok().json(jobs))
}

async fn retry(state: web::Data<AdminState>, path: web::Path<(String, String)>) -> Result<HttpResponse, AdminError> {
    let (service, id) = path.into_inner();
    known(&state, &service)?;
    let job = state
        .queues
        .retry(&service, &id)
        .await?
        .ok_or_else(|| AdminError::not_found(format!("job {id:?} is not a dead letter of {service:?}")))?;
    Ok(HttpResponse::Accepted().json(job.view()))
}
