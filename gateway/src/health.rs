//! `/health` (liveness plus Redis status and degraded actors) and `/ready` (registry
//! loaded and Redis reachable, or memory mode), read from the lock-free `NodeStatus`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use actors::status::NodeStatus;
use serde::Serialize;

/// What `/health` and `/ready` report.
#[derive(Clone)]
pub struct Health {
    /// Node id.
    pub node: Arc<str>,
    /// Status board.
    pub status: NodeStatus,
}

#[derive(Serialize)]
struct Body<'a> {
    status: &'static str,
    node: &'a str,
    redis: &'static str,
    degraded: Vec<&'static str>,
}

impl Health {
    fn body(&self) -> Body<'_> {
        let degraded = self.status.degraded();
        Body {
            status: if degraded.is_empty() { "ok" } else { "degraded" },
            node: &self.node,
            redis: self.status.redis_state().as_str(),
            degraded,
        }
    }
}

/// `GET /health`: 200 while the node can serve.
pub async fn health(req: HttpRequest, h: web::Data<Health>) -> HttpResponse {
    answer(&req, StatusCode::OK).json(h.body())
}

/// `GET /ready`: 200 when ready, else 503, same body.
pub async fn ready(req: HttpRequest, h: web::Data<Health>) -> HttpResponse {
    let status = if h.status.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    answer(&req, status).json(h.body())
}

/// A response builder carrying the request's `X-Request-Id` (SPEC §4: every response).
fn answer(req: &HttpRequest, status: StatusCode) -> HttpResponseBuilder {
    let mut res = HttpResponse::build(status);
    res.insert_header((crate::names::X_REQUEST_ID.clone(), crate::pipeline::request_id::of(req)));
    res
}
