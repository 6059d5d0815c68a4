//! The CORS policy (SPEC §17, Fetch standard): for a service with `[services.cors]`,
//!
//! - a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered
//!   `204` here, never proxied; an origin, method or header the service does not allow
//!   gets `403 cors_forbidden`;
//! - every other answer (upstream, cache, gateway error) to an allowed origin gets
//!   `Access-Control-Allow-Origin` (`*` only for a `*` entry without credentials; else
//!   the origin echoed), `-Allow-Credentials` and `-Expose-Headers`. An origin not
//!   allowed gets no CORS headers (the browser enforces). The gateway owns these headers
//!   for the service: the upstream's are replaced.
//! - every answer carries `Vary: Origin`, appended to the upstream's `Vary`. The CORS
//!   headers are added on the way out, after the cache: stored entries hold none, so one
//!   entry serves every origin and each answer — hit, miss or `304` — carries the
//!   headers of its own request and `Vary: Origin` for caches downstream.

use actix_web::HttpResponse;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actors::spec::{CorsSpec, MethodList};

use super::phase::{Flow, Policy};
use super::{Ctx, Pipeline};
use crate::error::GatewayError;

/// `Vary` of a preflight answer: it depends on all three request headers.
const PREFLIGHT_VARY: HeaderValue =
    HeaderValue::from_static("Origin, Access-Control-Request-Method, Access-Control-Request-Headers");

/// The CORS policy.
pub struct Cors;

impl Policy for Cors {
    async fn request(_node: &Pipeline, cx: &mut Ctx<'_>) -> Result<Flow, GatewayError> {
        let (Some(spec), headers) = (&cx.route.spec.cors, cx.req.headers()) else { return Ok(Flow::Continue) };
        if !is_preflight(cx.req.method(), headers) {
            return Ok(Flow::Continue);
        }
        let (Some(origin), Some(asked)) =
            (headers.get(header::ORIGIN), headers.get(header::ACCESS_CONTROL_REQUEST_METHOD))
        else {
            return Ok(Flow::Continue);
        };
        preflight(spec, cx.route.spec.methods.as_ref(), origin, asked, headers).map(Flow::Respond)
    }

    fn response(_node: &Pipeline, cx: &Ctx<'_>, res: &mut HttpResponse) {
        if let Some(spec) = &cx.route.spec.cors {
            decorate(spec, cx.req.headers().get(header::ORIGIN), res.headers_mut());
        }
    }
}

/// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method` (answered here when the service has CORS).
pub(crate) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The `204` answer to a preflight, or why it is refused.
fn preflight(
    spec: &CorsSpec,
    service_methods: Option<&MethodList>,
    origin: &HeaderValue,
    asked: &HeaderValue,
    headers: &HeaderMap,
) -> Result<HttpResponse, GatewayError> {
    let forbidden = |m: String| Err(GatewayError::CorsForbidden(m));
    let origin_text = origin.to_str().unwrap_or_default();
    if !spec.allows_origin(origin_text) {
        return forbidden(format!("origin {origin_text:?} may not call this service"));
    }
    let method = asked.to_str().unwrap_or_default();
    let methods = spec.methods(service_methods);
    if methods.is_some_and(|l| !l.allows(method)) {
        return forbidden(format!("method {method:?} is not allowed for cross-origin requests"));
    }
    let requested: Vec<&HeaderValue> = headers.get_all(header::ACCESS_CONTROL_REQUEST_HEADERS).collect();
    for name in requested.iter().flat_map(|v| v.to_str().unwrap_or("\u{0}").split(',')) {
        let name = name.trim();
        if !name.is_empty() && !spec.allows_header(name) {
            return forbidden(format!("request header {name:?} is not allowed for cross-origin requests"));
        }
    }
    let mut res = HttpResponse::NoContent();
    res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin(spec, origin)));
    if spec.credentials {
        res.insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true")));
    }
    match methods {
        Some(list) => res.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, list.allow_header())),
        None => res.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, asked.clone())),
    };
    if spec.echoes_headers() {
        if let Some(joined) = join(&requested) {
            res.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, joined));
        }
    } else if let Some(list) = spec.headers.as_ref().filter(|l| !l.is_empty()) {
        let names: Vec<&str> = list.iter().map(|h| h.as_str()).collect();
        res.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, names.join(", ")));
    }
    if let Some(age) = spec.max_age {
        res.insert_header((header::ACCESS_CONTROL_MAX_AGE, age.get().as_secs()));
    }
    res.insert_header((header::VARY, PREFLIGHT_VARY));
    Ok(res.finish())
}

/// Several header lines as one comma-separated value (`None` when there are none).
fn join(values: &[&HeaderValue]) -> Option<HeaderValue> {
    match values {
        [] => None,
        [one] => Some((*one).clone()),
        many => {
            let bytes = many.iter().map(|v| v.as_bytes()).collect::<Vec<_>>().join(&b", "[..]);
            HeaderValue::from_bytes(&bytes).ok()
        }
    }
}

/// `Access-Control-Allow-Origin` for an allowed origin.
fn allow_origin(spec: &CorsSpec, origin: &HeaderValue) -> HeaderValue {
    if spec.any_origin() { HeaderValue::from_static("*") } else { origin.clone() }
}

/// The response phase: the upstream's CORS headers out, ours in for an allowed origin,
/// `Origin` added to `Vary`. Also for the `100-continue` gate's refusals.
pub(crate) fn decorate(spec: &CorsSpec, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
    headers.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
    headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
    headers.remove(header::ACCESS_CONTROL_EXPOSE_HEADERS);
    if let Some(origin) = origin.filter(|o| o.to_str().is_ok_and(|o| spec.allows_origin(o))) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin(spec, origin));
        if spec.credentials {
            headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        if !spec.expose_headers.is_empty() {
            let names: Vec<&str> = spec.expose_headers.iter().map(|h| h.as_str()).collect();
            if let Ok(v) = HeaderValue::from_str(&names.join(", ")) {
                headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
            }
        }
    }
    vary_on_origin(headers);
}

/// Adds `Origin` to `Vary` unless it (or `*`) is listed already; the upstream's names
/// are kept, in one value.
fn vary_on_origin(headers: &mut HeaderMap) {
    let mut names: Vec<String> = Vec::new();
    let mut opaque = false;
    for v in headers.get_all(header::VARY) {
        match v.to_str() {
            Ok(text) => names.extend(text.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string)),
            Err(_) => opaque = true,
        }
    }
    if names.iter().any(|n| n == "*" || n.eq_ignore_ascii_case("origin")) {
        return;
    }
    let origin = HeaderValue::from_static("Origin");
    if opaque {
        // A value that is not text is left alone, ours beside it.
        headers.append(header::VARY, origin);
        return;
    }
    if names.is_empty() {
        headers.insert(header::VARY, origin);
        return;
    }
    names.push("Origin".into());
    if let Ok(v) = HeaderValue::from_str(&names.join(", ")) {
        headers.insert(header::VARY, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> CorsSpec {
        serde_json::from_value(json).expect("cors spec")
    }

    fn vary(headers: &HeaderMap) -> Vec<&str> {
        headers.get_all(header::VARY).filter_map(|v| v.to_str().ok()).collect()
    }

    #[test]
    fn vary_gets_origin_once_and_keeps_the_upstreams_names() {
        let mut h = HeaderMap::new();
        vary_on_origin(&mut h);
        assert_eq!(vary(&h), ["Origin"]);
        vary_on_origin(&mut h);
        assert_eq!(vary(&h), ["Origin"], "not twice");
        let mut h = HeaderMap::new();
        h.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        h.append(header::VARY, HeaderValue::from_static("accept-language, "));
        vary_on_origin(&mut h);
        assert_eq!(vary(&h), ["Accept-Encoding, accept-language, Origin"]);
        let mut h = HeaderMap::new();
        h.insert(header::VARY, HeaderValue::from_static("*"));
        vary_on_origin(&mut h);
        assert_eq!(vary(&h), ["*"]);
    }

    #[test]
    fn allowed_origins_get_headers_and_others_lose_the_upstreams() {
        let s = spec(serde_json::json!({"origins": ["https://app.test"], "credentials": true,
            "expose_headers": ["X-Request-Id", "X-Total"]}));
        let mut h = HeaderMap::new();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        decorate(&s, Some(&HeaderValue::from_static("https://app.test")), &mut h);
        assert_eq!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).map(|v| v.as_bytes()), Some(&b"https://app.test"[..]));
        assert_eq!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).map(|v| v.as_bytes()), Some(&b"true"[..]));
        assert_eq!(
            h.get(header::ACCESS_CONTROL_EXPOSE_HEADERS).map(|v| v.as_bytes()),
            Some(&b"X-Request-Id, X-Total"[..])
        );
        let mut h = HeaderMap::new();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        decorate(&s, Some(&HeaderValue::from_static("https://evil.test")), &mut h);
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert_eq!(vary(&h), ["Origin"]);
    }

    #[test]
    fn wildcard_with_credentials_echoes_and_without_sends_a_star() {
        let origin = HeaderValue::from_static("https://x.test");
        let with = spec(serde_json::json!({"origins": ["*"], "credentials": true}));
        assert_eq!(allow_origin(&with, &origin), origin);
        let without = spec(serde_json::json!({"origins": ["*"]}));
        assert_eq!(allow_origin(&without, &origin), "*");
    }

    #[test]
    fn preflights_check_method_and_headers() {
        let s = spec(serde_json::json!({"origins": ["*.app.test"], "headers": ["Content-Type"], "max_age": "10m"}));
        let methods: MethodList = serde_json::from_value(serde_json::json!(["GET", "PUT"])).expect("methods");
        let origin = HeaderValue::from_static("https://a.app.test");
        let put = HeaderValue::from_static("PUT");
        let mut h = HeaderMap::new();
        h.insert(header::ACCESS_CONTROL_REQUEST_HEADERS, HeaderValue::from_static("content-type"));
        let res = preflight(&s, Some(&methods), &origin, &put, &h).expect("allowed");
        assert_eq!(res.status(), 204);
        let get = |n| res.headers().get(n).and_then(|v| v.to_str().ok());
        assert_eq!(get(header::ACCESS_CONTROL_ALLOW_METHODS), Some("GET, HEAD, PUT"));
        assert_eq!(get(header::ACCESS_CONTROL_ALLOW_HEADERS), Some("Content-Type"));
        assert_eq!(get(header::ACCESS_CONTROL_MAX_AGE), Some("600"));
        assert_eq!(get(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("https://a.app.test"));
        let delete = HeaderValue::from_static("DELETE");
        assert!(matches!(preflight(&s, Some(&methods), &origin, &delete, &h), Err(GatewayError::CorsForbidden(_))));
        h.insert(header::ACCESS_CONTROL_REQUEST_HEADERS, HeaderValue::from_static("content-type, x-secret"));
        assert!(matches!(preflight(&s, Some(&methods), &origin, &put, &h), Err(GatewayError::CorsForbidden(_))));
        let other = HeaderValue::from_static("https://app.test");
        assert!(matches!(preflight(&s, None, &other, &put, &HeaderMap::new()), Err(GatewayError::CorsForbidden(_))));
    }
}
