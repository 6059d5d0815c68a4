//! Who the client is: the peer address, or — only when the peer is a trusted proxy —
//! the rightmost untrusted address of `X-Forwarded-For`. Builds the forwarding headers
//! sent upstream.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header;
use ipnet::IpNet;

use crate::names;

/// The client as the gateway believes it, and the forwarding header values to send.
#[derive(Debug, Clone)]
pub struct ClientAddr {
    /// The trusted client address (used for rate-limit keys and hashing).
    pub ip: Option<IpAddr>,
    /// `X-Forwarded-For` to send upstream.
    pub forwarded_for: String,
    /// `X-Forwarded-Proto` to send upstream.
    pub forwarded_proto: String,
    /// `X-Forwarded-Host` to send upstream (absent when the client sent no Host).
    pub forwarded_host: Option<String>,
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

/// Works out the client and the forwarding headers for a request.
pub fn client_addr(req: &HttpRequest, nets: &[IpNet]) -> ClientAddr {
    let peer = req.peer_addr().map(|a| a.ip());
    let peer_trusted = peer.is_some_and(|p| trusted(p, nets));
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string);
    let peer_s = peer.map(|p| p.to_string()).unwrap_or_default();
    if !peer_trusted {
        return ClientAddr {
            ip: peer,
            forwarded_for: peer_s,
            forwarded_proto: "http".into(),
            forwarded_host: host,
            peer_trusted,
        };
    }
    let chain: Vec<&str> = req
        .headers()
        .get_all(&names::X_FORWARDED_FOR)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let addrs: Vec<IpAddr> = chain.iter().filter_map(|s| parse_ip(s)).collect();
    // Rightmost address that is not one of our proxies; all trusted -> the leftmost.
    let ip = addrs.iter().rev().find(|a| !trusted(**a, nets)).or(addrs.first()).copied().or(peer);
    let mut forwarded_for = chain.join(", ");
    if !forwarded_for.is_empty() {
        forwarded_for.push_str(", ");
    }
    forwarded_for.push_str(&peer_s);
    let first = |name: &header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or("").trim().to_string())
    };
    ClientAddr {
        ip,
        forwarded_for,
        forwarded_proto: first(&names::X_FORWARDED_PROTO)
            .filter(|p| p == "http" || p == "https")
            .unwrap_or_else(|| "http".into()),
        forwarded_host: first(&names::X_FORWARDED_HOST).filter(|h| !h.is_empty()).or(host),
        peer_trusted,
    }
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
