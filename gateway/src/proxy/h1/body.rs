//! A response body still arriving from the upstream: delimited by `Content-Length`,
//! chunked, or by the connection closing. When the body is complete the connection
//! goes back to the pool; dropped early (the client went away), it is closed. An upstream
//! that sends nothing for the idle timeout ends the body with an error.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::error::PayloadError;
use bytes::Bytes;
use futures_util::Stream;
use tokio::io::AsyncReadExt;
use tokio::time::{Instant, Sleep};

use super::BodyFraming;
use super::chunked::{Decoder, Step};
use super::pool::{self, Conn};

/// Read buffer growth step while a body streams.
const BODY_READ: usize = 16 * 1024;

enum Left {
    Length(u64),
    Chunked(Decoder),
    UntilClose,
}

/// The streamed response body, owning its connection until the end.
pub struct ResponseBody {
    conn: Option<Conn>,
    left: Left,
    keep_alive: bool,
    idle: Option<Duration>,
    // Armed (or re-armed) when a read has to wait: bodies that arrive at once never pay.
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    /// Body bytes decoded before the stream was handed over (`decode_buffered`).
    first: Option<Bytes>,
}

impl ResponseBody {
    /// A body framed as `framing` on `conn` (whose buffer may already hold some of it).
    pub(super) fn new(conn: Conn, framing: BodyFraming, keep_alive: bool) -> Self {
        let left = match framing {
            BodyFraming::Length(n) => Left::Length(n),
            BodyFraming::Chunked => Left::Chunked(Decoder::default()),
            BodyFraming::None => Left::Length(0),
            BodyFraming::UntilClose => Left::UntilClose,
        };
        Self { conn: Some(conn), left, keep_alive, idle: None, timer: None, waiting: false, first: None }
    }

    /// Decodes the first item of a chunked body from what already arrived with the head,
    /// so a malformed chunk size is an error of the exchange, not of the body stream.
    pub(super) fn decode_buffered(&mut self) -> Result<(), &'static str> {
        let (Some(conn), Left::Chunked(decoder)) = (self.conn.as_mut(), &mut self.left) else { return Ok(()) };
        if conn.buf.is_empty() {
            return Ok(());
        }
        // `End` leaves the decoder done: the next poll finishes the body.
        if let Step::Data(data) = decoder.step(&mut conn.buf)? {
            self.first = Some(data);
        }
        Ok(())
    }

    /// Fails the body when the upstream sends nothing for `idle`.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = Some(idle);
        self
    }

    /// Called when a read must wait: `Ready` once the upstream has been silent too long.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(idle) = self.idle else { return Poll::Pending };
        if !self.waiting {
            self.waiting = true;
            let deadline = Instant::from_std(actors::units::deadline_after(std::time::Instant::now(), idle));
            match self.timer.as_mut() {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        match self.timer.as_mut() {
            Some(t) => t.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }

    /// The body is complete: the connection is reusable when nothing else arrived.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.keep_alive
        {
            pool::release(conn);
        }
    }

    fn fail(&mut self, e: PayloadError) -> Poll<Option<Result<Bytes, PayloadError>>> {
        self.conn = None;
        Poll::Ready(Some(Err(e)))
    }
}

/// Reads what the socket has into the connection's buffer. Through `AsyncRead`, so a
/// read that drains the socket clears its readiness and the pool's open check on the
/// next checkout needs no system call.
fn poll_fill(conn: &mut Conn, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    if conn.buf.capacity() - conn.buf.len() < BODY_READ / 4 {
        conn.buf.reserve(BODY_READ);
    }
    std::pin::pin!(conn.stream.read_buf(&mut conn.buf)).poll(cx)
}

impl Stream for ResponseBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(data) = this.first.take() {
            return Poll::Ready(Some(Ok(data)));
        }
        loop {
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            match &mut this.left {
                Left::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Left::Length(left) => {
                    if !conn.buf.is_empty() {
                        let n = usize::try_from(*left).unwrap_or(usize::MAX).min(conn.buf.len());
                        let data = conn.buf.split_to(n).freeze();
                        *left -= n as u64;
                        if *left == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Left::Chunked(decoder) => match decoder.step(&mut conn.buf) {
                    Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(data))),
                    Ok(Step::End) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Step::NeedMore) => {}
                    Err(msg) => return this.fail(PayloadError::Io(io::Error::new(io::ErrorKind::InvalidData, msg))),
                },
                Left::UntilClose => {
                    if !conn.buf.is_empty() {
                        return Poll::Ready(Some(Ok(conn.buf.split().freeze())));
                    }
                }
            }
            let filled = match poll_fill(conn, cx) {
                Poll::Ready(r) => r,
                Poll::Pending => {
                    if this.poll_idle(cx).is_ready() {
                        let idle = this.idle.unwrap_or_default();
                        let msg = format!("upstream sent nothing for {}", humantime::format_duration(idle));
                        return this.fail(PayloadError::Io(io::Error::new(io::ErrorKind::TimedOut, msg)));
                    }
                    return Poll::Pending;
                }
            };
            this.waiting = false;
            match filled {
                Ok(0) if matches!(this.left, Left::UntilClose) => {
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(PayloadError::Incomplete(None)),
                Ok(_) => {}
                Err(e) => return this.fail(PayloadError::Io(e)),
            }
        }
    }
}
