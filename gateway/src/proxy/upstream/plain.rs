//! The `http://` implementation: the own HTTP/1.1 client (`proxy/h1`) behind the
//! `Upstream` interface. The request head is written straight from the source headers
//! (no header map is built); answers come back as parsed by `h1`.

use actix_web::http::header::{self, HeaderValue};

use super::{BodySource, Error, NoStream, Request, RequestBody, Response, Upgrade, Upgraded};
use crate::proxy::h1;

/// One exchange over the h1 client.
pub(super) async fn send<S: BodySource>(req: Request<'_, S>, idempotent: bool) -> Result<Response, Error> {
    let framing = match &req.body {
        RequestBody::None => h1::Framing::None,
        RequestBody::Full(b) => h1::Framing::Length(b.len() as u64),
        RequestBody::Stream(_, Some(n)) => h1::Framing::Length(*n),
        RequestBody::Stream(_, None) => h1::Framing::Chunked,
    };
    let mut head = h1::Head::new(req.method, req.endpoint, req.path, req.query);
    req.headers.each(|n, v| head.header(n, v));
    h1::send(req.endpoint, head.finish(framing), req.body, req.method, idempotent).await.map_err(error)
}

/// An upgrade over a fresh h1 connection.
pub(super) async fn upgrade(req: Request<'_, NoStream>, protocol: &HeaderValue) -> Result<Upgrade, Error> {
    let mut head = h1::Head::new(req.method, req.endpoint, req.path, req.query);
    req.headers.each(|n, v| head.header(n, v));
    head.header(&header::CONNECTION, &HeaderValue::from_static("upgrade"));
    head.header(&header::UPGRADE, protocol);
    match h1::upgrade(req.endpoint, head.finish(h1::Framing::None), req.method).await.map_err(error)? {
        h1::Switch::Switched { headers, stream, read_ahead } => {
            Ok(Upgrade::Switched(Upgraded { headers, io: stream, read_ahead }))
        }
        h1::Switch::Refused(res) => Ok(Upgrade::Refused(res)),
    }
}

/// The h1 client's errors in the interface's taxonomy.
pub(super) fn error(e: h1::Error) -> Error {
    if e.is_connect() {
        let timed_out = matches!(e, h1::Error::ConnectTimeout);
        let reason = match e {
            h1::Error::Connect(io) => io.to_string(),
            other => other.to_string(),
        };
        return Error::Connect { reason, timed_out };
    }
    match e {
        h1::Error::Body(e) => Error::ClientBody(e.to_string()),
        other => Error::Protocol(other.to_string()),
    }
}
