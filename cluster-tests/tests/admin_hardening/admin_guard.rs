//! The token-less loopback admin listener against a hostile web page: no cross-site
//! requests, no foreign `Host` (DNS rebinding), JSON bodies only; with a token, JSON
//! bodies only.

use cluster_tests::GatewayProcess;

use crate::{admin_json, admin_raw};

const TOKEN: &str = "hardening-admin-token";

fn tokenless() -> GatewayProcess {
    GatewayProcess::start("[node]\nworkers = 1\n[log]\naccess_log = false\n")
}

#[actix_rt::test]
async fn a_cross_site_text_plain_post_creates_nothing() {
    let gw = tokenless();
    let origin = format!("http://127.0.0.1:{}", gw.admin_port);
    // What a form or `fetch(..., {mode: "no-cors"})` on another site sends.
    let evil = [("content-type", "text/plain"), ("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")];
    let (status, body) = admin_raw(&gw, "POST", "/admin/consumers", &evil, r#"{"id":"mallory"}"#).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden", "{body}");
    assert!(body["request_id"].is_string(), "{body}");
    // Only Origin, only Sec-Fetch-Site: each is enough.
    let (status, _) =
        admin_raw(&gw, "POST", "/admin/consumers", &[("content-type", "application/json"), evil[1]], r#"{"id":"m2"}"#)
            .await;
    assert_eq!(status, 403);
    let (status, _) = admin_raw(&gw, "GET", "/admin/consumers", &[("sec-fetch-site", "same-site")], "").await;
    assert_eq!(status, 403);
    let (status, _) = admin_raw(&gw, "GET", "/admin/consumers", &[("origin", "null")], "").await;
    assert_eq!(status, 403);
    // A non-JSON body without browser headers: 415.
    let (status, body) =
        admin_raw(&gw, "POST", "/admin/consumers", &[("content-type", "text/plain")], r#"{"id":"m3"}"#).await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["error"], "unsupported_media_type", "{body}");
    let (status, _) = admin_raw(&gw, "POST", "/admin/consumers", &[], r#"{"id":"m4"}"#).await;
    assert_eq!(status, 415);
    // Nothing was created.
    let (status, list) = admin_raw(&gw, "GET", "/admin/consumers", &[], "").await;
    assert_eq!((status, list.as_array().map(Vec::len)), (200, Some(0)), "{list}");

    // Same-origin browser requests and plain tools work.
    let same = [("content-type", "application/json"), ("sec-fetch-site", "same-origin")];
    let (status, body) = admin_raw(&gw, "POST", "/admin/consumers", &same, r#"{"id":"alice"}"#).await;
    assert_eq!(status, 201, "{body}");
    let with_origin = [("content-type", "application/json; charset=utf-8"), ("origin", origin.as_str())];
    let (status, body) = admin_raw(&gw, "POST", "/admin/consumers", &with_origin, r#"{"id":"bob"}"#).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin_json(&gw, "PATCH", "/admin/consumers/bob", r#"{"tier":"gold"}"#).await;
    assert_eq!(status, 200, "{body}");
    let merge = [("content-type", "application/merge-patch+json")];
    let (status, body) = admin_raw(&gw, "PATCH", "/admin/consumers/bob", &merge, r#"{"tier":"silver"}"#).await;
    assert_eq!(status, 200, "{body}");
    // A body-less POST (new API key) needs no type, but still no cross-site origin.
    let (status, body) = admin_raw(&gw, "POST", "/admin/consumers/alice/keys", &evil[1..], "").await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = admin_raw(&gw, "POST", "/admin/consumers/alice/keys", &[], "").await;
    assert_eq!(status, 201, "{body}");
    assert!(body["key"].is_string(), "{body}");
}

#[actix_rt::test]
async fn a_foreign_host_is_refused_without_a_token() {
    let gw = tokenless();
    let port = gw.admin_port;
    for host in ["evil.example", &format!("evil.example:{port}"), "127.0.0.2", "localhost.evil.example"] {
        let (status, body) = admin_raw(&gw, "GET", "/admin/consumers", &[("host", host)], "").await;
        assert_eq!(status, 421, "{host}: {body}");
        assert_eq!(body["error"], "misdirected_request", "{host}: {body}");
        let (status, _) = admin_raw(&gw, "GET", "/metrics", &[("host", host)], "").await;
        assert_eq!(status, 421, "{host}");
    }
    let (status, _) = admin_raw(
        &gw,
        "POST",
        "/admin/consumers",
        &[("host", "rebound.example"), ("content-type", "application/json")],
        r#"{"id":"x"}"#,
    )
    .await;
    assert_eq!(status, 421);
    for host in [format!("127.0.0.1:{port}"), "localhost".into(), format!("LOCALHOST:{}", port + 1), "127.0.0.1".into()]
    {
        let (status, body) = admin_raw(&gw, "GET", "/admin/consumers", &[("host", &host)], "").await;
        assert_eq!(status, 200, "{host}: {body}");
    }
    // Probes answer whatever Host they send.
    let (status, _) = admin_raw(&gw, "GET", "/ready", &[("host", "lb.internal")], "").await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn the_dashboard_page_and_its_same_origin_fetches_still_work() {
    let gw = tokenless();
    // A link followed from another site is a cross-site navigation: the page (no data) loads.
    let nav = [("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "navigate")];
    let (status, _) = admin_raw(&gw, "GET", "/admin/dashboard", &nav, "").await;
    assert_eq!(status, 200);
    // Its fetches: same-origin GETs.
    let fetch = [("sec-fetch-site", "same-origin"), ("sec-fetch-mode", "cors"), ("authorization", "Bearer x")];
    let (status, body) = admin_raw(&gw, "GET", "/admin/analytics", &fetch, "").await;
    assert_eq!(status, 200, "{body}");
}

#[actix_rt::test]
async fn with_a_token_bodies_must_still_be_json() {
    let gw = GatewayProcess::start(&format!("[node]\nworkers = 1\n[admin]\ntoken = \"{TOKEN}\"\n"));
    let bearer = format!("Bearer {TOKEN}");
    let (status, body) = admin_raw(
        &gw,
        "POST",
        "/admin/consumers",
        &[("authorization", &bearer), ("content-type", "text/plain")],
        r#"{"id":"a"}"#,
    )
    .await;
    assert_eq!(status, 415, "{body}");
    // Without the token: 401 first, whatever the body.
    let (status, _) =
        admin_raw(&gw, "POST", "/admin/consumers", &[("content-type", "text/plain")], r#"{"id":"a"}"#).await;
    assert_eq!(status, 401);
    // The token is the defence: a foreign Origin or Host with the token passes (a reverse
    // proxy may rewrite both).
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
        ("origin", "https://admin.example"),
        ("host", "admin.example"),
    ];
    let (status, body) = admin_raw(&gw, "POST", "/admin/consumers", &headers, r#"{"id":"a"}"#).await;
    assert_eq!(status, 201, "{body}");
}
