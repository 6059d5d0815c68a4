//! Active health checks through the clients traffic uses (`actors::health_check` asks,
//! this sends): plain `http://` endpoints over the `h1` client, `https://` ones over awc
//! with the node's TLS settings, so a certificate the proxy would refuse fails the check.

use std::sync::Arc;
use std::time::Duration;

use actix_web::error::PayloadError;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actors::balancer::Endpoint;
use actors::health_check::HealthProbe;
use actors::spec::Scheme;
use bytes::Bytes;
use futures_util::future::LocalBoxFuture;

use super::{endpoint_url, h1};

const USER_AGENT: HeaderValue = HeaderValue::from_static("gateway-health-check");

/// The gateway's `HealthProbe`: one `GET` per check over an awc client made on the
/// thread the health checker runs on (the h1 client is thread-local by itself).
pub struct UpstreamProbe {
    client: awc::Client,
}

impl UpstreamProbe {
    /// Checks over `client` (built by `proxy::client` with the node's TLS settings).
    pub fn new(client: awc::Client) -> Self {
        Self { client }
    }
}

impl HealthProbe for UpstreamProbe {
    fn check(
        &self,
        ep: Arc<Endpoint>,
        path: String,
        timeout: Duration,
    ) -> LocalBoxFuture<'static, Result<u16, String>> {
        let client = self.client.clone();
        Box::pin(async move {
            match ep.url.scheme() {
                Scheme::Http => check_h1(&ep, &path).await,
                Scheme::Https => {
                    let url = endpoint_url(&ep, &path, "");
                    let res = client
                        .get(url)
                        .insert_header((header::USER_AGENT, USER_AGENT))
                        .timeout(timeout)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(res.status().as_u16())
                }
            }
        })
    }
}

async fn check_h1(ep: &Endpoint, path: &str) -> Result<u16, String> {
    let mut head = h1::Head::new(&Method::GET, ep, path, "");
    head.header(&header::USER_AGENT, &USER_AGENT);
    type NoBody = futures_util::stream::Empty<Result<Bytes, PayloadError>>;
    let res = h1::send::<NoBody>(ep, head.finish(h1::Framing::None), h1::SendBody::Empty, &Method::GET, true)
        .await
        .map_err(|e| e.to_string())?;
    // A body still arriving is dropped with its connection; complete ones were pooled.
    Ok(res.status.as_u16())
}
