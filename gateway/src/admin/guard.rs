//! What keeps a web page from driving the admin API through the operator's browser.
//!
//! - Without a token (loopback listener only): the `Host` must be the listen IP or
//!   `localhost` (any port), else `421 misdirected_request` — a DNS-rebinding page reaches
//!   the listener under its own host name (`/health` and `/ready` are exempt: probes
//!   reveal nothing and may send any `Host`; a request without `Host` passes, as no
//!   browser sends one); and `/admin/*` refuses browser cross-site
//!   requests with `403 forbidden`: an `Origin` other than `http://<Host>`, or a
//!   `Sec-Fetch-Site` other than `same-origin` / `none`.
//! - Always: a request body must be `Content-Type: application/json` (or
//!   `application/merge-patch+json`), else `415 unsupported_media_type`. A page can only
//!   send those types after a CORS preflight, which this listener never approves.
//!
//! With a token the origin checks are off: a cross-site page cannot attach an
//! `Authorization` header without that preflight, and a reverse proxy in front of the
//! listener may rewrite `Host`, which would make same-origin requests look cross-site.

use std::net::{IpAddr, SocketAddr};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use super::AdminState;
use crate::error::json_error;
use crate::pipeline::request_id;

/// Why a request was refused before any handler ran.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `Host` is neither the listen IP nor `localhost`.
    Host,
    /// A browser sent it from another origin.
    CrossSite,
    /// A body that is not JSON.
    MediaType,
}

impl Refusal {
    fn response(&self, id: &header::HeaderValue) -> HttpResponse {
        let (status, code, message) = match self {
            Self::Host => (
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected_request",
                "without an admin token the admin listener only answers Host: localhost or its listen address",
            ),
            Self::CrossSite => {
                (StatusCode::FORBIDDEN, "forbidden", "cross-site browser requests to the admin API are refused")
            }
            Self::MediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "admin request bodies must be sent as Content-Type: application/json",
            ),
        };
        json_error(status, code, message.into(), id, None, false)
    }
}

/// Whether `host` (a `Host` header value) names `listen`'s IP or `localhost`, any port.
pub fn host_allowed(host: &[u8], listen: SocketAddr) -> bool {
    let Ok(host) = std::str::from_utf8(host) else { return false };
    let (name, port) = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((inner, rest)) => (inner, rest),
            None => return false,
        },
        None => match host.split_once(':') {
            Some((name, _)) => (name, &host[name.len()..]),
            None => (host, ""),
        },
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !port_ok || name.is_empty() {
        return false;
    }
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<IpAddr>().is_ok_and(|ip| ip == listen.ip())
}

/// Whether the browser headers say the request came from another site (`Origin` not
/// `http://<Host>`, or `Sec-Fetch-Site` other than `same-origin` / `none`).
pub fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && !(site.as_bytes().eq_ignore_ascii_case(b"same-origin") || site.as_bytes().eq_ignore_ascii_case(b"none"))
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return false };
    let host = headers.get(header::HOST).map(|h| h.as_bytes()).unwrap_or_default();
    match origin.as_bytes().strip_prefix(b"http://") {
        Some(authority) => !authority.eq_ignore_ascii_case(host) || host.is_empty(),
        None => true,
    }
}

/// Whether the request carries a body whose type is not JSON.
pub fn non_json_body(headers: &HeaderMap) -> bool {
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes().iter().any(|b| *b != b'0'));
    if !has_body {
        return false;
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        .unwrap_or_default();
    !(media.eq_ignore_ascii_case("application/json") || media.eq_ignore_ascii_case("application/merge-patch+json"))
}

/// The checks of `/admin/*` (after the host check, before the token).
pub fn check_api(headers: &HeaderMap, tokenless: bool) -> Result<(), Refusal> {
    if tokenless && cross_site(headers) {
        return Err(Refusal::CrossSite);
    }
    if non_json_body(headers) {
        return Err(Refusal::MediaType);
    }
    Ok(())
}

/// Middleware over the whole admin listener: the `Host` check of a token-less listener
/// (not for `/health` and `/ready`).
pub async fn host_check(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Probes (`/health`, `/ready`) reveal nothing and may name the node as they like.
    let probe = matches!(req.path(), "/health" | "/ready");
    let refused = !probe
        && req.app_data::<web::Data<AdminState>>().is_some_and(|s| {
            s.token.is_none() && req.headers().get(header::HOST).is_some_and(|h| !host_allowed(h.as_bytes(), s.listen))
        });
    if refused {
        let id = request_id::of(req.request());
        let (http, _) = req.into_parts();
        return Ok(ServiceResponse::new(http, Refusal::Host.response(&id)));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// The response for a refused `/admin/*` request.
pub fn refuse(refusal: &Refusal, id: &header::HeaderValue) -> HttpResponse {
    refusal.response(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn listen() -> SocketAddr {
        "127.0.0.1:9901".parse().expect("addr")
    }

    #[test]
    fn only_the_listen_ip_and_localhost_are_hosts() {
        for ok in ["127.0.0.1:9901", "127.0.0.1", "localhost", "LocalHost:8080", "127.0.0.1:1"] {
            assert!(host_allowed(ok.as_bytes(), listen()), "{ok}");
        }
        for bad in ["evil.example", "evil.example:9901", "127.0.0.2:9901", "localhost.evil.example", "", "a/b", "[::1]"]
        {
            assert!(!host_allowed(bad.as_bytes(), listen()), "{bad}");
        }
        assert!(host_allowed(b"[::1]:9901", "[::1]:9901".parse().expect("v6")));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(header::HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_site_is_judged_by_origin_and_sec_fetch_site() {
        assert!(!cross_site(&headers(&[("host", "127.0.0.1:9901")])));
        assert!(!cross_site(&headers(&[("host", "127.0.0.1:9901"), ("origin", "http://127.0.0.1:9901")])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "none")])));
        assert!(cross_site(&headers(&[("host", "127.0.0.1:9901"), ("origin", "http://evil.example")])));
        assert!(cross_site(&headers(&[("host", "127.0.0.1:9901"), ("origin", "null")])));
        assert!(cross_site(&headers(&[("host", "127.0.0.1:9901"), ("origin", "https://127.0.0.1:9901")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])));
    }

    #[test]
    fn bodies_must_be_json() {
        assert!(!non_json_body(&headers(&[])));
        assert!(!non_json_body(&headers(&[("content-length", "0"), ("content-type", "text/plain")])));
        assert!(non_json_body(&headers(&[("content-length", "2"), ("content-type", "text/plain")])));
        assert!(non_json_body(&headers(&[("content-length", "2")])));
        assert!(non_json_body(&headers(&[("transfer-encoding", "chunked")])));
        assert!(!non_json_body(&headers(&[
            ("content-length", "2"),
            ("content-type", "Application/JSON; charset=utf-8")
        ])));
        assert!(!non_json_body(&headers(&[("content-length", "2"), ("content-type", "application/merge-patch+json")])));
    }
}
