//! Mapping RFC 9111 decisions onto actix headers: directives and facts of requests and
//! responses, what to store (`Plan`), 304 merges, and rendering stored responses.

use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use actors::cache::CachedResponse;
use actors::cache::policy::{self, AgeFacts, CacheControl, ResponseFacts, StoredFreshness};
use actors::spec::CacheSpec;
use bytes::{Bytes, BytesMut};

use super::CacheLayer;
use crate::names;

/// How long an entry with validators is kept after it went stale, at least.
const REVALIDATION_KEEP: Duration = Duration::from_secs(60);

pub(super) fn request_directives(headers: &HeaderMap) -> CacheControl {
    let values: Vec<&str> = headers.get_all(header::CACHE_CONTROL).filter_map(|v| v.to_str().ok()).collect();
    let mut cc = CacheControl::parse(values.iter().copied());
    if values.is_empty() && pragma_no_cache(headers) {
        cc.no_cache = true;
    }
    cc
}

pub(super) fn pragma_no_cache(headers: &HeaderMap) -> bool {
    headers.get_all(header::PRAGMA).filter_map(|v| v.to_str().ok()).any(|v| v.to_ascii_lowercase().contains("no-cache"))
}

/// The request's values of the headers `names` (lower-case); multiple values joined.
pub(super) fn vary_values(headers: &HeaderMap, names: &[String]) -> Vec<(String, Option<Bytes>)> {
    names
        .iter()
        .map(|n| {
            let mut values = headers.get_all(n.as_str()).map(|v| v.as_bytes());
            let value = values.next().map(|first| {
                let mut b = BytesMut::from(first);
                for v in values {
                    b.extend_from_slice(b", ");
                    b.extend_from_slice(v);
                }
                b.freeze()
            });
            (n.clone(), value)
        })
        .collect()
}

pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn response_facts(status: u16, headers: &HeaderMap) -> (ResponseFacts<'_>, Vec<String>) {
    let values: Vec<&str> = headers.get_all(header::CACHE_CONTROL).filter_map(|v| v.to_str().ok()).collect();
    let mut cc = CacheControl::parse(values.iter().copied());
    if values.is_empty() && pragma_no_cache(headers) {
        cc.no_cache = true;
    }
    let mut vary: Vec<String> = headers
        .get_all(header::VARY)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    vary.sort_unstable();
    vary.dedup();
    let facts = ResponseFacts {
        status,
        cc,
        date: header_str(headers, &header::DATE),
        expires: header_str(headers, &header::EXPIRES),
        last_modified: header_str(headers, &header::LAST_MODIFIED),
        set_cookie: headers.contains_key(header::SET_COOKIE),
        vary: vary.iter().any(|v| v == "*").then_some("*"),
    };
    (facts, vary)
}

pub(super) fn stored_freshness(cc: &CacheControl, lifetime_ms: u64) -> StoredFreshness {
    StoredFreshness {
        lifetime_ms,
        no_cache: cc.no_cache,
        must_revalidate: cc.must_revalidate || cc.proxy_revalidate,
        swr_s: cc.stale_while_revalidate.unwrap_or(0),
        sie_s: cc.stale_if_error.unwrap_or(0),
    }
}

/// How long a response is kept: its freshness plus the stale periods it allows (and a
/// revalidation window when it has validators). `None`: not worth storing.
pub(super) fn storage_ttl(f: &StoredFreshness, has_validator: bool) -> Option<Duration> {
    let extra = f.swr_s.max(f.sie_s).saturating_mul(1000);
    let keep = if has_validator { extra.max(f.lifetime_ms).max(REVALIDATION_KEEP.as_millis() as u64) } else { extra };
    (f.lifetime_ms > 0 || has_validator).then(|| Duration::from_millis(f.lifetime_ms.saturating_add(keep)))
}

/// What to store once the body has been read.
pub(super) struct Plan {
    status: u16,
    headers: Vec<(String, Bytes)>,
    age: AgeFacts,
    freshness: StoredFreshness,
    vary: Vec<(String, Option<Bytes>)>,
    ttl: Duration,
}

impl Plan {
    pub(super) fn into_entry(self, body: Bytes) -> (CachedResponse, Duration) {
        let entry = CachedResponse {
            status: self.status,
            headers: self.headers,
            body,
            age: self.age,
            freshness: self.freshness,
            vary: self.vary,
        };
        (entry, self.ttl)
    }
}

/// Decides whether `res` (to a GET) is stored, and captures what is needed to store it.
/// `authorized`: the request carried `Authorization` and the entry would be shared, so
/// only a response that allows it is stored (RFC 9111 §3.5).
pub(super) fn plan(
    res: &HttpResponse,
    req: &HttpRequest,
    request_ms: u64,
    layer: &CacheLayer,
    spec: &CacheSpec,
    via: &HeaderValue,
    authorized: bool,
) -> Option<Plan> {
    let now = actors::now_unix_ms();
    let (facts, vary_names) = response_facts(res.status().as_u16(), res.headers());
    if authorized && !facts.cc.shareable_despite_authorization() {
        return None;
    }
    let lifetime = policy::storable(&facts, &spec.statuses, spec.ttl.map(|t| t.get()), now).ok()?;
    if let BodySize::Sized(n) = res.body().size()
        && n > layer.cache.settings().max_object
    {
        return None;
    }
    let freshness = stored_freshness(&facts.cc, lifetime);
    let has_validator = res.headers().contains_key(header::ETAG) || res.headers().contains_key(header::LAST_MODIFIED);
    let ttl = storage_ttl(&freshness, has_validator)?;
    let age = AgeFacts {
        request_ms,
        response_ms: now,
        date_ms: facts.date.and_then(policy::http_date_ms),
        age_s: header_str(res.headers(), &header::AGE).and_then(|a| a.trim().parse().ok()).unwrap_or(0),
    };
    Some(Plan {
        status: res.status().as_u16(),
        headers: stored_headers(res.headers(), via),
        age,
        freshness,
        vary: vary_values(req.headers(), &vary_names),
        ttl,
    })
}

/// RFC 9111 §4.3.4: a `304` updates the stored headers (all but framing ones) and the
/// timing facts; freshness is recomputed from the merged headers. The updated response
/// and how long to store it: `None` when it is served to this request only (the merged
/// headers no longer make it storable, or `authorized` as for `plan` and they do not
/// allow sharing).
pub(super) fn revalidated(
    old: &CachedResponse,
    fresh: &HeaderMap,
    request_ms: u64,
    settings: &actors::cache::CacheSettings,
    spec: &CacheSpec,
    via: &HeaderValue,
    authorized: bool,
) -> (CachedResponse, Option<Duration>) {
    let mut merged = HeaderMap::new();
    for (n, v) in &old.headers {
        if let Some((n, v)) = stored_header(n, v) {
            merged.append(n, v);
        }
    }
    for name in fresh.keys() {
        if name == header::CONTENT_LENGTH || name == header::CONTENT_ENCODING || name == header::AGE {
            continue;
        }
        merged.remove(name);
        for v in fresh.get_all(name) {
            merged.append(name.clone(), v.clone());
        }
    }
    let now = actors::now_unix_ms();
    let (facts, _) = response_facts(old.status, &merged);
    let statuses = [old.status];
    let lifetime = policy::storable(&facts, &statuses, spec.ttl.map(|t| t.get()), now).ok();
    let freshness = stored_freshness(&facts.cc, lifetime.unwrap_or(0));
    let shareable = !authorized || facts.cc.shareable_despite_authorization();
    let ttl =
        lifetime.filter(|_| shareable).and_then(|_| storage_ttl(&freshness, true)).map(|t| t.min(settings.default_ttl));
    let age = AgeFacts {
        request_ms,
        response_ms: now,
        date_ms: facts.date.and_then(policy::http_date_ms),
        age_s: header_str(fresh, &header::AGE).and_then(|a| a.trim().parse().ok()).unwrap_or(0),
    };
    let headers = stored_headers(&merged, via);
    (CachedResponse { headers, age, freshness, ..old.clone() }, ttl)
}

/// The headers a response is stored with: the upstream's, without `Age`, `Set-Cookie`
/// and what a node adds on its way out (its own `Via` entry, `X-Gateway-Node`,
/// `X-Request-Id`, `X-Cache-Status`): the node that serves the entry adds its own.
pub(super) fn stored_headers(headers: &HeaderMap, via: &HeaderValue) -> Vec<(String, Bytes)> {
    headers
        .iter()
        .filter(|(n, _)| {
            !(*n == header::AGE
                || *n == header::SET_COOKIE
                || *n == names::X_GATEWAY_NODE
                || *n == names::X_REQUEST_ID
                || *n == names::X_CACHE_STATUS)
        })
        .filter_map(|(n, v)| {
            let v = if n == header::VIA { upstream_via(v.as_bytes(), via.as_bytes())? } else { v.as_bytes() };
            Some((n.as_str().to_string(), Bytes::copy_from_slice(v)))
        })
        .collect()
}

/// A `Via` value without the entry this node appended to it (`ours`, last); `None` when
/// nothing else is left.
fn upstream_via<'a>(value: &'a [u8], ours: &[u8]) -> Option<&'a [u8]> {
    if value == ours {
        return None;
    }
    Some(value.strip_suffix(ours).and_then(|rest| rest.strip_suffix(b", ")).unwrap_or(value))
}

/// A stored header as a response header; the value shares the stored bytes (no copy).
fn stored_header(name: &str, value: &Bytes) -> Option<(HeaderName, HeaderValue)> {
    Some((HeaderName::from_bytes(name.as_bytes()).ok()?, HeaderValue::from_maybe_shared(value.clone()).ok()?))
}

/// Renders a stored response (or a `304` when the client's validators match it); the
/// decorate phase appends this node's `Via` to the stored one.
pub(super) fn from_entry(req: &HttpRequest, entry: &CachedResponse, age_ms: u64) -> HttpResponse {
    let status = StatusCode::from_u16(entry.status).unwrap_or(StatusCode::OK);
    let not_modified = status == StatusCode::OK && client_has_it(req.headers(), entry);
    let mut res = HttpResponse::build(if not_modified { StatusCode::NOT_MODIFIED } else { status });
    for (n, v) in &entry.headers {
        if not_modified
            && !matches!(
                n.as_str(),
                "cache-control" | "content-location" | "date" | "etag" | "expires" | "vary" | "last-modified"
            )
        {
            continue;
        }
        if let Some((n, v)) = stored_header(n, v) {
            res.append_header((n, v));
        }
    }
    res.insert_header((header::AGE, HeaderValue::from(age_ms / 1000)));
    if not_modified { res.finish() } else { res.body(entry.body.clone()) }
}

/// `If-None-Match` (weak comparison), else `If-Modified-Since`, against the entry.
pub(super) fn client_has_it(headers: &HeaderMap, entry: &CachedResponse) -> bool {
    let weak = |t: &str| t.trim().trim_start_matches("W/").to_string();
    if let Some(inm) = header_str(headers, &header::IF_NONE_MATCH) {
        let Some(etag) = entry.header_str("etag") else { return false };
        let etag = weak(etag);
        return inm.split(',').any(|t| t.trim() == "*" || weak(t) == etag);
    }
    match (header_str(headers, &header::IF_MODIFIED_SINCE), entry.header_str("last-modified")) {
        (Some(ims), Some(lm)) => match (policy::http_date_ms(ims), policy::http_date_ms(lm)) {
            (Some(ims), Some(lm)) => lm <= ims,
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_keeps_validated_entries_for_revalidation() {
        let f = StoredFreshness { lifetime_ms: 0, ..StoredFreshness::default() };
        assert_eq!(storage_ttl(&f, false), None, "nothing fresh and nothing to revalidate with");
        assert_eq!(storage_ttl(&f, true), Some(REVALIDATION_KEEP));
        let swr = StoredFreshness { lifetime_ms: 10_000, swr_s: 30, ..StoredFreshness::default() };
        assert_eq!(storage_ttl(&swr, false), Some(Duration::from_secs(40)));
    }

    #[test]
    fn client_validators_are_compared_weakly() {
        let entry = CachedResponse {
            status: 200,
            headers: vec![("etag".into(), Bytes::from_static(b"W/\"v1\""))],
            body: Bytes::new(),
            age: AgeFacts::default(),
            freshness: StoredFreshness::default(),
            vary: Vec::new(),
        };
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"v0\", \"v1\""));
        assert!(client_has_it(&h, &entry));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"v2\""));
        assert!(!client_has_it(&h, &entry));
    }

    #[test]
    fn stored_headers_keep_the_upstreams_via_and_drop_node_headers() {
        let ours = HeaderValue::from_static("1.1 gw-a");
        let mut h = HeaderMap::new();
        h.insert(header::VIA, HeaderValue::from_static("1.0 edge, 1.1 gw-a"));
        h.insert(names::X_GATEWAY_NODE.clone(), HeaderValue::from_static("gw-a"));
        h.insert(header::ETAG, HeaderValue::from_static("\"v\""));
        let stored = stored_headers(&h, &ours);
        assert_eq!(stored.len(), 2);
        assert!(stored.contains(&("via".into(), Bytes::from_static(b"1.0 edge"))));
        h.insert(header::VIA, ours.clone());
        assert!(stored_headers(&h, &ours).iter().all(|(n, _)| n != "via"), "only ours: no Via stored");
        h.insert(header::VIA, HeaderValue::from_static("1.1 gw-b"));
        assert!(stored_headers(&h, &ours).contains(&("via".into(), Bytes::from_static(b"1.1 gw-b"))));
    }

    #[test]
    fn vary_values_join_repeated_headers() {
        let mut h = HeaderMap::new();
        h.append(header::ACCEPT, HeaderValue::from_static("a"));
        h.append(header::ACCEPT, HeaderValue::from_static("b"));
        let v = vary_values(&h, &["accept".into(), "accept-language".into()]);
        assert_eq!(v[0].1.as_deref(), Some(&b"a, b"[..]));
        assert_eq!(v[1].1, None);
    }
}
