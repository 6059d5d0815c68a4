//! The IP rules policy (SPEC §17): `[services.ip]` allow and deny lists, checked on the
//! client address the gateway believes (`cx.addr`: the peer, or the rightmost untrusted
//! `X-Forwarded-For` entry when the peer is a trusted proxy). Refused: `403 ip_forbidden`.

use std::net::IpAddr;

use actors::registry::Route;

use super::phase::{Flow, Policy};
use super::{Ctx, Pipeline};
use crate::error::GatewayError;

/// The IP rules policy.
pub struct IpRules;

impl Policy for IpRules {
    async fn request(_node: &Pipeline, cx: &mut Ctx<'_>) -> Result<Flow, GatewayError> {
        check(cx.addr.ip, &cx.route)?;
        Ok(Flow::Continue)
    }
}

/// Refuses a client at `ip` (`None`: unknown) that `route`'s rules do not permit. Also
/// used before `100 Continue` (see `expect`).
pub(crate) fn check(ip: Option<IpAddr>, route: &Route) -> Result<(), GatewayError> {
    match &route.spec.ip {
        Some(rules) if !rules.permits(ip) => Err(GatewayError::IpForbidden(match ip {
            Some(ip) => format!("client address {ip} may not call service {}", route.name),
            None => format!("an unknown client address may not call service {}", route.name),
        })),
        _ => Ok(()),
    }
}
