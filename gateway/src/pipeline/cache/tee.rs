//! `Tee`: streams a response body to the client while keeping a bounded copy for the cache.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use bytes::{Bytes, BytesMut};

/// Passes a response body through while keeping a copy of up to `max` bytes; reports the
/// complete copy (or `None` when too large or cut short) once.
pub(super) struct Tee {
    inner: BoxBody,
    buf: Option<BytesMut>,
    max: usize,
    done: Option<Box<dyn FnOnce(Option<Bytes>)>>,
}

impl Tee {
    pub(super) fn new(inner: BoxBody, max: usize, done: Box<dyn FnOnce(Option<Bytes>)>) -> Self {
        let cap = match inner.size() {
            BodySize::Sized(n) => n as usize,
            _ => 8 * 1024,
        };
        Self { inner, buf: Some(BytesMut::with_capacity(cap.min(max))), max, done: Some(done) }
    }

    fn report(&mut self, body: Option<Bytes>) {
        if let Some(done) = self.done.take() {
            done(body);
        }
    }
}

impl MessageBody for Tee {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let over = this.buf.as_ref().is_some_and(|b| b.len() + chunk.len() > this.max);
                if over {
                    this.buf = None;
                    this.report(None);
                } else if let Some(b) = this.buf.as_mut() {
                    b.extend_from_slice(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.buf = None;
                this.report(None);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                let body = this.buf.take().map(BytesMut::freeze);
                this.report(body);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        self.report(None);
    }
}
