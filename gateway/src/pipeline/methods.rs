//! The methods policy (SPEC §17): a service with `methods` answers any other method
//! `405 method_not_allowed` with `Allow`. `GET` implies `HEAD`. A CORS preflight
//! (`OPTIONS`) of a CORS service is answered before this policy runs; any other
//! `OPTIONS` is a method like the rest.

use actix_web::http::Method;
use actors::registry::Route;

use super::phase::{Flow, Policy};
use super::{Ctx, Pipeline};
use crate::error::GatewayError;

/// The methods policy.
pub struct Methods;

impl Policy for Methods {
    async fn request(_node: &Pipeline, cx: &mut Ctx<'_>) -> Result<Flow, GatewayError> {
        check(cx.req.method(), &cx.route)?;
        Ok(Flow::Continue)
    }
}

/// Refuses `method` when `route` lists its methods and this is not one of them. Also
/// used before `100 Continue` (see `expect`).
pub(crate) fn check(method: &Method, route: &Route) -> Result<(), GatewayError> {
    match &route.spec.methods {
        Some(list) if !list.allows(method.as_str()) => {
            Err(GatewayError::MethodNotAllowed { method: method.to_string(), allow: list.allow_header() })
        }
        _ => Ok(()),
    }
}
