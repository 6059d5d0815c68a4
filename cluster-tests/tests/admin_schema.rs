//! Black-box tests of the admin API against its own OpenAPI document (SPEC §11): the
//! document says what the answers are (optional service sections are `null` when unset),
//! is as strict as validation for names, ids, prefixes and endpoints, and methods a route
//! does not have answer 405 with `Allow`. `scripts/schemathesis.sh` checks the same
//! document against generated requests; these tests pin the cases it found.

use cluster_tests::{GatewayProcess, client};
use serde_json::{Value, json};

fn node() -> GatewayProcess {
    GatewayProcess::start(
        "[node]\nid = \"schema\"\nworkers = 1\n[rate_limit.policies.default]\nlimit = 10\nwindow = \"1m\"\n\
         [rate_limit.policies.burst]\nlimit = 5\nwindow = \"1s\"\n",
    )
}

/// Sends `method path` with an optional JSON body; status, headers and the JSON body.
async fn call(
    gw: &GatewayProcess,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, awc::http::header::HeaderMap, Value) {
    let req = client().request(method.parse().unwrap(), gw.admin_url(path));
    let mut res = match body {
        Some(b) => req.send_json(&b).await.unwrap(),
        None => req.send().await.unwrap(),
    };
    let bytes = res.body().await.unwrap();
    (res.status().as_u16(), res.headers().clone(), serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn document(gw: &GatewayProcess) -> Value {
    let (s, _, doc) = call(gw, "GET", "/admin/openapi.json", None).await;
    assert_eq!(s, 200);
    doc
}

fn allows_null(schema: &Value) -> bool {
    match &schema["type"] {
        Value::Array(types) => types.iter().any(|t| t == "null"),
        t => t == "null",
    }
}

#[actix_rt::test]
async fn unset_service_sections_are_null_in_answers_and_nullable_in_the_schema() {
    let gw = node();
    let doc = document(&gw).await;
    let (s, _, svc) =
        call(&gw, "POST", "/admin/services", Some(json!({"name": "users", "endpoints": ["http://127.0.0.1:9"]}))).await;
    assert_eq!(s, 201, "{svc}");
    let props = &doc["components"]["schemas"]["Service"]["properties"];
    for section in ["cache", "health_check", "circuit_breaker", "queue"] {
        assert!(svc[section].is_null(), "{section} of an answer: {svc}");
        assert!(
            allows_null(&props[section]),
            "the schema refuses the null {section} the API answers: {}",
            props[section]
        );
    }
    // Every field of the answer is described.
    for key in svc.as_object().unwrap().keys() {
        assert!(props[key].is_object(), "answer field {key} not in the schema");
    }
    // A PATCH with null drops a section again (RFC 7396), as the schema says.
    let (s, _, svc) = call(&gw, "PATCH", "/admin/services/users", Some(json!({"cache": {"ttl": "30s"}}))).await;
    assert_eq!((s, svc["cache"]["ttl"].as_str()), (200, Some("30s")), "{svc}");
    let (s, _, svc) = call(&gw, "PATCH", "/admin/services/users", Some(json!({"cache": null}))).await;
    assert_eq!(s, 200);
    assert!(svc["cache"].is_null(), "{svc}");
}

#[actix_rt::test]
async fn the_schema_is_as_strict_as_validation_for_ids_endpoints_and_prefix() {
    let gw = node();
    let doc = document(&gw).await;
    let schemas = &doc["components"]["schemas"];
    let service = &schemas["Service"]["properties"];
    // What the API refuses, the schema refuses too: empty names and ids, relative prefixes,
    // endpoints that are not http(s) URLs, an empty queue match list.
    assert_eq!(service["name"]["pattern"], "^[A-Za-z0-9._-]{1,64}$");
    assert_eq!(service["prefix"]["pattern"], "^/");
    let endpoint = &service["endpoints"]["items"]["oneOf"][0];
    assert!(endpoint["pattern"].as_str().is_some_and(|p| p.contains("[Hh][Tt][Tt][Pp][Ss]?://")), "{endpoint}");
    assert_eq!(service["queue"]["properties"]["match"]["minItems"], 1);
    assert_eq!(schemas["Consumer"]["properties"]["id"]["pattern"], "^[A-Za-z0-9._:@-]{1,128}$");
    let instance = &doc["paths"]["/admin/services/{name}/instances"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    assert_eq!(instance["properties"]["id"]["pattern"], "^[A-Za-z0-9._:-]{1,128}$");
    for (path, body) in [
        ("/admin/services", json!({"name": ""})),
        ("/admin/services", json!({"name": "a", "prefix": ""})),
        ("/admin/services", json!({"name": "a", "endpoints": [""]})),
        ("/admin/services", json!({"name": "a", "endpoints": ["ftp://x"]})),
        ("/admin/services", json!({"name": "a", "queue": {"match": []}})),
        ("/admin/consumers", json!({"id": ""})),
    ] {
        let (s, _, err) = call(&gw, "POST", path, Some(body.clone())).await;
        assert_eq!((s, err["error"].as_str()), (400, Some("validation_failed")), "{body} -> {err}");
    }
    // The node's own policies and auth modes.
    assert_eq!(service["rate_limit"]["oneOf"][1]["items"]["enum"], json!(["burst", "default"]));
    assert_eq!(service["auth"]["enum"], json!(["none", "api_key"]), "no [auth.jwt] on this node");
}

#[actix_rt::test]
async fn methods_a_route_does_not_have_answer_405_with_allow() {
    let gw = node();
    for (method, path, allow) in [
        ("TRACE", "/admin/circuits", "GET"),
        ("TRACE", "/admin/revocations", "POST"),
        ("DELETE", "/admin/services", "GET, POST"),
        ("POST", "/admin/services/users", "GET, PUT, PATCH, DELETE"),
        ("GET", "/admin/services/users/instances/i-1", "DELETE"),
        ("TRACE", "/health", "GET"),
        ("PUT", "/metrics", "GET"),
    ] {
        let (s, headers, err) = call(&gw, method, path, None).await;
        assert_eq!(s, 405, "{method} {path}: {err}");
        let got = headers.get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let mut got: Vec<&str> = got.split(',').map(str::trim).collect();
        let mut want: Vec<&str> = allow.split(", ").collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "Allow of {method} {path}");
        assert_eq!(err["error"], "method_not_allowed", "{method} {path}: {err}");
        assert!(err["request_id"].as_str().is_some_and(|r| !r.is_empty()), "{err}");
    }
    let (s, _, err) = call(&gw, "TRACE", "/admin/nothing-here", None).await;
    assert_eq!((s, err["error"].as_str()), (404, Some("not_found")));
}

#[actix_rt::test]
async fn a_query_string_that_does_not_parse_is_a_json_validation_error() {
    let gw = node();
    let (s, headers, err) = call(&gw, "DELETE", "/admin/cache?prefix=/a&prefix=/b", None).await;
    assert_eq!(s, 400);
    assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
    assert_eq!(err["error"], "validation_failed", "{err}");
}

#[actix_rt::test]
async fn fields_a_revocation_does_not_use_are_refused_not_ignored() {
    let gw = node();
    // Found by schemathesis: an `exp` that is not even a time passed with a subject revocation.
    let body = json!({"sub": "u-1", "exp": "2024-01-01T12:99:00Z"});
    let (s, _, err) = call(&gw, "POST", "/admin/revocations", Some(body)).await;
    assert_eq!(
        (s, err["error"].as_str(), err["field"].as_str()),
        (400, Some("validation_failed"), Some("exp")),
        "{err}"
    );
    let (s, _, err) = call(&gw, "POST", "/admin/revocations", Some(json!({"sub": "u-1"}))).await;
    assert_eq!(s, 201, "a subject revocation alone is fine: {err}");
}
