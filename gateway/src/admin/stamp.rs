//! The admin listener's outermost middleware: every response carries the request's
//! `X-Request-Id` (SPEC §4), including `/health`, `/metrics`, the dashboard and errors
//! raised outside the token-protected scope, whose JSON body then names the same id.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use super::AdminError;
use crate::names;
use crate::pipeline::request_id;

/// Stamps the request id on a response that has none; re-renders an `AdminError` with it.
pub async fn stamp(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let id = request_id::of(req.request());
    let mut res = next.call(req).await?.map_into_boxed_body();
    let rendered = res.response().error().and_then(|e| e.as_error::<AdminError>()).map(|e| e.render(&id));
    if let Some(r) = rendered {
        res = res.into_response(r);
    }
    // An inner layer (the token middleware under `/admin`) may have answered with its
    // own id in body and header already: keep that pair consistent.
    if !res.headers().contains_key(&names::X_REQUEST_ID) {
        res.headers_mut().insert(names::X_REQUEST_ID.clone(), id);
    }
    Ok(res)
}
