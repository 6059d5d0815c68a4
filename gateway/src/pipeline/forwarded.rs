//! Who the client is: the peer address, or — only when the peer is a trusted proxy —
//! the rightmost untrusted address of `X-Forwarded-For`. Builds the forwarding headers
//! sent upstream.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use ipnet::IpNet;

use crate::names;

/// The client as the gateway believes it, and the forwarding header values to send.
#[derive(Debug, Clone)]
pub struct ClientAddr {
    /// The trusted client address (used for rate-limit keys and hashing).
    pub ip: Option<IpAddr>,
    /// `X-Forwarded-For` to send upstream.
    pub forwarded_for: HeaderValue,
    /// `X-Forwarded-Proto` to send upstream.
    pub forwarded_proto: HeaderValue,
    /// `X-Forwarded-Host` to send upstream (absent when the client sent no Host).
    pub forwarded_host: Option<HeaderValue>,
    /// `X-Real-IP` to send upstream (the trusted client address).
    pub real_ip: Option<HeaderValue>,
    /// Whether the direct peer is a trusted proxy.
    pub peer_trusted: bool,
}

fn trusted(ip: IpAddr, nets: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    nets.iter().any(|n| n.contains(&ip))
}

fn value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// The header value of an address. Formatting an address is a measurable part of a
/// proxied request, and a node mostly sees few peers (a load balancer, a few clients), so
/// each thread remembers the last one it formatted.
fn ip_value(ip: IpAddr) -> Option<HeaderValue> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((seen, v)) = &*last
            && *seen == ip
        {
            return Some(v.clone());
        }
        let v = value(&ip.to_string())?;
        *last = Some((ip, v.clone()));
        Some(v)
    })
}

const HTTP: HeaderValue = HeaderValue::from_static("http");
const HTTPS: HeaderValue = HeaderValue::from_static("https");

/// Works out the client and the forwarding header values for a request.
pub fn client_addr(req: &HttpRequest, nets: &[IpNet]) -> ClientAddr {
    let peer = req.peer_addr().map(|a| a.ip());
    let peer_trusted = peer.is_some_and(|p| trusted(p, nets));
    let host = req.headers().get(header::HOST).cloned();
    let peer_v = peer.and_then(ip_value).unwrap_or(HeaderValue::from_static(""));
    if !peer_trusted {
        return ClientAddr {
            ip: peer,
            real_ip: peer.map(|_| peer_v.clone()),
            forwarded_for: peer_v,
            forwarded_proto: HTTP,
            forwarded_host: host,
            peer_trusted,
        };
    }
    let chain = forwarded_chain(req.headers());
    let ip = pick(&chain, nets).or(peer);
    let mut forwarded_for = chain.join(", ");
    if !forwarded_for.is_empty() {
        forwarded_for.push_str(", ");
    }
    forwarded_for.push_str(peer_v.to_str().unwrap_or_default());
    let first = |name: &header::HeaderName| {
        req.headers().get(name).and_then(|v| v.to_str().ok()).map(|v| v.split(',').next().unwrap_or("").trim())
    };
    ClientAddr {
        ip,
        real_ip: ip.and_then(ip_value),
        forwarded_for: value(&forwarded_for).unwrap_or(peer_v),
        forwarded_proto: if first(&names::X_FORWARDED_PROTO) == Some("https") { HTTPS } else { HTTP },
        forwarded_host: first(&names::X_FORWARDED_HOST).filter(|h| !h.is_empty()).and_then(value).or(host),
        peer_trusted,
    }
}

/// The client address alone, from a request head (the `100-continue` gate): as
/// `client_addr` decides it.
pub(crate) fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, nets: &[IpNet]) -> Option<IpAddr> {
    if !peer.is_some_and(|p| trusted(p, nets)) {
        return peer;
    }
    pick(&forwarded_chain(headers), nets).or(peer)
}

/// The `X-Forwarded-For` entries, in order.
fn forwarded_chain(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(&names::X_FORWARDED_FOR)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The client behind a trusted peer: the rightmost address of `chain` that is not one
/// of our proxies; all trusted -> the leftmost.
fn pick(chain: &[&str], nets: &[IpNet]) -> Option<IpAddr> {
    let addrs: Vec<IpAddr> = chain.iter().filter_map(|s| parse_ip(s)).collect();
    addrs.iter().rev().find(|a| !trusted(**a, nets)).or(addrs.first()).copied()
}

/// Parses `1.2.3.4`, `1.2.3.4:5678`, `::1` or `[::1]:80`.
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok().or_else(|| {
        let host =
            s.strip_prefix('[').and_then(|r| r.split(']').next()).or_else(|| s.rsplit_once(':').map(|(h, _)| h))?;
        host.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn nets() -> Vec<IpNet> {
        vec!["10.0.0.0/8".parse().expect("net")]
    }

    #[test]
    fn untrusted_peers_cannot_spoof_the_client_address() {
        let req = TestRequest::default()
            .peer_addr("203.0.113.9:5000".parse().expect("addr"))
            .insert_header(("x-forwarded-for", "1.1.1.1"))
            .insert_header(("x-forwarded-proto", "https"))
            .to_http_request();
        let c = client_addr(&req, &nets());
        assert_eq!(c.ip, "203.0.113.9".parse().ok());
        assert_eq!(c.forwarded_for, "203.0.113.9");
        assert_eq!(c.forwarded_proto, "http");
    }

    #[test]
    fn trusted_proxies_append_and_the_rightmost_untrusted_is_the_client() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.2:5000".parse().expect("addr"))
            .insert_header(("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.3"))
            .insert_header(("x-forwarded-proto", "https"))
            .to_http_request();
        let c = client_addr(&req, &nets());
        assert_eq!(c.ip, "198.51.100.7".parse().ok());
        assert_eq!(c.forwarded_for, "6.6.6.6, 198.51.100.7, 10.0.0.3, 10.0.0.2");
        assert_eq!(c.forwarded_proto, "https");
    }
}
