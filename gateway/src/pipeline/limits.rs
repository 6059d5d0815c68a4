//! Request limits: header count and bytes (431), body size (413) and the time a client
//! has to send its body (408). Bodies are counted while they stream, never buffered
//! whole; a limit hit mid-stream is recorded in a `BodyFault` the proxy turns into the
//! right error.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap};
use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::error::GatewayError;

/// The node's request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body.
    pub max_body: u64,
    /// Largest header block.
    pub max_header_bytes: usize,
    /// Most headers.
    pub max_headers: usize,
    /// Time to receive the whole request.
    pub request_timeout: Duration,
}

impl Limits {
    /// These limits for a request to `service`: its `max_body` instead of the node's.
    pub fn for_service(&self, service: &actors::spec::ServiceSpec) -> Self {
        Self { max_body: service.max_body.map_or(self.max_body, |b| b.bytes()), ..*self }
    }
}

/// Refuses requests whose headers exceed the limits.
pub fn check_headers(headers: &HeaderMap, limits: &Limits) -> Result<(), GatewayError> {
    if headers.len() > limits.max_headers {
        return Err(GatewayError::HeadersTooLarge(format!(
            "{} headers sent; at most {} are accepted",
            headers.len(),
            limits.max_headers
        )));
    }
    let bytes: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if bytes > limits.max_header_bytes {
        return Err(GatewayError::HeadersTooLarge(format!(
            "{bytes} bytes of headers sent; at most {} are accepted",
            limits.max_header_bytes
        )));
    }
    Ok(())
}

/// What the request says about its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all.
    Empty,
    /// `Content-Length: n` (n > 0).
    Sized(u64),
    /// Chunked: length unknown until the end.
    Chunked,
}

/// Classifies the body, refusing a declared length above `max_body` at once.
pub fn body_kind(h: &HeaderMap, limits: &Limits) -> Result<BodyKind, GatewayError> {
    if h.get(header::TRANSFER_ENCODING).is_some() {
        return Ok(BodyKind::Chunked);
    }
    match h.get(header::CONTENT_LENGTH) {
        None => Ok(BodyKind::Empty),
        Some(v) => {
            let n: u64 = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| GatewayError::BadRequest("invalid Content-Length".into()))?;
            if n > limits.max_body {
                Err(GatewayError::PayloadTooLarge(limits.max_body))
            } else if n == 0 {
                Ok(BodyKind::Empty)
            } else {
                Ok(BodyKind::Sized(n))
            }
        }
    }
}

/// Why a body stream was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    /// More than `max_body` bytes.
    TooLarge,
    /// Not complete before the request deadline.
    TooSlow,
}

impl BodyFault {
    /// The error answered for it.
    pub fn into_error(self, limits: &Limits) -> GatewayError {
        match self {
            Self::TooLarge => GatewayError::PayloadTooLarge(limits.max_body),
            Self::TooSlow => GatewayError::RequestTimeout(limits.request_timeout),
        }
    }
}

/// Shared slot where a `LimitedBody` records a fault, and when the body was complete
/// (single worker thread: `Rc<Cell>`s). The proxy reads it to tell a client's fault from
/// an upstream's, and to start the service timeout once the request is fully sent.
#[derive(Debug, Clone, Default)]
pub struct FaultSlot(Rc<SlotCells>);

#[derive(Debug, Default)]
struct SlotCells {
    fault: Cell<Option<BodyFault>>,
    started: Cell<Option<Instant>>,
    complete: Cell<Option<Instant>>,
}

impl FaultSlot {
    /// The fault recorded, if any.
    pub fn get(&self) -> Option<BodyFault> {
        self.0.fault.get()
    }

    fn set(&self, fault: BodyFault) {
        self.0.fault.set(Some(fault));
    }

    /// When the body was first asked for (the upload began), if it was.
    pub fn started_at(&self) -> Option<Instant> {
        self.0.started.get()
    }

    /// When the client's body ended (all of it read), if it did.
    pub fn complete_at(&self) -> Option<Instant> {
        self.0.complete.get()
    }
}

/// A request body stream with a byte limit and a deadline.
pub struct LimitedBody<S> {
    inner: S,
    left: u64,
    deadline: Instant,
    // Armed on the first poll that has to wait: bodiless requests never pay for a timer.
    timer: Option<Pin<Box<Sleep>>>,
    fault: FaultSlot,
}

impl<S> LimitedBody<S> {
    /// Wraps `inner`: at most `max` bytes, complete before `deadline`.
    pub fn new(inner: S, max: u64, deadline: Instant, fault: FaultSlot) -> Self {
        Self { inner, left: max, deadline, timer: None, fault }
    }
}

impl<S> Stream for LimitedBody<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.fault.0.started.get().is_none() {
            this.fault.0.started.set(Some(Instant::now()));
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let n = chunk.len() as u64;
                if n > this.left {
                    this.fault.set(BodyFault::TooLarge);
                    return Poll::Ready(Some(Err(PayloadError::Overflow)));
                }
                this.left -= n;
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.fault.set(BodyFault::TooSlow);
                    return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request body not received in time",
                    )))));
                }
                Poll::Pending
            }
            Poll::Ready(None) => {
                this.fault.0.complete.set(Some(Instant::now()));
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn limits() -> Limits {
        Limits { max_body: 10, max_header_bytes: 200, max_headers: 3, request_timeout: Duration::from_secs(1) }
    }

    #[test]
    fn header_limits_count_headers_and_bytes() {
        let ok = TestRequest::default().insert_header(("a", "1")).to_http_request();
        assert!(check_headers(ok.headers(), &limits()).is_ok());
        let many = TestRequest::default()
            .insert_header(("a", "1"))
            .insert_header(("b", "1"))
            .insert_header(("c", "1"))
            .insert_header(("d", "1"))
            .to_http_request();
        assert!(matches!(check_headers(many.headers(), &limits()), Err(GatewayError::HeadersTooLarge(_))));
        let big = TestRequest::default().insert_header(("a", "x".repeat(300))).to_http_request();
        assert!(matches!(check_headers(big.headers(), &limits()), Err(GatewayError::HeadersTooLarge(_))));
    }

    #[test]
    fn declared_bodies_over_the_limit_are_refused_up_front() {
        let req = TestRequest::default().insert_header(("content-length", "11")).to_http_request();
        assert!(matches!(body_kind(req.headers(), &limits()), Err(GatewayError::PayloadTooLarge(10))));
        let req = TestRequest::default().insert_header(("content-length", "10")).to_http_request();
        assert_eq!(body_kind(req.headers(), &limits()).ok(), Some(BodyKind::Sized(10)));
        let req = TestRequest::default().insert_header(("content-length", "x")).to_http_request();
        assert!(matches!(body_kind(req.headers(), &limits()), Err(GatewayError::BadRequest(_))));
    }

    #[actix_rt::test]
    async fn streamed_bodies_are_cut_at_the_limit() {
        use futures_util::StreamExt;
        let chunks =
            futures_util::stream::iter(vec![Ok(Bytes::from_static(b"123456")), Ok(Bytes::from_static(b"789012"))]);
        let fault = FaultSlot::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut body = LimitedBody::new(chunks, 10, deadline, fault.clone());
        assert!(matches!(body.next().await, Some(Ok(_))));
        assert!(matches!(body.next().await, Some(Err(PayloadError::Overflow))));
        assert_eq!(fault.get(), Some(BodyFault::TooLarge));
    }
}
