//! RFC 9111 decisions, free of HTTP types: `Cache-Control` parsing, whether a response
//! may be stored and for how long it is fresh (§4.2.1, heuristics §4.2.2), its age
//! (§4.2.3), and what a stored response may be used for at a given moment.

use std::time::{Duration, UNIX_EPOCH};

/// Statuses that may be cached heuristically (RFC 9110 §15.1).
const HEURISTIC_STATUSES: [u16; 12] = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];
/// Share of the time since `Last-Modified` used as heuristic freshness.
const HEURISTIC_FRACTION: u64 = 10;

/// The `Cache-Control` directives the cache acts on (request or response).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (any form).
    pub no_cache: bool,
    /// `private` (any form).
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `max-age`, seconds.
    pub max_age: Option<u64>,
    /// `s-maxage`, seconds.
    pub s_maxage: Option<u64>,
    /// `must-revalidate`: never served stale.
    pub must_revalidate: bool,
    /// `proxy-revalidate`: never served stale by a shared cache (this one).
    pub proxy_revalidate: bool,
    /// `stale-while-revalidate`, seconds (RFC 5861).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error`, seconds (RFC 5861).
    pub stale_if_error: Option<u64>,
    /// `only-if-cached` (request).
    pub only_if_cached: bool,
}

impl CacheControl {
    /// Parses every `Cache-Control` value of a message. Unknown directives are ignored;
    /// a malformed delta-seconds counts as 0 (the conservative reading).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut cc = Self::default();
        for value in values {
            for directive in split_directives(value) {
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive.trim(), None),
                };
                let secs = || arg.map(|a| a.parse::<u64>().unwrap_or(0));
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => cc.no_store = true,
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "max-age" => cc.max_age = secs().or(Some(0)),
                    "s-maxage" => cc.s_maxage = secs().or(Some(0)),
                    "public" => cc.public = true,
                    "must-revalidate" => cc.must_revalidate = true,
                    "proxy-revalidate" => cc.proxy_revalidate = true,
                    "stale-while-revalidate" => cc.stale_while_revalidate = secs(),
                    "stale-if-error" => cc.stale_if_error = secs(),
                    "only-if-cached" => cc.only_if_cached = true,
                    _ => {}
                }
            }
        }
        cc
    }

    /// RFC 9111 §3.5: whether a shared cache may store and reuse this response to a
    /// request that carried `Authorization` (`public`, `s-maxage` or `must-revalidate`).
    pub fn shareable_despite_authorization(&self) -> bool {
        self.public || self.s_maxage.is_some() || self.must_revalidate
    }
}

/// Splits on commas outside quoted strings.
fn split_directives(value: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty())
}

/// Parses an HTTP-date into Unix milliseconds.
pub fn http_date_ms(value: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(value.trim()).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64)
}

/// Formats Unix milliseconds as an HTTP-date.
pub fn fmt_http_date(ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

/// What a response says about its own cacheability.
#[derive(Debug, Clone, Default)]
pub struct ResponseFacts<'a> {
    /// Status code.
    pub status: u16,
    /// Parsed `Cache-Control` (with `Pragma: no-cache` folded in when it has none).
    pub cc: CacheControl,
    /// `Date`.
    pub date: Option<&'a str>,
    /// `Expires`.
    pub expires: Option<&'a str>,
    /// `Last-Modified`.
    pub last_modified: Option<&'a str>,
    /// Whether there is a `Set-Cookie`.
    pub set_cookie: bool,
    /// `Vary` values joined.
    pub vary: Option<&'a str>,
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// Status not in the service's `statuses`.
    Status,
    /// `no-store` or `private`.
    Forbidden,
    /// `Set-Cookie` present.
    SetCookie,
    /// `Vary: *`.
    VaryStar,
    /// No explicit or heuristic freshness and no service `ttl`.
    NoFreshness,
}

/// Freshness lifetime (ms) of a storable response, or why it is not storable.
/// `service_ttl` is the service's fallback `ttl`; `now_ms` stands in for a missing `Date`.
pub fn storable(
    facts: &ResponseFacts<'_>,
    statuses: &[u16],
    service_ttl: Option<Duration>,
    now_ms: u64,
) -> Result<u64, NotStored> {
    if !statuses.contains(&facts.status) {
        return Err(NotStored::Status);
    }
    if facts.cc.no_store || facts.cc.private {
        return Err(NotStored::Forbidden);
    }
    if facts.set_cookie {
        return Err(NotStored::SetCookie);
    }
    if facts.vary.is_some_and(|v| v.split(',').any(|n| n.trim() == "*")) {
        return Err(NotStored::VaryStar);
    }
    freshness_lifetime(facts, service_ttl, now_ms).ok_or(NotStored::NoFreshness)
}

/// RFC 9111 §4.2.1 (then the service `ttl`, then §4.2.2's heuristic), in ms.
pub fn freshness_lifetime(facts: &ResponseFacts<'_>, service_ttl: Option<Duration>, now_ms: u64) -> Option<u64> {
    if let Some(s) = facts.cc.s_maxage.or(facts.cc.max_age) {
        return Some(s.saturating_mul(1000));
    }
    let date = facts.date.and_then(http_date_ms).unwrap_or(now_ms);
    if let Some(expires) = facts.expires {
        // An invalid Expires (e.g. "0") means already expired.
        return Some(http_date_ms(expires).map_or(0, |e| e.saturating_sub(date)));
    }
    if let Some(ttl) = service_ttl {
        return Some(ttl.as_millis() as u64);
    }
    let last_modified = facts.last_modified.and_then(http_date_ms)?;
    HEURISTIC_STATUSES
        .contains(&facts.status)
        .then(|| date.saturating_sub(last_modified) / HEURISTIC_FRACTION)
        .filter(|f| *f > 0)
}

/// The timing facts of a stored response needed to compute its age (§4.2.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgeFacts {
    /// When the request that produced it was sent (ms).
    pub request_ms: u64,
    /// When its response arrived (ms).
    pub response_ms: u64,
    /// Its `Date` (ms), if any.
    pub date_ms: Option<u64>,
    /// Its `Age` header (seconds), 0 if none.
    pub age_s: u64,
}

impl AgeFacts {
    /// `current_age` at `now_ms`, in ms (RFC 9111 §4.2.3).
    pub fn current_age_ms(&self, now_ms: u64) -> u64 {
        let apparent_age = self.date_ms.map_or(0, |d| self.response_ms.saturating_sub(d));
        let response_delay = self.response_ms.saturating_sub(self.request_ms);
        let corrected_age_value = self.age_s.saturating_mul(1000) + response_delay;
        let corrected_initial_age = apparent_age.max(corrected_age_value);
        let resident_time = now_ms.saturating_sub(self.response_ms);
        corrected_initial_age + resident_time
    }
}

/// What a stored response may be used for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usable {
    /// Fresh: serve it.
    Fresh,
    /// Stale, but within `stale-while-revalidate`: serve it and refresh in the background.
    StaleWhileRevalidate,
    /// Must be revalidated (or refetched) before use.
    Revalidate,
}

/// Freshness-related facts of a stored response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredFreshness {
    /// Freshness lifetime (ms).
    pub lifetime_ms: u64,
    /// Response `no-cache`: revalidate before every use.
    pub no_cache: bool,
    /// `must-revalidate` / `proxy-revalidate`: never served stale.
    pub must_revalidate: bool,
    /// `stale-while-revalidate` (s).
    pub swr_s: u64,
    /// `stale-if-error` (s).
    pub sie_s: u64,
}

impl StoredFreshness {
    /// How a response of age `age_ms` may be used for a request with `req` directives.
    pub fn usable(&self, age_ms: u64, req: &CacheControl) -> Usable {
        if req.no_cache || self.no_cache || req.max_age.is_some_and(|m| age_ms > m.saturating_mul(1000)) {
            return Usable::Revalidate;
        }
        if age_ms < self.lifetime_ms {
            return Usable::Fresh;
        }
        if !self.must_revalidate && age_ms < self.lifetime_ms + self.swr_s.saturating_mul(1000) {
            return Usable::StaleWhileRevalidate;
        }
        Usable::Revalidate
    }

    /// Whether a stale copy of age `age_ms` may stand in for an upstream error.
    pub fn usable_on_error(&self, age_ms: u64) -> bool {
        !self.must_revalidate && age_ms < self.lifetime_ms + self.sie_s.saturating_mul(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(cc: &str) -> ResponseFacts<'static> {
        ResponseFacts { status: 200, cc: CacheControl::parse([cc]), ..ResponseFacts::default() }
    }

    #[test]
    fn directives_parse_case_insensitively_with_quotes_and_commas() {
        let cc = CacheControl::parse(["Max-Age=60, no-cache=\"set-cookie, x\"", "s-maxage=\"30\", stale-if-error=5"]);
        assert_eq!(cc.max_age, Some(60));
        assert_eq!(cc.s_maxage, Some(30));
        assert!(cc.no_cache);
        assert_eq!(cc.stale_if_error, Some(5));
        assert!(!cc.no_store);
        assert_eq!(CacheControl::parse(["max-age=abc"]).max_age, Some(0), "malformed means 0");
    }

    #[test]
    fn only_public_s_maxage_or_must_revalidate_share_answers_to_authorized_requests() {
        for cc in ["public", "s-maxage=5", "must-revalidate", "max-age=5, PUBLIC"] {
            assert!(CacheControl::parse([cc]).shareable_despite_authorization(), "{cc}");
        }
        for cc in ["", "max-age=60", "proxy-revalidate", "no-cache", "publicity"] {
            assert!(!CacheControl::parse([cc]).shareable_despite_authorization(), "{cc}");
        }
        let proxy = CacheControl::parse(["proxy-revalidate"]);
        assert!(proxy.proxy_revalidate && !proxy.must_revalidate);
    }

    #[test]
    fn freshness_prefers_s_maxage_then_max_age_then_expires() {
        let now = 1_000_000_000_000;
        assert_eq!(storable(&facts("max-age=60, s-maxage=10"), &[200], None, now), Ok(10_000));
        assert_eq!(storable(&facts("max-age=60"), &[200], None, now), Ok(60_000));
        let date = fmt_http_date(now);
        let expires = fmt_http_date(now + 120_000);
        let f = ResponseFacts { status: 200, date: Some(&date), expires: Some(&expires), ..ResponseFacts::default() };
        assert_eq!(storable(&f, &[200], None, now), Ok(120_000));
        let bad = ResponseFacts { status: 200, expires: Some("0"), ..ResponseFacts::default() };
        assert_eq!(storable(&bad, &[200], Some(Duration::from_secs(9)), now), Ok(0), "invalid Expires is expired");
    }

    #[test]
    fn service_ttl_then_heuristic_then_nothing() {
        let now = 1_000_000_000_000;
        let plain = ResponseFacts { status: 200, ..ResponseFacts::default() };
        assert_eq!(storable(&plain, &[200], Some(Duration::from_secs(30)), now), Ok(30_000));
        assert_eq!(storable(&plain, &[200], None, now), Err(NotStored::NoFreshness));
        let lm = fmt_http_date(now - 1_000_000);
        let date = fmt_http_date(now);
        let h = ResponseFacts { status: 200, last_modified: Some(&lm), date: Some(&date), ..ResponseFacts::default() };
        assert_eq!(storable(&h, &[200], None, now), Ok(100_000), "10% of the time since Last-Modified");
        let not_heuristic = ResponseFacts { status: 302, ..h.clone() };
        assert_eq!(storable(&not_heuristic, &[302], None, now), Err(NotStored::NoFreshness));
    }

    #[test]
    fn forbidden_responses_are_not_stored() {
        let now = 0;
        assert_eq!(storable(&facts("no-store, max-age=60"), &[200], None, now), Err(NotStored::Forbidden));
        assert_eq!(storable(&facts("private, max-age=60"), &[200], None, now), Err(NotStored::Forbidden));
        let cookie = ResponseFacts { set_cookie: true, ..facts("max-age=60") };
        assert_eq!(storable(&cookie, &[200], None, now), Err(NotStored::SetCookie));
        let star = ResponseFacts { vary: Some("Accept, *"), ..facts("max-age=60") };
        assert_eq!(storable(&star, &[200], None, now), Err(NotStored::VaryStar));
        let status = ResponseFacts { status: 404, ..facts("max-age=60") };
        assert_eq!(storable(&status, &[200], None, now), Err(NotStored::Status));
    }

    #[test]
    fn age_follows_rfc_9111_section_4_2_3() {
        let t = AgeFacts { request_ms: 10_000, response_ms: 12_000, date_ms: Some(5_000), age_s: 3 };
        // apparent 7 s; corrected age value 3 s + 2 s delay = 5 s; initial = 7 s; +resident 4 s.
        assert_eq!(t.current_age_ms(16_000), 11_000);
        let no_date = AgeFacts { request_ms: 0, response_ms: 1_000, date_ms: None, age_s: 0 };
        assert_eq!(no_date.current_age_ms(3_000), 3_000);
    }

    #[test]
    fn usability_honours_request_and_response_directives() {
        let f = StoredFreshness { lifetime_ms: 10_000, swr_s: 5, sie_s: 60, ..StoredFreshness::default() };
        let none = CacheControl::default();
        assert_eq!(f.usable(9_999, &none), Usable::Fresh);
        assert_eq!(f.usable(12_000, &none), Usable::StaleWhileRevalidate);
        assert_eq!(f.usable(15_000, &none), Usable::Revalidate);
        assert_eq!(f.usable(1, &CacheControl::parse(["no-cache"])), Usable::Revalidate);
        assert_eq!(f.usable(5_000, &CacheControl::parse(["max-age=2"])), Usable::Revalidate);
        assert!(f.usable_on_error(69_000));
        assert!(!f.usable_on_error(70_000));
        let strict = StoredFreshness { must_revalidate: true, ..f };
        assert_eq!(strict.usable(12_000, &none), Usable::Revalidate);
        assert!(!strict.usable_on_error(10_001));
        let always = StoredFreshness { no_cache: true, ..f };
        assert_eq!(always.usable(0, &none), Usable::Revalidate);
    }
}
