//! The phases before routing and routing itself (SPEC §4 step 2): header limits, loop
//! detection, path normalization, then longest prefix (then Host) over the route table.
//! Shared by the pipeline and the `100-continue` gate, which decides from the head alone.

use std::borrow::Cow;
use std::sync::Arc;

use actix_web::http::Uri;
use actix_web::http::header::{self, HeaderMap};
use actors::registry::{Route, RoutesView};

use super::{Pipeline, limits, normalize};
use crate::error::GatewayError;

/// The request filter and the route phase over a request head: the normalized path and
/// the matched route, or the error that answers the request.
pub(crate) fn admit<'p>(
    node: &Pipeline,
    headers: &HeaderMap,
    uri: &Uri,
    path: &'p str,
) -> Result<(Cow<'p, str>, Arc<Route>), GatewayError> {
    filter(node, headers)?;
    let path = normalize::path(path);
    let route = find(headers, uri, &path, &node.routes)?;
    Ok((path, route))
}

/// What the head alone refuses before routing: oversized headers, a request loop.
pub(crate) fn filter(node: &Pipeline, headers: &HeaderMap) -> Result<(), GatewayError> {
    limits::check_headers(headers, &node.limits)?;
    if passed_through(headers, &node.node_id) {
        return Err(GatewayError::LoopDetected(node.node_id.to_string()));
    }
    Ok(())
}

/// Longest-prefix (then Host) match over the current route table.
pub(crate) fn find(
    headers: &HeaderMap,
    uri: &Uri,
    path: &str,
    routes: &RoutesView,
) -> Result<Arc<Route>, GatewayError> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| uri.host());
    routes.load().find(path, host).cloned().ok_or_else(|| GatewayError::RouteNotFound(path.to_string()))
}

/// Whether `Via` names this node as a hop already (`1.1 <node-id>`, as the proxy adds
/// it): the request went out through this node and came back. Each hop's `received-by`
/// is compared whole, so `gw-1` is not found in `1.1 gw-10`. Requests without `Via` pay
/// one header lookup.
fn passed_through(headers: &HeaderMap, node_id: &str) -> bool {
    headers.get_all(header::VIA).any(|v| via_names(v.as_bytes(), node_id.as_bytes()))
}

/// Whether one `Via` value lists `node` as a hop's `received-by`.
fn via_names(value: &[u8], node: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|hop| {
        let mut parts = hop.split(u8::is_ascii_whitespace).filter(|p| !p.is_empty());
        parts.next().is_some() && parts.next() == Some(node)
    })
}

#[cfg(test)]
mod tests {
    use super::via_names;

    #[test]
    fn via_finds_this_node_as_a_whole_hop_only() {
        assert!(via_names(b"1.1 gw-1", b"gw-1"));
        assert!(via_names(b"1.0 proxy, 1.1 gw-1 (gateway)", b"gw-1"));
        assert!(via_names(b"HTTP/1.1  gw-1,1.1 other", b"gw-1"));
        assert!(!via_names(b"1.1 gw-10", b"gw-1"));
        assert!(!via_names(b"1.1 xgw-1", b"gw-1"));
        assert!(!via_names(b"1.1 gw-1x, 1.1 gw", b"gw-1"));
        assert!(!via_names(b"gw-1", b"gw-1"), "a bare token is the protocol, not the hop");
        assert!(!via_names(b"", b"gw-1"));
    }
}
