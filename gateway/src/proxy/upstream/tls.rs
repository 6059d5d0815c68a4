//! The `https://` implementation: awc with rustls behind the `Upstream` interface, and
//! the TLS settings toward upstreams (roots, ALPN, an optional client certificate).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodyStream, SizedStream};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use awc::error::{ConnectError, SendRequestError};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{BodySource, Error, Request, RequestBody, Response, ResponseBody};
use crate::proxy::{endpoint_url, h1, headers};

/// ALPN protocol id of HTTP/2.
pub const H2: &[u8] = b"h2";
/// ALPN protocol id of HTTP/1.1.
pub const HTTP_11: &[u8] = b"http/1.1";

/// What TLS toward upstreams trusts and offers; `build` checks it.
pub struct TlsSettings<'a> {
    extra_ca: Option<&'a [u8]>,
    alpn: Vec<Vec<u8>>,
    client_cert: Option<(&'a [u8], &'a [u8])>,
}

impl Default for TlsSettings<'_> {
    /// No ALPN offered (HTTP/1.1, as always so far); no client certificate.
    fn default() -> Self {
        Self { extra_ca: None, alpn: Vec::new(), client_cert: None }
    }
}

impl<'a> TlsSettings<'a> {
    /// Trusts the PEM certificates of `pem` (a private CA, `node.upstream_ca_file`)
    /// besides the Mozilla root set.
    pub fn extra_ca(mut self, pem: Option<&'a [u8]>) -> Self {
        self.extra_ca = pem;
        self
    }

    /// The ALPN protocols offered, in preference order (`H2`, `HTTP_11`); awc speaks
    /// HTTP/2 when the upstream picks `h2`. Empty (the default): no ALPN, HTTP/1.1.
    pub fn alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self
    }

    /// Presents this client certificate chain and private key (both PEM) to upstreams
    /// that ask for one.
    pub fn client_cert(mut self, chain_pem: &'a [u8], key_pem: &'a [u8]) -> Self {
        self.client_cert = Some((chain_pem, key_pem));
        self
    }

    /// The checked configuration.
    pub fn build(self) -> Result<TlsConfig, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = self.extra_ca {
            let mut added = 0;
            for cert in rustls_pemfile::certs(&mut &pem[..]) {
                let cert = cert.map_err(|e| format!("invalid PEM: {e}"))?;
                roots.add(cert).map_err(|e| format!("invalid CA certificate: {e}"))?;
                added += 1;
            }
            if added == 0 {
                return Err("no certificate found in the PEM file".into());
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let mut config = match self.client_cert {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => {
                let chain = rustls_pemfile::certs(&mut &chain[..])
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("invalid client certificate PEM: {e}"))?;
                if chain.is_empty() {
                    return Err("no client certificate found in the PEM file".into());
                }
                let key = rustls_pemfile::private_key(&mut &key[..])
                    .map_err(|e| format!("invalid client key PEM: {e}"))?
                    .ok_or("no private key found in the PEM file")?;
                builder.with_client_auth_cert(chain, key).map_err(|e| format!("invalid client certificate: {e}"))?
            }
        };
        config.alpn_protocols = self.alpn;
        Ok(TlsConfig(Arc::new(config)))
    }
}

/// Checked TLS settings toward upstreams (cheap to clone, shared by every thread).
#[derive(Clone)]
pub struct TlsConfig(Arc<rustls::ClientConfig>);

impl TlsConfig {
    /// Whether HTTP/2 is offered through ALPN.
    pub fn offers_h2(&self) -> bool {
        self.0.alpn_protocols.iter().any(|p| p == H2)
    }
}

/// The awc client of one thread.
pub(super) fn client(tls: &TlsConfig) -> awc::Client {
    // awc offers the config's ALPN list as it is (never call `max_http_version` after
    // `rustls_0_23`: it replaces the whole TLS config with a default one).
    let connector = awc::Connector::new()
        .rustls_0_23(Arc::clone(&tls.0))
        .timeout(Duration::from_secs(5))
        .conn_keep_alive(h1::POOL_IDLE)
        .conn_lifetime(Duration::from_secs(300))
        .limit(0);
    awc::Client::builder()
        .connector(connector)
        .disable_redirects()
        .no_default_headers()
        // Callers bound the wait themselves (`tokio::time::timeout`): no boxed timer
        // per request.
        .disable_timeout()
        .finish()
}

/// One exchange over awc.
pub(super) async fn send<S: BodySource>(client: &awc::Client, req: Request<'_, S>) -> Result<Response, Error> {
    let ep = req.endpoint;
    let mut creq = client.request(req.method.clone(), endpoint_url(ep, req.path, req.query)).no_decompress();
    *creq.headers_mut() = req.headers.to_map();
    if let Ok(host) = HeaderValue::from_maybe_shared(ep.host_header.clone()) {
        creq.headers_mut().insert(header::HOST, host);
    }
    let sending = match req.body {
        // `None`, not `()`: no `Content-Length: 0` on requests that had no body.
        RequestBody::None => creq.send_body(actix_web::body::None::new()),
        RequestBody::Full(b) => creq.send_body(b),
        RequestBody::Stream(s, Some(n)) => creq.send_body(SizedStream::new(n, s)),
        RequestBody::Stream(s, None) => creq.send_body(BodyStream::new(s)),
    };
    let res = sending.await.map_err(error)?;
    let status = res.status();
    if !(100..=599).contains(&status.as_u16()) {
        return Err(Error::Protocol("invalid response: invalid status code".into()));
    }
    // The upstream's header map becomes ours: no per-header copies.
    let mut headers = HeaderMap::new();
    let mut res = res.map_body(|head, payload| {
        headers = std::mem::take(&mut head.headers);
        payload
    });
    let length = headers::clean_response_headers(&mut headers, status);
    let first = first_bytes(&mut res, &ep.id)?;
    Ok(Response { status, headers, length, body: ResponseBody::Tls(Body { first, res }) })
}

/// Takes the body bytes that already arrived with the head. A body failing on its very
/// first poll (a malformed first chunk size) would make actix-web drop the connection
/// before the response head goes out — an empty reply; failing here makes it a 502.
fn first_bytes(res: &mut awc::ClientResponse, endpoint: &str) -> Result<Option<Bytes>, Error> {
    match futures_util::FutureExt::now_or_never(res.next()) {
        Some(Some(Err(e))) => {
            tracing::warn!(%endpoint, error = %e, "upstream body failed before its first byte");
            Err(Error::Protocol("invalid response: malformed body".into()))
        }
        Some(Some(Ok(bytes))) => Ok(Some(bytes)),
        // Complete (or not here yet): the stream says so when polled.
        Some(None) | None => Ok(None),
    }
}

/// awc's errors in the interface's taxonomy.
pub(super) fn error(e: SendRequestError) -> Error {
    match e {
        SendRequestError::Connect(ConnectError::Timeout) => {
            Error::Connect { reason: ConnectError::Timeout.to_string(), timed_out: true }
        }
        SendRequestError::Connect(c) => Error::Connect { reason: c.to_string(), timed_out: false },
        SendRequestError::Timeout => Error::Timeout,
        SendRequestError::Body(e) => Error::ClientBody(e.to_string()),
        other => Error::Protocol(other.to_string()),
    }
}

/// A response body arriving over awc, after the bytes taken with the head.
pub struct Body {
    first: Option<Bytes>,
    res: awc::ClientResponse,
}

impl Stream for Body {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        Pin::new(&mut self.res).poll_next(cx)
    }
}
