//! `/health` (liveness plus Redis status and degraded actors) and `/ready`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use actors::snapshot::View;
use serde::Serialize;

/// Redis as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisStatus {
    /// No Redis configured.
    Memory,
    /// Reachable.
    Up,
    /// Configured but unreachable.
    Down,
}

/// The node's health, published by whoever observes a change.
#[derive(Debug, Clone, Serialize)]
pub struct NodeHealth {
    /// `ok` or `degraded`.
    pub status: &'static str,
    /// Node id.
    pub node: Arc<str>,
    /// Redis status.
    pub redis: RedisStatus,
    /// Actors on their fallback.
    pub degraded: Vec<&'static str>,
    /// Whether the node can route (registry loaded, Redis reachable or memory mode).
    #[serde(skip)]
    pub ready: bool,
}

impl NodeHealth {
    /// A healthy, ready node in memory mode.
    pub fn memory(node: Arc<str>) -> Self {
        Self { status: "ok", node, redis: RedisStatus::Memory, degraded: Vec::new(), ready: true }
    }
}

/// Shared health snapshot.
pub type HealthView = View<NodeHealth>;

/// `GET /health`: 200 while the node can serve.
pub async fn health(view: web::Data<HealthView>) -> HttpResponse {
    HttpResponse::Ok().json(&*view.load_full())
}

/// `GET /ready`: 200 when ready, else 503, same body.
pub async fn ready(view: web::Data<HealthView>) -> HttpResponse {
    let h = view.load_full();
    let status = if h.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    HttpResponse::build(status).json(&*h)
}
