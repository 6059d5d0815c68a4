//! `DELETE /admin/cache?service=&prefix=&key=`: purges cached responses on every node —
//! a service's whole cache, the URLs under a client path prefix, or one URL (`key`, the
//! client path with its query). Without `service`, every caching service is purged.

use actix_web::{HttpResponse, web};
use actors::cache::{Purge, Scope};
use serde::Deserialize;

use super::{ACTOR_WAIT, AdminError, AdminState};

/// Mounts the route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/cache", web::delete().to(purge));
}

#[derive(Deserialize)]
struct Query {
    service: Option<String>,
    prefix: Option<String>,
    key: Option<String>,
}

async fn purge(state: web::Data<AdminState>, q: web::Query<Query>) -> Result<HttpResponse, AdminError> {
    let q = q.into_inner();
    let scope = match (q.prefix, q.key) {
        (Some(_), Some(_)) => {
            return Err(AdminError::validation("key", "give either prefix or key, not both"));
        }
        (Some(p), None) if !p.starts_with('/') => return Err(AdminError::validation("prefix", "must start with /")),
        (Some(p), None) => Scope::Prefix(p),
        (None, Some(k)) => {
            let (path, query) = k.split_once('?').unwrap_or((&k, ""));
            Scope::Urls(vec![actors::cache::key::url_id(path, query)])
        }
        (None, None) => Scope::All,
    };
    let table = state.routes.load_full();
    let services: Vec<String> = match q.service {
        Some(name) => {
            let route = table.routes().find(|r| *r.name == *name);
            match route {
                None => return Err(AdminError::not_found(format!("no service {name:?}"))),
                Some(_) => vec![name],
            }
        }
        None => table.routes().filter(|r| r.spec.cache.is_some()).map(|r| r.name.to_string()).collect(),
    };
    state
        .cache
        .send(Purge { services, scope })
        .timeout(ACTOR_WAIT)
        .await?
        .map_err(|e| AdminError::unavailable(e.to_string()))?;
    Ok(HttpResponse::NoContent().finish())
}
