//! The client response for an upstream's answer: headers cleaned plus `Via`, a complete
//! body sent as `Bytes`, a streaming one tracked for `least_conn` until it ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::HttpResponse;
use actix_web::body::{BodyStream, SizedStream};
use actix_web::error::PayloadError;
use actix_web::http::{Method, StatusCode};
use actors::balancer::InFlight;
use bytes::Bytes;
use futures_util::Stream;

use super::headers;
use super::upstream::{Response, ResponseBody};

/// Keeps an endpoint counted as busy until the response body has been sent.
struct Tracked<S> {
    inner: S,
    _in_flight: InFlight,
}

impl<S: Stream<Item = Result<Bytes, PayloadError>> + Unpin> Stream for Tracked<S> {
    type Item = Result<Bytes, PayloadError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// The upstream's answer as the client response (`Via` and the gateway's other headers
/// are added by the pipeline's decorate phase).
pub(super) fn respond(answer: Response, in_flight: InFlight, method: &Method) -> HttpResponse {
    let Response { status, headers, length, body } = answer;
    let no_body = headers::is_bodiless(method, status);
    let mut response = if no_body {
        match length {
            // HEAD: announce the length; the codec sends no body for HEAD.
            Some(n) if *method == Method::HEAD => {
                let empty = futures_util::stream::empty::<Result<Bytes, PayloadError>>();
                HttpResponse::with_body(status, SizedStream::new(n, empty)).map_into_boxed_body()
            }
            _ => HttpResponse::with_body(status, actix_web::body::None::new()).map_into_boxed_body(),
        }
    } else {
        match body {
            ResponseBody::Empty => HttpResponse::with_body(status, Bytes::new()).map_into_boxed_body(),
            // Complete already: the endpoint is no longer busy with it.
            ResponseBody::Full(b) => HttpResponse::with_body(status, b).map_into_boxed_body(),
            body => streamed(status, length, Tracked { inner: body, _in_flight: in_flight }),
        }
    };
    *response.headers_mut() = headers;
    response
}

fn streamed<S>(status: StatusCode, length: Option<u64>, body: S) -> HttpResponse
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static,
{
    match length {
        Some(n) => HttpResponse::with_body(status, SizedStream::new(n, body)).map_into_boxed_body(),
        None => HttpResponse::with_body(status, BodyStream::new(body)).map_into_boxed_body(),
    }
}
