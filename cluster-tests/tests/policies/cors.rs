//! `[services.cors]`: preflights answered at the gateway, CORS headers on every answer of
//! an allowed origin, `Vary: Origin` on every answer (cached ones and `304`s included).

use cluster_tests::upstream::Behavior;
use cluster_tests::{GatewayProcess, MockUpstream, client};

use crate::{Answer, node, send, service};

const APP: &str = "https://app.example.com";

async fn preflight(gw: &GatewayProcess, path: &str, origin: &str, method: &str, headers: Option<&str>) -> Answer {
    let mut req = client()
        .request(awc::http::Method::OPTIONS, gw.url(path))
        .insert_header(("Origin", origin))
        .insert_header(("Access-Control-Request-Method", method));
    if let Some(h) = headers {
        req = req.insert_header(("Access-Control-Request-Headers", h));
    }
    send(req, None).await
}

async fn get(gw: &GatewayProcess, path: &str, origin: Option<&str>) -> Answer {
    let mut req = client().get(gw.url(path));
    if let Some(o) = origin {
        req = req.insert_header(("Origin", o));
    }
    send(req, None).await
}

#[track_caller]
fn varies_on_origin(res: &Answer) {
    let vary = res.header_list("vary");
    assert!(vary.split(',').any(|v| v.trim().eq_ignore_ascii_case("origin")), "Vary {vary:?} (status {})", res.status);
}

#[actix_rt::test]
async fn preflights_are_answered_at_the_gateway_before_authentication() {
    let up = MockUpstream::start("up");
    let cors = "methods = [\"GET\", \"POST\", \"PUT\"]\nauth = \"api_key\"\n[services.cors]\n\
                origins = [\"https://app.example.com\", \"*.example.org\"]\nheaders = [\"Content-Type\", \"Authorization\"]\n\
                expose_headers = [\"X-Request-Id\", \"X-Total\"]\ncredentials = true\nmax_age = \"10m\"\n";
    let services = service("app", &up, cors)
        + &service("star", &up, "[services.cors]\norigins = [\"*\"]\ncredentials = true\n")
        + &service("open", &up, "[services.cors]\norigins = [\"*\"]\n");
    let gw = node("cors", None, "", &services);

    for origin in [APP, "https://a.b.example.org"] {
        let res = preflight(&gw, "/api/app/items", origin, "PUT", Some("content-type, authorization")).await;
        assert_eq!(res.status, 204, "{origin}: {}", String::from_utf8_lossy(&res.body));
        assert_eq!(res.header("access-control-allow-origin"), origin);
        assert_eq!(res.header("access-control-allow-credentials"), "true");
        assert_eq!(res.header("access-control-allow-methods"), "GET, HEAD, POST, PUT", "the service's methods");
        assert_eq!(res.header("access-control-allow-headers"), "Content-Type, Authorization");
        assert_eq!(res.header("access-control-max-age"), "600");
        assert!(!res.header("x-request-id").is_empty());
        varies_on_origin(&res);
    }
    // Refused: another origin, a method or a header the service does not allow.
    preflight(&gw, "/api/app/items", "https://evil.example.com", "GET", None).await.assert_error(403, "cors_forbidden");
    preflight(&gw, "/api/app/items", "https://example.org", "GET", None).await.assert_error(403, "cors_forbidden");
    preflight(&gw, "/api/app/items", APP, "DELETE", None).await.assert_error(403, "cors_forbidden");
    preflight(&gw, "/api/app/items", APP, "POST", Some("x-secret")).await.assert_error(403, "cors_forbidden");
    assert_eq!(up.count(), 0, "preflights never reach the upstream");

    // An actual request still authenticates; its 401 is readable by the allowed origin.
    let res = get(&gw, "/api/app/items", Some(APP)).await;
    res.assert_error(401, "missing_credentials");
    assert_eq!(res.header("access-control-allow-origin"), APP);
    assert_eq!(res.header("access-control-expose-headers"), "X-Request-Id, X-Total");
    varies_on_origin(&res);
    let res = get(&gw, "/api/app/items", Some("https://evil.example.com")).await;
    assert_eq!((res.status, res.header("access-control-allow-origin")), (401, ""), "no CORS headers for others");
    varies_on_origin(&res);
    // OPTIONS without Access-Control-Request-Method is no preflight: `methods` applies.
    let res = send(
        client().request(awc::http::Method::OPTIONS, gw.url("/api/app/items")).insert_header(("Origin", APP)),
        None,
    )
    .await;
    res.assert_error(405, "method_not_allowed");

    // `*` with credentials echoes the origin (Fetch forbids `*` there); without, `*`.
    let res = get(&gw, "/api/star/x", Some("https://x.test")).await;
    assert_eq!((res.status, res.header("access-control-allow-origin")), (200, "https://x.test"));
    assert_eq!(res.header("access-control-allow-credentials"), "true");
    let res = get(&gw, "/api/open/x", Some("https://x.test")).await;
    assert_eq!((res.status, res.header("access-control-allow-origin")), (200, "*"));
    assert_eq!(res.header("access-control-allow-credentials"), "");
    let res = preflight(&gw, "/api/open/x", "https://x.test", "PATCH", Some("X-Anything")).await;
    assert_eq!(res.status, 204);
    assert_eq!(res.header("access-control-allow-methods"), "PATCH", "no methods anywhere: the asked one");
    assert_eq!(res.header("access-control-allow-headers"), "X-Anything", "no headers list: echoed");
    assert_eq!(up.count(), 2);
}

#[actix_rt::test]
async fn cached_answers_carry_vary_origin_and_the_cors_headers_of_their_own_request() {
    let up = MockUpstream::start("up");
    up.set_behavior(Behavior {
        headers: [
            ("cache-control", "max-age=60"),
            ("vary", "Accept-Encoding"),
            ("etag", "\"v1\""),
            ("access-control-allow-origin", "*"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..Behavior::default()
    });
    let gw = node(
        "cc",
        None,
        "",
        &service("pub", &up, "[services.cache]\n[services.cors]\norigins = [\"https://app.example.com\"]\n"),
    );

    let first = get(&gw, "/api/pub/doc", Some(APP)).await;
    assert_eq!((first.status, first.header("x-cache-status")), (200, "MISS"));
    assert_eq!(first.header("access-control-allow-origin"), APP, "the upstream's `*` is replaced");
    assert_eq!(first.header_list("vary"), "Accept-Encoding, Origin", "appended, the upstream's kept");
    let other = get(&gw, "/api/pub/doc", Some("https://other.test")).await;
    assert_eq!((other.status, other.header("x-cache-status")), (200, "HIT"));
    assert_eq!(other.header("access-control-allow-origin"), "", "a hit stored for APP carries none for others");
    assert_eq!(other.header_list("vary"), "Accept-Encoding, Origin");
    let none = get(&gw, "/api/pub/doc", None).await;
    assert_eq!(none.header("x-cache-status"), "HIT");
    varies_on_origin(&none);
    let again = get(&gw, "/api/pub/doc", Some(APP)).await;
    assert_eq!((again.header("x-cache-status"), again.header("access-control-allow-origin")), ("HIT", APP));
    let req =
        client().get(gw.url("/api/pub/doc")).insert_header(("Origin", APP)).insert_header(("If-None-Match", "\"v1\""));
    let not_modified = send(req, None).await;
    assert_eq!((not_modified.status, not_modified.header("access-control-allow-origin")), (304, APP));
    varies_on_origin(&not_modified);
    assert_eq!(up.count(), 1, "one stored entry served every origin");
}
