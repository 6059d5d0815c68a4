//! `Fetcher`: the gateway's own calls to a configured URL (the JWKS document, the OTLP
//! collector) — not to a service's endpoints, so no balancer, no pool of the proxy's,
//! redirects followed. Errors are the interface's taxonomy; a non-2xx answer is
//! `Error::Status`. Over awc for every scheme (a URL may carry a query and redirect).

use std::time::Duration;

use bytes::Bytes;

use super::Error;
use super::tls::error;

/// A client for the gateway's own fetches, made on the thread that uses it.
#[derive(Clone)]
pub struct Fetcher {
    client: awc::Client,
}

impl Fetcher {
    /// Fetches bounded by `timeout` each; `user_agent` sends awc's default headers
    /// (`User-Agent`), as the JWKS fetch always did.
    pub fn new(timeout: Duration, user_agent: bool) -> Self {
        let builder = awc::Client::builder().timeout(timeout);
        let builder = if user_agent { builder } else { builder.no_default_headers() };
        Self { client: builder.finish() }
    }

    /// `GET url`: the body of a 2xx answer, at most `limit` bytes.
    pub async fn get(&self, url: &str, limit: usize) -> Result<Bytes, Error> {
        let mut res = self.client.get(url).send().await.map_err(error)?;
        if !res.status().is_success() {
            return Err(Error::Status(res.status()));
        }
        res.body().limit(limit).await.map_err(|e| Error::Protocol(e.to_string()))
    }

    /// `POST url` with `body` as JSON; `Ok` on a 2xx answer.
    pub async fn post_json(&self, url: &str, body: &serde_json::Value) -> Result<(), Error> {
        let res = self
            .client
            .post(url)
            .insert_header(("content-type", "application/json"))
            .send_json(body)
            .await
            .map_err(error)?;
        if !res.status().is_success() {
            return Err(Error::Status(res.status()));
        }
        Ok(())
    }
}
