//! The upstream phase (SPEC §4 steps 6–8): the cache for services that cache, else the
//! proxy (balancer, breaker, the `Upstream` client). It ends every request no policy
//! answered; its answer is the upstream's (or the cache's), or a gateway error.

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use actors::auth::Identity;
use actors::registry::Route;
use actors::spec::HashKey;

use super::forwarded::ClientAddr;
use super::{Ctx, Pipeline, cache, limits};
use crate::error::GatewayError;
use crate::otlp::Step;
use crate::proxy::{self, Forward};

/// What a `Forward` borrows that is computed per request rather than kept in `Ctx`.
pub(crate) struct Extras {
    hash_key: Option<Vec<u8>>,
    traceparent: Option<HeaderValue>,
}

impl Extras {
    /// The consistent-hash input and the `traceparent` to send, for `cx`.
    pub(crate) fn of(cx: &Ctx<'_>) -> Self {
        Self {
            hash_key: hash_key(cx.req, &cx.route, &cx.addr, cx.identity.as_ref()),
            traceparent: cx.spans.as_ref().map(|s| s.upstream_header.clone()),
        }
    }
}

/// The request as the proxy sends it.
pub(crate) fn forward<'a>(node: &'a Pipeline, cx: &'a Ctx<'_>, x: &'a Extras) -> Forward<'a> {
    Forward {
        req: cx.req,
        route: &cx.route,
        upstream_path: cx.route.upstream_path(&cx.path),
        addr: &cx.addr,
        request_id: &cx.request_id,
        via: &node.via,
        hash_key: x.hash_key.as_deref(),
        limits: &cx.limits,
        started: cx.started,
        identity: cx.identity.as_ref(),
        breakers: node.breakers.as_ref(),
        conditional: None,
        traceparent: x.traceparent.as_ref(),
    }
}

/// Serves the request from the cache or the upstream; records what the cache did and
/// what happened upstream in `cx`.
pub(crate) async fn serve(
    node: &web::Data<Pipeline>,
    client: &web::Data<proxy::Upstream>,
    cx: &mut Ctx<'_>,
) -> Result<HttpResponse, GatewayError> {
    let kind = limits::body_kind(cx.req.headers(), &cx.limits)?;
    let payload = cx.payload.take();
    let x = Extras::of(cx);
    if let (Some(layer), Some(spec)) = (&node.cache, cx.route.spec.cache.as_ref()) {
        let refresh = || cache::Refresh {
            cx: node.clone(),
            client: client.clone(),
            req: cx.req.clone(),
            route: Arc::clone(&cx.route),
            upstream_path: cx.route.upstream_path(&cx.path).to_string(),
            addr: cx.addr.clone(),
            request_id: cx.request_id.clone(),
            hash_key: x.hash_key.clone(),
            identity: cx.identity.clone(),
        };
        let started = cx.clock();
        let step = cache::Step { fw: forward(node, cx, &x), path: &cx.path, spec, payload, kind };
        let served = cache::serve(layer, step, client, refresh).await;
        cx.upstream = served.outcome;
        cx.cache = Some(served.status);
        cx.step(Step::Cache, started);
        return served.response;
    }
    let proxied = proxy::forward(forward(node, cx, &x), payload, kind, client).await;
    cx.upstream = proxied.outcome;
    proxied.response
}

/// The consistent-hash input for the route's balancer, if it hashes.
fn hash_key(req: &HttpRequest, route: &Route, addr: &ClientAddr, identity: Option<&Identity>) -> Option<Vec<u8>> {
    let actors::spec::BalancerKind::ConsistentHash(key) = route.pool.kind() else {
        return None;
    };
    let ip = || addr.ip.map(|ip| ip.to_string().into_bytes());
    match key {
        HashKey::Ip => ip(),
        // Anonymous requests hash on the client address.
        HashKey::Consumer => identity.map(|i| i.consumer.as_bytes().to_vec()).or_else(ip),
        HashKey::Header(name) => req.headers().get(name.as_str()).map(|v| v.as_bytes().to_vec()),
        HashKey::Cookie(name) => cookie(req, name).map(String::into_bytes),
    }
}

fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}
