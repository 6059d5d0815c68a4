//! A lean HTTP/1.1 client for plain `http://` upstreams, the proxy's hot path. Per
//! request it writes the head (and a small body) in one `send`, reads the answer with
//! one `recv` in the common case, and parses it with httparse into the header map the
//! client response reuses. Connections live in a thread-local keep-alive pool
//! (`pool.rs`); bodies stream both ways (`body.rs`, `chunked.rs`). `https://` upstreams
//! keep going through awc, which brings TLS.

mod body;
mod chunked;
#[doc(hidden)]
pub mod fuzzing;
mod pool;

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

use actix_web::error::PayloadError;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actors::balancer::Endpoint;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::upstream::ResponseBody as Body;
pub use super::upstream::{RequestBody as SendBody, Response};
pub use body::ResponseBody;
use pool::Conn;
pub use pool::IDLE as POOL_IDLE;

/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most response headers accepted.
const MAX_HEADERS: usize = 128;
/// Read buffer growth step.
const READ_CHUNK: usize = 8 * 1024;
/// Time allowed to open a connection (the service timeout still bounds the whole wait).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an upstream exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection could not be opened (safe to retry elsewhere).
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    /// Opening the connection took longer than the connect timeout.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The connection failed while the request was sent or the answer awaited.
    #[error("connection failed: {0}")]
    Io(io::Error),
    /// The upstream closed the connection without answering.
    #[error("connection closed before a response")]
    Closed,
    /// The response head was malformed or too large.
    #[error("invalid response: {0}")]
    Invalid(&'static str),
    /// The request body stream failed.
    #[error("request body failed: {0}")]
    Body(PayloadError),
}

impl Error {
    /// Whether the connection could not be opened: nothing was sent (retry is safe).
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::ConnectTimeout)
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request head being encoded.
pub struct Head {
    buf: BytesMut,
}

impl Head {
    /// Starts `METHOD target HTTP/1.1` with the endpoint's `Host`; the target is the
    /// endpoint's base path, `path` and `?query`.
    pub fn new(method: &Method, ep: &Endpoint, path: &str, query: &str) -> Self {
        let mut buf = BytesMut::with_capacity(1024);
        buf.put_slice(method.as_str().as_bytes());
        buf.put_u8(b' ');
        for piece in super::target(ep, path, query) {
            buf.put_slice(piece.as_bytes());
        }
        buf.put_slice(b" HTTP/1.1\r\nhost: ");
        buf.put_slice(&ep.host_header);
        buf.put_slice(b"\r\n");
        Self { buf }
    }

    /// Adds one header line.
    pub fn header(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.buf.put_slice(name.as_str().as_bytes());
        self.buf.put_slice(b": ");
        self.buf.put_slice(value.as_bytes());
        self.buf.put_slice(b"\r\n");
    }

    /// Ends the head with the body framing header.
    pub fn finish(mut self, framing: Framing) -> BytesMut {
        match framing {
            Framing::None => {}
            Framing::Length(n) => {
                self.buf.put_slice(b"content-length: ");
                self.buf.put_slice(itoa::Buffer::new().format(n).as_bytes());
                self.buf.put_slice(b"\r\n");
            }
            Framing::Chunked => self.buf.put_slice(b"transfer-encoding: chunked\r\n"),
        }
        self.buf.put_slice(b"\r\n");
        self.buf
    }
}

/// Sends one request to a plain-HTTP endpoint and reads the response head. Pooled
/// connections are used only when still open and silent; `idempotent` requests without
/// a streamed body that still fail on one before any answer are sent again on a new
/// connection, other requests never twice.
pub async fn send<S>(
    ep: &Endpoint,
    head: BytesMut,
    body: SendBody<S>,
    method: &Method,
    idempotent: bool,
) -> Result<Response, Error>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    // Every pooled connection is checked first: a socket with bytes waiting (a late
    // body of an earlier answer) or at EOF must not carry this request. The check
    // costs no system call when the last read drained the socket.
    let pooled = pool::checkout(&ep.origin).filter(is_open);
    match body {
        SendBody::Stream(stream, length) => {
            let mut conn = match pooled {
                Some(c) => c,
                None => connect(ep).await?,
            };
            conn.stream.write_all(&head).await.map_err(Error::Io)?;
            send_body_watching(&mut conn, stream, length).await?;
            read_response(conn, method).await
        }
        SendBody::None | SendBody::Full(_) => {
            let mut wire = head;
            if let SendBody::Full(b) = body {
                wire.extend_from_slice(&b);
            }
            // An idempotent request that finds the pooled connection closed after all
            // (the upstream closed it just now) is sent again on a new one.
            if let Some(conn) = pooled {
                match exchange(conn, &wire, method, idempotent).await {
                    Err(Stale) => {}
                    Ok(answer) => return answer,
                }
            }
            exchange(connect(ep).await?, &wire, method, false).await.unwrap_or(Err(Error::Closed))
        }
    }
}

/// How an upgrade request was answered (`upgrade`).
pub enum Switch {
    /// `101 Switching Protocols`: the connection is the caller's.
    Switched {
        /// The `101`'s headers, all of them.
        headers: HeaderMap,
        /// The connection.
        stream: TcpStream,
        /// Bytes after the `101`'s head (the new protocol's first bytes).
        read_ahead: BytesMut,
    },
    /// Any other final answer, read as usual.
    Refused(Response),
}

/// Sends an upgrade request (its head carries `Connection: upgrade` and `Upgrade`) on a
/// fresh connection that is never pooled, and reads the answer: a `101` hands the
/// connection over; interim answers are skipped; anything else is a normal response.
pub async fn upgrade(ep: &Endpoint, head: BytesMut, method: &Method) -> Result<Switch, Error> {
    let mut conn = connect(ep).await?;
    conn.spoiled = true;
    conn.stream.write_all(&head).await.map_err(Error::Io)?;
    loop {
        if head_complete(&conn.buf, 0) {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut res = httparse::Response::new(&mut slots);
            let len = match res.parse(&conn.buf) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) | Err(_) => return Err(Error::Invalid("malformed response head")),
            };
            match res.code {
                Some(101) => {
                    let mut headers = HeaderMap::with_capacity(res.headers.len());
                    for h in res.headers.iter() {
                        if let (Ok(n), Ok(v)) =
                            (HeaderName::from_bytes(h.name.as_bytes()), HeaderValue::from_bytes(h.value))
                        {
                            headers.append(n, v);
                        }
                    }
                    let _ = conn.buf.split_to(len);
                    let Conn { stream, buf, .. } = conn;
                    return Ok(Switch::Switched { headers, stream, read_ahead: buf });
                }
                Some(100..=199) => {
                    let _ = conn.buf.split_to(len);
                    continue;
                }
                _ => return read_response(conn, method).await.map(Switch::Refused),
            }
        }
        if conn.buf.len() > MAX_HEAD {
            return Err(Error::Invalid("response head too large"));
        }
        conn.buf.reserve(READ_CHUNK);
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) if conn.buf.is_empty() => return Err(Error::Closed),
            Ok(0) => return Err(Error::Invalid("connection closed inside the head")),
            Ok(_) => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
}

/// A pooled connection failed before any answer arrived.
struct Stale;

/// Writes the request and reads the answer's head. With `retry_stale`, a pooled
/// connection that fails before answering yields `Stale` instead of the error.
async fn exchange(
    mut conn: Conn,
    wire: &[u8],
    method: &Method,
    retry_stale: bool,
) -> Result<Result<Response, Error>, Stale> {
    let reused = conn.reused && retry_stale;
    if let Err(e) = conn.stream.write_all(wire).await {
        return if reused { Err(Stale) } else { Ok(Err(Error::Io(e))) };
    }
    match read_response(conn, method).await {
        Err(Error::Closed) if reused => Err(Stale),
        Err(Error::Io(e)) if reused && e.kind() == io::ErrorKind::ConnectionReset => Err(Stale),
        other => Ok(other),
    }
}

/// Whether a pooled connection is still open: nothing to read (an idle keep-alive
/// connection has nothing to say; EOF or stray bytes mean it cannot be used).
fn is_open(conn: &Conn) -> bool {
    let mut probe = [0u8; 1];
    matches!(conn.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

async fn connect(ep: &Endpoint) -> Result<Conn, Error> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(ep.url.authority())).await {
        Err(_) => return Err(Error::ConnectTimeout),
        Ok(Err(e)) => return Err(Error::Connect(e)),
        Ok(Ok(s)) => s,
    };
    // Heads and small bodies go out in one write; streamed chunks should not wait.
    let _ = stream.set_nodelay(true);
    Ok(Conn::new(stream, std::sync::Arc::clone(&ep.origin)))
}

/// Streams the request body while watching the connection: an upstream that answers
/// (or closes) before the body is complete — a 413 or 401 mid-upload — stops the upload
/// and its answer is read; the connection is then spoiled (never pooled).
async fn send_body_watching<S>(conn: &mut Conn, body: S, length: Option<u64>) -> Result<(), Error>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    let Conn { stream, buf, spoiled, .. } = conn;
    let (rd, mut wr) = stream.split();
    let mut upload = std::pin::pin!(write_body(&mut wr, body, length));
    loop {
        tokio::select! {
            biased;
            sent = &mut upload => return sent,
            ready = rd.readable() => {
                ready.map_err(Error::Io)?;
                buf.reserve(READ_CHUNK);
                match rd.try_read_buf(buf) {
                    // Readiness without data: keep uploading.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(Error::Io(e)),
                    // Data (an early answer) or EOF: the answer, if any, is read next.
                    Ok(_) => {
                        *spoiled = true;
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Streams the request body, chunk-encoding it when its length is unknown.
async fn write_body<S, W>(out: &mut W, mut body: S, length: Option<u64>) -> Result<(), Error>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut framed = BytesMut::new();
    let mut sent = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(Error::Body)?;
        if chunk.is_empty() {
            continue;
        }
        if let Some(n) = length {
            // Never more than announced: extra bytes would be a second request upstream.
            sent += chunk.len() as u64;
            if sent > n {
                return Err(Error::Body(PayloadError::Overflow));
            }
            out.write_all(&chunk).await.map_err(Error::Io)?;
        } else {
            framed.clear();
            framed.put_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            framed.put_slice(&chunk);
            framed.put_slice(b"\r\n");
            out.write_all(&framed).await.map_err(Error::Io)?;
        }
    }
    match length {
        None => out.write_all(b"0\r\n\r\n").await.map_err(Error::Io)?,
        Some(n) if sent != n => return Err(Error::Body(PayloadError::Incomplete(None))),
        Some(_) => {}
    }
    Ok(())
}

/// Reads the response head (skipping interim 1xx answers) and sets up the body.
async fn read_response(mut conn: Conn, method: &Method) -> Result<Response, Error> {
    let mut received = false;
    let mut scanned = 0;
    loop {
        if let Some((head, parsed)) = next_head(&mut conn.buf, &mut scanned, method)? {
            return parsed.into_response(&head, conn);
        }
        conn.buf.reserve(READ_CHUNK);
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) if received || !conn.buf.is_empty() => {
                return Err(Error::Invalid("connection closed inside the head"));
            }
            Ok(0) => return Err(Error::Closed),
            Ok(_) => received = true,
            Err(e) => return Err(Error::Io(e)),
        }
    }
}

/// Takes the final response head off the front of `buf` once it is complete (interim
/// 1xx heads are dropped); `None` means read more. `scanned` counts the bytes already
/// searched for the blank line ending the head (0 before the first look): each byte is
/// scanned once, however the head is split across reads. The first look parses at once
/// (usually the whole head is there); after a partial head, only a blank line among the
/// new bytes makes parsing worth it.
fn next_head(buf: &mut BytesMut, scanned: &mut usize, method: &Method) -> Result<Option<(Bytes, Parsed)>, Error> {
    while !buf.is_empty()
        && (*scanned == 0 || head_complete(buf, *scanned))
        && let Some((len, parsed)) = parse_head(buf, method)?
    {
        // The limit holds for heads that arrive whole as for heads read in pieces.
        if len > MAX_HEAD {
            return Err(Error::Invalid("response head too large"));
        }
        let head = buf.split_to(len).freeze();
        if !parsed.status.is_informational() {
            return Ok(Some((head, parsed)));
        }
        *scanned = 0;
    }
    *scanned = buf.len();
    if *scanned > MAX_HEAD {
        return Err(Error::Invalid("response head too large"));
    }
    Ok(None)
}

/// Whether `buf` holds a blank line (end of a head), searching from `scanned` on.
fn head_complete(buf: &[u8], scanned: usize) -> bool {
    let from = scanned.saturating_sub(3);
    buf.get(from..).is_some_and(|tail| {
        tail.iter().enumerate().any(|(i, &b)| {
            b == b'\n' && matches!((tail.get(i + 1), tail.get(i + 2)), (Some(b'\n'), _) | (Some(b'\r'), Some(b'\n')))
        })
    })
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFraming {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A parsed head: status, where each kept header lies in the head bytes, framing.
struct Parsed {
    status: StatusCode,
    /// (name, value range in the head) of the headers to keep.
    headers: Vec<(HeaderName, std::ops::Range<usize>)>,
    length: Option<u64>,
    framing: BodyFraming,
    keep_alive: bool,
}

fn parse_head(buf: &[u8], method: &Method) -> Result<Option<(usize, Parsed)>, Error> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::Invalid("too many response headers")),
        Err(_) => return Err(Error::Invalid("malformed response head")),
    };
    // RFC 9110 §15: 100–599 (`StatusCode` alone would take anything up to 999).
    let status = res
        .code
        .filter(|c| (100..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(Error::Invalid("invalid status code"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // Upgrade is never forwarded, so no switch was asked for.
        return Err(Error::Invalid("unexpected protocol switch"));
    }
    let mut keep_alive = res.version == Some(1);
    let mut close = false;
    let mut length = None;
    let mut chunked = None;
    let mut listed: Vec<&[u8]> = Vec::new();
    let mut headers = Vec::with_capacity(res.headers.len());
    let base = buf.as_ptr() as usize;
    for h in res.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_length(h.value).ok_or(Error::Invalid("invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::Invalid("conflicting Content-Length"));
            }
            length = Some(n);
            if !super::headers::keeps_content_length(status) {
                continue;
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Chunked only counts as the final coding.
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default().trim_ascii();
            chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            continue;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in super::headers::connection_tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive |= res.version == Some(0);
                } else {
                    listed.push(token);
                }
            }
            continue;
        }
        let Ok(name) = HeaderName::from_bytes(name) else {
            return Err(Error::Invalid("invalid header name"));
        };
        if super::headers::is_hop_by_hop(&name) {
            continue;
        }
        let start = h.value.as_ptr() as usize - base;
        headers.push((name, start..start + h.value.len()));
    }
    if !listed.is_empty() {
        headers.retain(|(n, _)| !listed.iter().any(|l| n.as_str().as_bytes().eq_ignore_ascii_case(l)));
    }
    // `close` wins over `keep-alive`; framing RFC 9112 §6.1 calls faulty (a transfer
    // coding beside a length, or in HTTP/1.0) ends the connection after this answer, as
    // does a CONNECT (a 2xx makes it a tunnel).
    if close || (chunked.is_some() && (length.is_some() || res.version == Some(0))) || *method == Method::CONNECT {
        keep_alive = false;
    }
    let framing = if super::headers::is_bodiless(method, status) {
        BodyFraming::None
    } else {
        match (chunked, length) {
            (Some(true), _) => BodyFraming::Chunked,
            // Another final coding: the body runs until the connection closes.
            (Some(false), _) => BodyFraming::UntilClose,
            (None, Some(n)) => BodyFraming::Length(n),
            (None, None) => BodyFraming::UntilClose,
        }
    };
    if framing == BodyFraming::UntilClose {
        keep_alive = false;
    }
    // With a transfer coding, a Content-Length says nothing about the body.
    let length = if chunked.is_some() { None } else { length };
    Ok(Some((len, Parsed { status, headers, length, framing, keep_alive })))
}

/// A `Content-Length` value, by the proxy's one rule (`headers::content_length`).
fn parse_length(value: &[u8]) -> Option<u64> {
    super::headers::content_length(value)
}

impl Parsed {
    /// The response over `conn`; a chunked body whose first bytes are already here is
    /// decoded at once, so a malformed start fails the exchange (a 502) before any
    /// response head goes to the client.
    fn into_response(self, head: &Bytes, mut conn: Conn) -> Result<Response, Error> {
        let mut headers = HeaderMap::with_capacity(self.headers.len());
        for (name, range) in self.headers {
            // httparse checked the value bytes; an invalid one is dropped.
            if let Ok(v) = HeaderValue::from_maybe_shared(head.slice(range)) {
                headers.append(name, v);
            }
        }
        let body = match self.framing {
            BodyFraming::None => {
                if self.keep_alive {
                    pool::release(conn);
                }
                Body::Empty
            }
            BodyFraming::Length(n) if conn.buf.len() as u64 >= n => {
                let full = conn.buf.split_to(n as usize).freeze();
                if self.keep_alive {
                    pool::release(conn);
                }
                Body::Full(full)
            }
            framing => {
                let mut body = ResponseBody::new(conn, framing, self.keep_alive);
                body.decode_buffered().map_err(Error::Invalid)?;
                Body::Plain(body)
            }
        };
        Ok(Response { status: self.status, headers, length: self.length, body })
    }
}

#[cfg(test)]
mod tests;
