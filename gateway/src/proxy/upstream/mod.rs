//! `Upstream`: the one interface every upstream call goes through — proxied traffic,
//! cache fills and refreshes, queued jobs, health checks (and, through `Fetcher`, the
//! JWKS and OTLP fetches). One request type, one response type, one error taxonomy;
//! the header and `Content-Length` rules are `proxy/headers.rs`'s.
//!
//! Two implementations sit behind it, chosen per endpoint scheme in `Upstream::send`
//! (the only place that names them): the lean own HTTP/1.1 client (`plain.rs` over
//! `proxy/h1`) for `http://`, awc with rustls (`tls.rs`) for `https://`. Why two, and the
//! A/B that keeps the h1 client: docs/decisions/upstream-clients.md (the `awc-plain`
//! feature repeats it). Dropping one is one file: point its `match` arm at the other
//! implementation (then delete its module).
//!
//! Dispatch is a `match`, not a trait object: no boxing per request; the h1 path writes
//! the request head straight from the client's header map.

mod fetch;
mod plain;
mod tls;

pub use fetch::Fetcher;
pub use tls::{H2, HTTP_11, TlsConfig, TlsSettings};

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::error::PayloadError;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actors::balancer::Endpoint;
use actors::spec::Scheme;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;

use super::Forward;
use super::headers;
use crate::error::GatewayError;

/// The client bodies a request can stream upstream.
pub trait BodySource: Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static {}
impl<S: Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static> BodySource for S {}

/// A request without a streamed body (health checks, jobs, upgrades).
pub type NoStream = futures_util::stream::Empty<Result<Bytes, PayloadError>>;

/// One request to one endpoint.
pub struct Request<'a, S> {
    /// Where to (the balancer's pick).
    pub endpoint: &'a Endpoint,
    /// The method.
    pub method: &'a Method,
    /// Path under the endpoint's base path.
    pub path: &'a str,
    /// Query string (without `?`), may be empty.
    pub query: &'a str,
    /// The headers to send.
    pub headers: RequestHeaders<'a>,
    /// The body.
    pub body: RequestBody<S>,
}

/// Where a request's headers come from; `Host` and the body framing are always the
/// client's own (`Host` from the endpoint, framing from the body).
#[derive(Clone, Copy)]
pub enum RequestHeaders<'a> {
    /// A proxied request: the client's end-to-end headers plus the gateway's
    /// (`headers::each_upstream_header`).
    Forward(&'a Forward<'a>),
    /// Prepared headers (a queued job's, a health check's): hop-by-hop ones, `Host` and
    /// `Content-Length` are skipped.
    Map(&'a HeaderMap),
}

impl RequestHeaders<'_> {
    /// Calls `f` with every header to send, in order.
    fn each(&self, mut f: impl FnMut(&HeaderName, &HeaderValue)) {
        match self {
            Self::Forward(fw) => headers::each_upstream_header(fw, f),
            Self::Map(map) => {
                for (n, v) in map.iter() {
                    if !headers::is_connection_specific(n) {
                        f(n, v);
                    }
                }
            }
        }
    }

    /// The headers to send as a map (implementations that need one).
    fn to_map(self) -> HeaderMap {
        match self {
            Self::Forward(fw) => headers::upstream_headers(fw),
            Self::Map(map) => {
                let mut out = HeaderMap::with_capacity(map.len());
                self.each(|n, v| out.append(n.clone(), v.clone()));
                out
            }
        }
    }
}

/// The request body.
pub enum RequestBody<S> {
    /// No body and no framing header.
    None,
    /// Fully in memory, sent with `Content-Length` (an empty one too: a client's
    /// `Content-Length: 0` is kept, some servers want a length on POST).
    Full(Bytes),
    /// Streamed from the client, sized when its length is declared, else chunked.
    Stream(S, Option<u64>),
}

/// An upstream's answer: status 100–599 (never 101 here), headers cleaned by
/// `headers::clean_response_headers`.
pub struct Response {
    /// Status.
    pub status: StatusCode,
    /// Headers, hop-by-hop ones and `Content-Length` removed (kept on a 304).
    pub headers: HeaderMap,
    /// The declared body length (announced on HEAD answers too).
    pub length: Option<u64>,
    /// The body.
    pub body: ResponseBody,
}

/// A response body, whichever implementation fetched it.
pub enum ResponseBody {
    /// None.
    Empty,
    /// Complete: it arrived with the head (the connection is already reusable).
    Full(Bytes),
    /// Still arriving over the own h1 client.
    Plain(super::h1::ResponseBody),
    /// Still arriving over awc.
    Tls(tls::Body),
}

impl ResponseBody {
    /// Fails a streaming body when the upstream sends nothing for `idle` (h1 bodies; awc
    /// bodies keep awc's own behaviour).
    pub fn idle_timeout(self, idle: Duration) -> Self {
        match self {
            Self::Plain(b) => Self::Plain(b.idle_timeout(idle)),
            other => other,
        }
    }

    /// Reads the whole body, at most `limit` bytes.
    pub async fn read_to_end(mut self, limit: usize) -> Result<Bytes, Error> {
        use futures_util::StreamExt;
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.next().await {
            let chunk = chunk.map_err(|e| Error::Protocol(format!("body failed: {e}")))?;
            if buf.len() + chunk.len() > limit {
                return Err(Error::Protocol(format!("body larger than {limit} bytes")));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}

impl Stream for ResponseBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut *self {
            Self::Empty => Poll::Ready(None),
            Self::Full(b) => {
                if b.is_empty() {
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(std::mem::take(b))))
            }
            Self::Plain(s) => Pin::new(s).poll_next(cx),
            Self::Tls(s) => Pin::new(s).poll_next(cx),
        }
    }
}

/// Why an upstream call failed: the one taxonomy of every implementation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection could be opened (refused, unreachable, TLS handshake, or the connect
    /// timeout when `timed_out`): nothing was sent, another endpoint may be tried.
    #[error("cannot connect: {reason}")]
    Connect {
        /// What failed.
        reason: String,
        /// The connect timeout passed.
        timed_out: bool,
    },
    /// The caller's timeout passed (the service timeout, a job's or a check's).
    #[error("no answer in time")]
    Timeout,
    /// The request body coming from the client failed (cut off, broken, longer than
    /// announced): the client's fault, not the upstream's.
    #[error("request body failed: {0}")]
    ClientBody(String),
    /// The exchange broke after connecting or the answer cannot be passed on: I/O
    /// failure, closed without an answer, malformed head or body, invalid status.
    #[error("{0}")]
    Protocol(String),
    /// The upstream answered with a status the caller does not accept (fetches).
    #[error("HTTP {0}")]
    Status(StatusCode),
}

impl Error {
    /// Nothing reached the upstream: another endpoint may be tried.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect { .. })
    }

    /// The request body coming from the client failed, not the upstream.
    pub fn is_client_body(&self) -> bool {
        matches!(self, Self::ClientBody(_))
    }

    /// The client-facing error for a failed call to `ep` under `timeout`.
    pub fn into_gateway(self, timeout: Duration, ep: &Endpoint) -> GatewayError {
        match self {
            Self::ClientBody(e) => super::unreadable_body(e),
            Self::Timeout | Self::Connect { timed_out: true, .. } => GatewayError::UpstreamTimeout(timeout),
            Self::Connect { reason, .. } => {
                GatewayError::UpstreamUnavailable(format!("cannot connect to {}: {reason}", ep.id))
            }
            Self::Protocol(e) => GatewayError::UpstreamUnavailable(format!("{} failed: {e}", ep.id)),
            Self::Status(s) => GatewayError::UpstreamUnavailable(format!("{} failed: answered {s}", ep.id)),
        }
    }
}

/// A protocol upgrade's outcome (`Upstream::upgrade`).
pub enum Upgrade {
    /// The upstream switched (`101`): the connection is handed over.
    Switched(Upgraded),
    /// The upstream answered normally (a 401, a 426…): pass it on.
    Refused(Response),
}

/// A connection handed over by a `101 Switching Protocols`.
pub struct Upgraded {
    /// The `101`'s headers, as sent (its `Upgrade` and `Connection` included).
    pub headers: HeaderMap,
    /// The connection, no longer HTTP.
    pub io: tokio::net::TcpStream,
    /// Bytes of the new protocol that arrived with the `101` (read these first).
    pub read_ahead: BytesMut,
}

/// The upstream client of one thread (actix worker, queue or health-check thread): the
/// h1 client's pool is thread-local, awc's lives here. Cheap to clone.
#[derive(Clone)]
pub struct Upstream {
    tls: awc::Client,
}

impl Upstream {
    /// A client for this thread with `tls` for `https://` endpoints.
    pub fn new(tls: &TlsConfig) -> Self {
        Self { tls: tls::client(tls) }
    }

    /// Sends one request and reads the answer's head. `idempotent` requests without a
    /// streamed body may be resent on a fresh connection when a pooled one turns out
    /// closed; nothing is retried on another endpoint here (the caller's choice).
    pub async fn send<S: BodySource>(&self, req: Request<'_, S>, idempotent: bool) -> Result<Response, Error> {
        match req.endpoint.url.scheme() {
            // The `awc-plain` feature sends plain http over awc too: only for the A/B in
            // docs/decisions/upstream-clients.md.
            Scheme::Http if !cfg!(feature = "awc-plain") => plain::send(req, idempotent).await,
            Scheme::Http | Scheme::Https => tls::send(&self.tls, req).await,
        }
    }

    /// Asks the upstream to switch to `protocol` (`Upgrade: protocol`, `Connection:
    /// upgrade` are added to `req`'s headers, which lose their own hop-by-hop ones): a
    /// `101` hands the connection over (`Upgrade::Switched`), any other answer comes back
    /// as a normal response. Always on a fresh connection, never pooled afterwards. Not
    /// used by the proxy yet (WebSocket is the next issue); over TLS it is not supported
    /// yet (a `Protocol` error).
    pub async fn upgrade(&self, req: Request<'_, NoStream>, protocol: &HeaderValue) -> Result<Upgrade, Error> {
        match req.endpoint.url.scheme() {
            Scheme::Http => plain::upgrade(req, protocol).await,
            Scheme::Https => Err(Error::Protocol("protocol upgrades over TLS are not supported yet".into())),
        }
    }
}

#[cfg(test)]
mod tests;
