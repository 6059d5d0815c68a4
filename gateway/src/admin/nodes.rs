//! `GET /admin/nodes`: live cluster members.

use actix_web::{HttpResponse, web};
use actors::membership::ListNodes;

use super::{ACTOR_WAIT, AdminError, AdminState};

/// Mounts the node routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/nodes", web::get().to(list));
}

async fn list(state: web::Data<AdminState>) -> Result<HttpResponse, AdminError> {
    let nodes = state
        .membership
        .send(ListNodes)
        .timeout(ACTOR_WAIT)
        .await?
        .map_err(|e| AdminError::unavailable(format!("cannot list nodes: {e}")))?;
    Ok(HttpResponse::Ok().json(nodes))
}
