//! Header rules of the proxy, both directions, for every upstream client (the one place
//! they are written): hop-by-hop headers removed (with the ones `Connection` lists),
//! `Content-Length` parsed strictly, spoofable identity and forwarding headers replaced
//! by the gateway's own, `Via` appended.

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};

use super::Forward;
use crate::names;

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus ones a proxy must not pass on.
pub(super) const HOP_BY_HOP: [&HeaderName; 9] = [
    &header::CONNECTION,
    &names::KEEP_ALIVE,
    &names::PROXY_CONNECTION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
];

/// Whether `name` is hop-by-hop (never forwarded).
pub(super) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// The tokens of one `Connection` header value (`close`, `keep-alive` or header names),
/// trimmed, empty ones skipped.
pub(super) fn connection_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|t| !t.is_empty())
}

/// Extra hop-by-hop names listed in the `Connection` header.
pub(super) fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .flat_map(|v| connection_tokens(v.as_bytes()))
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .collect()
}

/// A `Content-Length` value (RFC 9110 §8.6): ASCII digits only — no sign, no spaces
/// inside, no list — around optional whitespace, at most 19 digits; `None` otherwise.
pub(super) fn content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// Whether a header from a prepared header map (a queued job's, a health check's) is
/// never sent as given: hop-by-hop, or set by the client itself (`Host`, the framing).
pub(super) fn is_connection_specific(name: &HeaderName) -> bool {
    is_hop_by_hop(name) || name == header::HOST || name == header::CONTENT_LENGTH
}

/// Calls `f` with every header to send upstream for this request, in order: the client's
/// end-to-end headers, then the gateway's forwarding, identity, validator, request id,
/// trace and `Via` headers (each name at most once among the gateway's own).
pub(super) fn each_upstream_header(fw: &Forward<'_>, mut f: impl FnMut(&HeaderName, &HeaderValue)) {
    let src = fw.req.headers();
    let listed = if src.contains_key(header::CONNECTION) { connection_listed(src) } else { Vec::new() };
    for (name, value) in src.iter() {
        let drop = is_hop_by_hop(name)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::EXPECT
            || name == header::VIA
            || name == names::X_CONSUMER_ID
            || name == names::X_CONSUMER_TIER
            || name == names::X_FORWARDED_FOR
            || name == names::X_FORWARDED_PROTO
            || name == names::X_FORWARDED_HOST
            || name == names::X_REAL_IP
            || name == names::X_REQUEST_ID
            || (name == names::FORWARDED && !fw.addr.peer_trusted)
            || (fw.conditional.is_some() && (name == header::IF_NONE_MATCH || name == header::IF_MODIFIED_SINCE))
            || (fw.traceparent.is_some() && name == names::TRACEPARENT)
            || listed.contains(name);
        if !drop {
            f(name, value);
        }
    }
    f(&names::X_FORWARDED_FOR, &fw.addr.forwarded_for);
    f(&names::X_FORWARDED_PROTO, &fw.addr.forwarded_proto);
    if let Some(h) = &fw.addr.forwarded_host {
        f(&names::X_FORWARDED_HOST, h);
    }
    if let Some(ip) = &fw.addr.real_ip {
        f(&names::X_REAL_IP, ip);
    }
    if let Some(id) = fw.identity {
        if let Ok(v) = HeaderValue::from_str(&id.consumer) {
            f(&names::X_CONSUMER_ID, &v);
        }
        if let Some(v) = id.tier.as_deref().and_then(|t| HeaderValue::from_str(t).ok()) {
            f(&names::X_CONSUMER_TIER, &v);
        }
    }
    if let Some(c) = fw.conditional {
        if let Some(v) = &c.etag {
            f(&header::IF_NONE_MATCH, v);
        }
        if let Some(v) = &c.last_modified {
            f(&header::IF_MODIFIED_SINCE, v);
        }
    }
    f(&names::X_REQUEST_ID, fw.request_id);
    if let Some(tp) = fw.traceparent {
        f(&names::TRACEPARENT, tp);
    }
    f(&header::VIA, &via_value(src.get_all(header::VIA), fw.via));
}

/// The headers to send upstream as a map (the awc path and queued jobs).
pub(super) fn upstream_headers(fw: &Forward<'_>) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(fw.req.headers().len() + 6);
    each_upstream_header(fw, |n, v| out.append(n.clone(), v.clone()));
    out
}

/// `Via`: every previous hop, from all `Via` lines in order (RFC 9110 §7.6.3: a list
/// may be split over several lines), with ours appended as one combined value.
fn via_value<'a>(existing: impl Iterator<Item = &'a HeaderValue>, via: &HeaderValue) -> HeaderValue {
    let mut combined: Vec<u8> = Vec::new();
    for value in existing {
        let hops = value.as_bytes().trim_ascii();
        if hops.is_empty() {
            continue;
        }
        if !combined.is_empty() {
            combined.extend_from_slice(b", ");
        }
        combined.extend_from_slice(hops);
    }
    if combined.is_empty() {
        return via.clone();
    }
    combined.extend_from_slice(b", ");
    combined.extend_from_slice(via.as_bytes());
    HeaderValue::from_bytes(&combined).unwrap_or_else(|_| via.clone())
}

/// Appends this node to the `Via` header of `out` (proxied answers, and the cache's
/// stored answers when served).
pub fn append_via(out: &mut HeaderMap, via: &HeaderValue) {
    let value = via_value(out.get_all(header::VIA), via);
    out.insert(header::VIA, value);
}

/// Whether an answer to `method` with `status` has no body, whatever its headers say
/// (RFC 9112 §6.3: HEAD, 1xx, 204, 304).
pub(super) fn is_bodiless(method: &Method, status: StatusCode) -> bool {
    *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// Whether the upstream's `Content-Length` is passed on: only a 304's (it describes the
/// stored representation); any other body's length is re-derived from the body we send.
pub(super) fn keeps_content_length(status: StatusCode) -> bool {
    status == StatusCode::NOT_MODIFIED
}

/// Turns an upstream's response headers into the client's: hop-by-hop headers (and the
/// ones `Connection` lists) removed, `Content-Length` removed except on a 304 (the body
/// we send re-derives it). Returns the upstream's declared length.
pub(super) fn clean_response_headers(headers: &mut HeaderMap, status: StatusCode) -> Option<u64> {
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| content_length(v.as_bytes()));
    for name in connection_listed(headers) {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if !keeps_content_length(status) {
        headers.remove(header::CONTENT_LENGTH);
    }
    length
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_recognised() {
        assert!(is_hop_by_hop(&header::CONNECTION));
        assert!(is_hop_by_hop(&header::TRANSFER_ENCODING));
        assert!(is_hop_by_hop(&names::KEEP_ALIVE));
        assert!(!is_hop_by_hop(&header::CONTENT_TYPE));
    }

    #[test]
    fn connection_listed_names_are_collected() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, X-Secret-Hop"));
        let l = connection_listed(&h);
        assert!(l.contains(&HeaderName::from_static("x-secret-hop")));
    }

    #[test]
    fn content_lengths_are_digits_only() {
        assert_eq!(content_length(b"12"), Some(12));
        assert_eq!(content_length(b" 0 "), Some(0));
        assert_eq!(content_length(b"9999999999999999999"), Some(9_999_999_999_999_999_999));
        for bad in [&b""[..], b"+1", b"-1", b"1 2", b"1,1", b"0x10", b"18446744073709551616", b"99999999999999999999"] {
            assert_eq!(content_length(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn bodiless_answers_follow_rfc_9112() {
        assert!(is_bodiless(&Method::HEAD, StatusCode::OK));
        assert!(is_bodiless(&Method::GET, StatusCode::NO_CONTENT));
        assert!(is_bodiless(&Method::GET, StatusCode::NOT_MODIFIED));
        assert!(is_bodiless(&Method::GET, StatusCode::CONTINUE));
        assert!(!is_bodiless(&Method::GET, StatusCode::OK));
        assert!(!is_bodiless(&Method::POST, StatusCode::NOT_FOUND));
    }

    #[test]
    fn connection_tokens_are_trimmed() {
        let t: Vec<&[u8]> = connection_tokens(b" close ,, X-A,keep-alive").collect();
        assert_eq!(t, [&b"close"[..], b"X-A", b"keep-alive"]);
    }

    #[test]
    fn via_is_appended_to_previous_hops() {
        let ours = HeaderValue::from_static("1.1 gw-1");
        assert_eq!(via_value(std::iter::empty(), &ours), "1.1 gw-1");
        let prev = HeaderValue::from_static("1.0 edge");
        assert_eq!(via_value([&prev].into_iter(), &ours), "1.0 edge, 1.1 gw-1");
        let (a, b, blank) = (
            HeaderValue::from_static("1.0 a"),
            HeaderValue::from_static("1.1 b, 1.1 c"),
            HeaderValue::from_static(" "),
        );
        assert_eq!(via_value([&a, &blank, &b].into_iter(), &ours), "1.0 a, 1.1 b, 1.1 c, 1.1 gw-1");
    }

    #[test]
    fn response_cleaning_keeps_the_length_of_a_304_only() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        h.insert(header::CONNECTION, HeaderValue::from_static("x-hop"));
        h.insert(HeaderName::from_static("x-hop"), HeaderValue::from_static("1"));
        h.insert(header::ETAG, HeaderValue::from_static("\"a\""));
        let mut g = h.clone();
        assert_eq!(clean_response_headers(&mut h, StatusCode::OK), Some(12));
        assert!(h.get(header::CONTENT_LENGTH).is_none() && h.get("x-hop").is_none());
        assert!(h.get(header::CONNECTION).is_none() && h.get(header::ETAG).is_some());
        clean_response_headers(&mut g, StatusCode::NOT_MODIFIED);
        assert_eq!(g.get(header::CONTENT_LENGTH).map(|v| v.as_bytes()), Some(&b"12"[..]));
    }
}
