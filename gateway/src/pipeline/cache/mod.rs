//! Step 6 (SPEC §7): the response cache in front of the proxy, for services with
//! `[services.cache]`. Lookup (L1, then L2), freshness and `Age` per RFC 9111,
//! `stale-while-revalidate` (serve, refresh once in the background), conditional
//! revalidation (a `304` refreshes the stored headers), `stale-if-error`, invalidation
//! after successful unsafe methods, and coalescing of concurrent misses within the node
//! and (through a fill lock in Redis) across nodes.
//!
//! Pure HTTP-caching rules live in `actors::cache::policy`; this file maps them onto
//! actix types and the proxy.

mod coalesce;
mod http;
mod tee;

pub use coalesce::Coalescer;
use coalesce::{Fill, Join};
use http::{from_entry, header_str, plan, request_directives, revalidated, vary_values};
use tee::Tee;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::BoxBody;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use actors::auth::Identity;
use actors::cache::policy::Usable;
use actors::cache::{Cache, CachedResponse, Scope, key};
use actors::registry::Route;
use actors::spec::{AuthMode, CacheCookies, CacheScope, CacheSpec};
use bytes::Bytes;

use super::Pipeline;
use super::forwarded::ClientAddr;
use super::limits::BodyKind;
use crate::error::GatewayError;
use crate::proxy::{self, Conditional, Forward, Outcome};

/// Longest wait for another request (or node) filling the same key.
const MAX_FILL_WAIT: Duration = Duration::from_secs(30);

/// `X-Cache-Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache.
    Hit,
    /// Fetched (or revalidated) upstream.
    Miss,
    /// Not cacheable: method, request directives or an earlier refusal.
    Bypass,
    /// A stale copy served (`stale-while-revalidate` / `stale-if-error`).
    Stale,
}

impl CacheStatus {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
            Self::Stale => "STALE",
        }
    }

    /// Label of `gateway_cache_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
            Self::Stale => "stale",
        }
    }
}

/// The cache and the node's in-flight fills.
pub struct CacheLayer {
    /// L1 + L2.
    pub cache: Cache,
    /// In-flight fills on this node.
    pub coalescer: Coalescer,
}

/// Owned copies of what a background refresh needs (built only for stale-while-revalidate).
pub struct Refresh {
    /// The node context.
    pub cx: web::Data<Pipeline>,
    /// The worker's upstream client.
    pub client: web::Data<proxy::Upstream>,
    /// The client request (its head).
    pub req: HttpRequest,
    /// The route.
    pub route: Arc<Route>,
    /// Upstream path.
    pub upstream_path: String,
    /// Client address.
    pub addr: ClientAddr,
    /// Request id.
    pub request_id: HeaderValue,
    /// Consistent-hash input.
    pub hash_key: Option<Vec<u8>>,
    /// Verified caller.
    pub identity: Option<Identity>,
}

/// The per-request inputs of the cache step.
pub struct Step<'a> {
    /// The forward as the proxy would do it.
    pub fw: Forward<'a>,
    /// The normalized client path.
    pub path: &'a str,
    /// The service's cache settings.
    pub spec: &'a CacheSpec,
    /// The request body (`None` once another phase took it).
    pub payload: Option<web::Payload>,
    /// Its kind.
    pub kind: BodyKind,
}

struct Keys {
    service: Arc<str>,
    url: Arc<str>,
    primary: String,
    /// The request carried `Authorization` and the entry is shared (no consumer in the
    /// key): only answers that allow it are stored (RFC 9111 §3.5).
    authorized: bool,
}

impl Keys {
    /// The key of this fill among the node's in-flight fills.
    fn fill(&self) -> String {
        format!("{}/{}", self.service, self.primary)
    }
}

/// What the cache step gave.
pub struct Served {
    /// The answer (stored, fetched or revalidated), or the error to answer with.
    pub response: Result<HttpResponse, GatewayError>,
    /// What happened upstream, when the cache went there.
    pub outcome: Outcome,
    /// `X-Cache-Status`.
    pub status: CacheStatus,
}

/// Runs the cache step and the proxy behind it.
pub async fn serve(
    layer: &CacheLayer,
    step: Step<'_>,
    client: &proxy::Upstream,
    refresh: impl FnOnce() -> Refresh,
) -> Served {
    let mut outcome = Outcome::default();
    let mut status = CacheStatus::Bypass;
    let response = lookup(layer, step, client, &mut outcome, &mut status, refresh).await;
    Served { response, outcome, status }
}

/// Forwards through the proxy, keeping what happened upstream in `outcome`.
async fn proxied(
    fw: Forward<'_>,
    payload: Option<web::Payload>,
    kind: BodyKind,
    client: &proxy::Upstream,
    outcome: &mut Outcome,
) -> Result<HttpResponse, GatewayError> {
    let p = proxy::forward(fw, payload, kind, client).await;
    *outcome = p.outcome;
    p.response
}

/// `serve`'s steps; `outcome` and `status` follow what they do.
async fn lookup(
    layer: &CacheLayer,
    step: Step<'_>,
    client: &proxy::Upstream,
    outcome: &mut Outcome,
    status: &mut CacheStatus,
    refresh: impl FnOnce() -> Refresh,
) -> Result<HttpResponse, GatewayError> {
    let Step { fw, path, spec, payload, kind } = step;
    let req = fw.req;
    let method = req.method().clone();
    let service = Arc::clone(&fw.route.name);
    if method != Method::GET && method != Method::HEAD {
        *status = CacheStatus::Bypass;
        let res = proxied(fw, payload, kind, client, outcome).await?;
        if matches!(method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE) && res.status().as_u16() < 400
        {
            invalidate(layer, &service, req, path, res.headers()).await;
        }
        return Ok(res);
    }
    let req_cc = request_directives(req.headers());
    // A body (`Content-Length` > 0 or chunked) is not part of the key: such a request
    // must neither get nor leave the bodiless entry.
    if req_cc.no_store || req.headers().contains_key(header::RANGE) || !matches!(kind, BodyKind::Empty) {
        *status = CacheStatus::Bypass;
        return proxied(fw, payload, kind, client, outcome).await;
    }
    // Shared entries (no consumer in the key) follow a shared cache's rules; an entry keyed
    // by its consumer is private to that consumer.
    let consumer = consumer_of(fw.route, spec, fw.identity);
    if consumer.is_none() && spec.cookies == CacheCookies::Bypass && req.headers().contains_key(header::COOKIE) {
        *status = CacheStatus::Bypass;
        return proxied(fw, payload, kind, client, outcome).await;
    }
    let keys = keys_of(&service, req, path, consumer);
    let hit =
        layer.cache.lookup(&keys.service, &keys.url, &keys.primary, |names| vary_values(req.headers(), names)).await;
    let mut stale = None;
    if let Some(hit) = hit {
        let age = hit.response.age.current_age_ms(actors::now_unix_ms());
        match hit.response.freshness.usable(age, &req_cc) {
            Usable::Fresh => {
                *status = CacheStatus::Hit;
                return Ok(from_entry(req, &hit.response, age));
            }
            Usable::StaleWhileRevalidate => {
                *status = CacheStatus::Stale;
                spawn_refresh(layer, refresh(), keys, Arc::clone(&hit.response), hit.key_hash);
                return Ok(from_entry(req, &hit.response, age));
            }
            Usable::Revalidate => stale = Some((hit.response, hit.key_hash)),
        }
    }
    *status = CacheStatus::Miss;
    if method == Method::HEAD {
        // HEAD answers are never stored; a stored GET answers HEAD when fresh.
        return proxied(fw, payload, kind, client, outcome).await;
    }
    fill(layer, fw, keys, spec, stale, payload, kind, client, outcome, status).await
}

/// Fetches (or revalidates) upstream for a miss, sharing the result with concurrent
/// requests for the same key on this node and on other nodes.
#[allow(clippy::too_many_arguments)]
async fn fill(
    layer: &CacheLayer,
    fw: Forward<'_>,
    keys: Keys,
    spec: &CacheSpec,
    stale: Option<(Arc<CachedResponse>, String)>,
    payload: Option<web::Payload>,
    kind: BodyKind,
    client: &proxy::Upstream,
    outcome: &mut Outcome,
    status: &mut CacheStatus,
) -> Result<HttpResponse, GatewayError> {
    let req = fw.req;
    let via = fw.via;
    let wait = fw.route.spec.timeout.get().saturating_add(Duration::from_secs(1)).min(MAX_FILL_WAIT);
    let guard = match layer.coalescer.join(&keys.fill()) {
        Join::Lead(guard) => Some(guard),
        Join::Wait(mut rx) => {
            let done = tokio::time::timeout(wait, rx.wait_for(|f| !matches!(f, Fill::Pending))).await;
            let fill = match done {
                Ok(Ok(f)) => f.clone(),
                _ => Fill::NotShared,
            };
            match fill {
                Fill::Filled => {
                    if let Some(res) = lookup_fresh(layer, &keys, req).await {
                        *status = CacheStatus::Hit;
                        return Ok(res);
                    }
                }
                Fill::Failed(e) => return stale_or(stale.as_ref(), req, e, status),
                Fill::Pending | Fill::NotShared => {}
            }
            None
        }
    };
    let mut locked = false;
    if guard.is_some() {
        match layer.cache.try_lock(&keys.service, &keys.primary, wait).await {
            Some(true) => {
                // A fill may have landed between our lookup and the lock: check once more.
                if let Some(res) = lookup_fresh(layer, &keys, req).await {
                    layer.cache.release_quietly(&keys.service, &keys.primary).await;
                    *status = CacheStatus::Hit;
                    if let Some(g) = guard {
                        g.finish(Fill::Filled);
                    }
                    return Ok(res);
                }
                locked = true;
            }
            // Another node is fetching this key: wait for its fill notice.
            Some(false) if layer.cache.wait_fill(&keys.service, &keys.primary, wait).await => {
                if let Some((_, key_hash)) = &stale {
                    layer.cache.forget(&keys.service, key_hash);
                }
                layer.cache.forget(&keys.service, &keys.primary);
                if let Some(res) = lookup_fresh(layer, &keys, req).await {
                    *status = CacheStatus::Hit;
                    if let Some(g) = guard {
                        g.finish(Fill::Filled);
                    }
                    return Ok(res);
                }
            }
            Some(false) | None => {}
        }
    }
    let conditional = Conditional {
        etag: stale.as_ref().and_then(|(s, _)| s.header("etag")).and_then(|v| HeaderValue::from_bytes(v).ok()),
        last_modified: stale
            .as_ref()
            .and_then(|(s, _)| s.header("last-modified"))
            .and_then(|v| HeaderValue::from_bytes(v).ok()),
    };
    let route_cache = Arc::clone(&keys.service);
    let fw = Forward { conditional: Some(&conditional), ..fw };
    let request_ms = actors::now_unix_ms();
    let result = proxied(fw, payload, kind, client, outcome).await;
    let release = |layer: &CacheLayer| {
        if locked {
            let cache = layer.cache.clone();
            let (service, primary) = (Arc::clone(&keys.service), keys.primary.clone());
            actix_rt::spawn(async move { cache.release(&service, &primary).await });
        }
    };
    let res = match result {
        Err(e) => {
            release(layer);
            if let Some(g) = guard {
                g.finish(Fill::Failed(e.clone()));
            }
            return stale_or(stale.as_ref(), req, e, status);
        }
        Ok(res) => res,
    };
    let code = res.status();
    if let (StatusCode::NOT_MODIFIED, Some((old, _))) = (code, &stale) {
        let settings = layer.cache.settings();
        let (updated, ttl) = revalidated(old, res.headers(), request_ms, settings, spec, via, keys.authorized);
        let Some(ttl) = ttl else {
            // Still valid, but not to be stored (again): this client gets it once.
            release(layer);
            return Ok(from_entry(req, &updated, updated.age.current_age_ms(actors::now_unix_ms())));
        };
        let (stored, write) = layer.cache.save(&route_cache, &keys.url, &keys.primary, updated, ttl);
        actix_rt::spawn(write);
        if let Some(g) = guard {
            g.finish(Fill::Filled);
        }
        return Ok(from_entry(req, &stored, stored.age.current_age_ms(actors::now_unix_ms())));
    }
    if matches!(code.as_u16(), 500 | 502 | 503 | 504)
        && let Some(old) = stale_on_error(stale.as_ref(), req)
    {
        release(layer);
        *status = CacheStatus::Stale;
        return Ok(old);
    }
    let Some(plan) = plan(&res, req, request_ms, layer, spec, via, keys.authorized) else {
        release(layer);
        return Ok(res);
    };
    // Stream to this client while keeping a copy; the copy is stored once complete.
    let cache = layer.cache.clone();
    let done = move |body: Option<Bytes>| {
        let fill = match body {
            Some(body) => {
                let (response, ttl) = plan.into_entry(body);
                let (_, write) = cache.save(&keys.service, &keys.url, &keys.primary, response, ttl);
                actix_rt::spawn(write);
                Fill::Filled
            }
            None => {
                if locked {
                    let (service, primary) = (Arc::clone(&keys.service), keys.primary.clone());
                    actix_rt::spawn(async move { cache.release(&service, &primary).await });
                }
                Fill::NotShared
            }
        };
        if let Some(g) = guard {
            g.finish(fill);
        }
    };
    let max = layer.cache.settings().max_object as usize;
    Ok(res.map_body(|_, body| BoxBody::new(Tee::new(body, max, Box::new(done)))))
}

/// A stored response that is fresh for this request, rendered. The request's own
/// directives count: after `no-cache` (or a `max-age` the entry exceeds) nothing stored
/// qualifies, so such a request reaches the origin even when a fill landed meanwhile.
async fn lookup_fresh(layer: &CacheLayer, keys: &Keys, req: &HttpRequest) -> Option<HttpResponse> {
    let req_cc = request_directives(req.headers());
    if req_cc.no_cache {
        return None;
    }
    let hit = layer.cache.lookup(&keys.service, &keys.url, &keys.primary, |n| vary_values(req.headers(), n)).await?;
    let age = hit.response.age.current_age_ms(actors::now_unix_ms());
    (hit.response.freshness.usable(age, &req_cc) == Usable::Fresh).then(|| from_entry(req, &hit.response, age))
}

/// `stale-if-error`: the stale copy rendered, when it may stand in for an upstream error.
fn stale_on_error(stale: Option<&(Arc<CachedResponse>, String)>, req: &HttpRequest) -> Option<HttpResponse> {
    let (old, _) = stale?;
    let age = old.age.current_age_ms(actors::now_unix_ms());
    old.freshness.usable_on_error(age).then(|| from_entry(req, old, age))
}

/// `stale-if-error` for an error of the gateway's own (502, 503, 504): the stale copy when
/// it may stand in, else the error.
fn stale_or(
    stale: Option<&(Arc<CachedResponse>, String)>,
    req: &HttpRequest,
    e: GatewayError,
    status: &mut CacheStatus,
) -> Result<HttpResponse, GatewayError> {
    let old = stale_on_error(stale, req).ok_or(e)?;
    *status = CacheStatus::Stale;
    Ok(old)
}

/// The consumer the entry is kept for: `None` for a shared entry (`scope = "shared"`, or
/// no verified consumer).
fn consumer_of<'a>(route: &Route, spec: &CacheSpec, identity: Option<&'a Identity>) -> Option<&'a str> {
    let scope =
        spec.scope.unwrap_or(if route.spec.auth == AuthMode::None { CacheScope::Shared } else { CacheScope::Consumer });
    match scope {
        CacheScope::Consumer => identity.map(|i| i.consumer.as_str()),
        CacheScope::Shared => None,
    }
}

fn keys_of(service: &Arc<str>, req: &HttpRequest, path: &str, consumer: Option<&str>) -> Keys {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let url = key::url_id(path, req.query_string());
    let primary = key::primary(consumer, host, &url);
    let authorized = consumer.is_none() && req.headers().contains_key(header::AUTHORIZATION);
    Keys { service: Arc::clone(service), url: url.into(), primary, authorized }
}

/// A successful unsafe request invalidates its URL and the `Location` /
/// `Content-Location` it names, on every node.
async fn invalidate(layer: &CacheLayer, service: &Arc<str>, req: &HttpRequest, path: &str, headers: &HeaderMap) {
    let mut urls = vec![key::url_id(path, req.query_string())];
    let host = header_str(req.headers(), &header::HOST).unwrap_or("");
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(loc) = header_str(headers, &name) else { continue };
        let local = match loc.split_once("://") {
            Some((_, rest)) => match rest.split_once('/') {
                Some((h, p)) if h.eq_ignore_ascii_case(host) => format!("/{p}"),
                _ => continue,
            },
            None if loc.starts_with('/') => loc.to_string(),
            None => continue,
        };
        let (p, q) = local.split_once('?').unwrap_or((&local, ""));
        urls.push(key::url_id(p, q));
    }
    let scope = Scope::Urls(urls);
    layer.cache.purge_local(Some(service), &scope);
    if let Err(e) = layer.cache.purge(service, &scope).await {
        tracing::warn!(service = %service, error = %e, "cache invalidation did not reach redis");
    }
}

/// Serves stale now and refreshes the entry once in the background.
fn spawn_refresh(layer: &CacheLayer, r: Refresh, keys: Keys, stale: Arc<CachedResponse>, key_hash: String) {
    if layer.coalescer.busy(&keys.fill()) {
        return;
    }
    actix_rt::spawn(async move {
        let Some(layer) = r.cx.cache.as_ref() else { return };
        let Some(spec) = r.route.spec.cache.clone() else { return };
        let fw = Forward {
            req: &r.req,
            route: &r.route,
            upstream_path: &r.upstream_path,
            addr: &r.addr,
            request_id: &r.request_id,
            via: &r.cx.via,
            hash_key: r.hash_key.as_deref(),
            limits: &r.cx.limits,
            started: Instant::now(),
            identity: r.identity.as_ref(),
            breakers: r.cx.breakers.as_ref(),
            conditional: None,
            traceparent: None,
        };
        let mut outcome = Outcome::default();
        let mut status = CacheStatus::Miss;
        let stale = Some((stale, key_hash));
        let res =
            fill(layer, fw, keys, &spec, stale, None, BodyKind::Empty, &r.client, &mut outcome, &mut status).await;
        // Nobody reads this response: drain its body so a storable one is stored.
        if let Ok(res) = res {
            let _ = actix_web::body::to_bytes(res.into_body()).await;
        }
    });
}
