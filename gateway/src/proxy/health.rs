//! Active health checks through the `Upstream` interface traffic uses
//! (`actors::health_check` asks, this sends): plain `http://` endpoints over the own h1
//! client, `https://` ones over TLS with the node's settings, so a certificate the proxy
//! would refuse fails the check.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actors::balancer::Endpoint;
use actors::health_check::HealthProbe;
use futures_util::future::LocalBoxFuture;

use super::upstream::{NoStream, Request, RequestBody, RequestHeaders, Upstream};

const USER_AGENT: HeaderValue = HeaderValue::from_static("gateway-health-check");

/// The gateway's `HealthProbe`: one `GET` per check over an `Upstream` made on the
/// thread the health checker runs on.
pub struct UpstreamProbe {
    upstream: Upstream,
    headers: HeaderMap,
}

impl UpstreamProbe {
    /// Checks over `upstream` (built with the node's TLS settings).
    pub fn new(upstream: Upstream) -> Self {
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert(header::USER_AGENT, USER_AGENT);
        Self { upstream, headers }
    }
}

impl HealthProbe for UpstreamProbe {
    fn check(
        &self,
        ep: Arc<Endpoint>,
        path: String,
        timeout: Duration,
    ) -> LocalBoxFuture<'static, Result<u16, String>> {
        let (upstream, headers) = (self.upstream.clone(), self.headers.clone());
        Box::pin(async move {
            let req: Request<'_, NoStream> = Request {
                endpoint: &ep,
                method: &Method::GET,
                path: &path,
                query: "",
                headers: RequestHeaders::Map(&headers),
                body: RequestBody::None,
            };
            let res = tokio::time::timeout(timeout, upstream.send(req, true))
                .await
                .unwrap_or(Err(super::UpstreamError::Timeout))
                .map_err(|e| e.to_string())?;
            // A body still arriving is dropped with its connection; complete ones were pooled.
            Ok(res.status.as_u16())
        })
    }
}
