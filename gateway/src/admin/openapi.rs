//! `GET /admin/openapi.json`: an OpenAPI 3.1 description of every admin route, as
//! strict as the validation behind it where JSON Schema can say it (names, ids, prefixes,
//! URLs, ranges), checked by `scripts/schemathesis.sh`. Optional sections of a service
//! (`cache`, `health_check`, `circuit_breaker`, `queue`) are `null` when unset: a service
//! answer always has every field — except the per-service policies of SPEC §17
//! (`methods`, `max_body`, `ip`, `cors`), left out when unset so that nodes of an older
//! version still read the stored service; bodies may send them as `null`. The document is this node's: `rate_limit` lists its
//! policies and `auth` offers `jwt`/`any` only when `[auth.jwt]` is configured.
//! `allowed_methods` (the paths and methods documented here) gives 405 answers their
//! `Allow` header.

use std::sync::LazyLock;

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::AdminState;

/// Mounts the document.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(document));
}

async fn document(state: web::Data<AdminState>) -> HttpResponse {
    HttpResponse::Ok().json(for_node(&state.policies.names(), state.jwt_configured))
}

/// The document with this node's rate-limit policies and auth modes filled in.
fn for_node(policies: &[&str], jwt: bool) -> Value {
    let mut doc = DOC.clone();
    let service = &mut doc["components"]["schemas"]["Service"]["properties"];
    let mut one: Vec<&str> = vec!["none", ""];
    one.extend(policies);
    service["rate_limit"] = json!({"oneOf": [{"enum": one}, {"type": "array", "items": {"enum": policies}}],
        "description": "a policy of [rate_limit.policies], a list of them, or \"none\""});
    if !jwt {
        service["auth"] =
            json!({"enum": ["none", "api_key"], "description": "jwt and any need [auth.jwt] on the node"});
    }
    doc
}

/// The methods documented for the route `path` matches, as an `Allow` value (`None`
/// when no documented route matches).
pub fn allowed_methods(path: &str) -> Option<String> {
    static ROUTES: LazyLock<Vec<(actix_web::dev::ResourceDef, String)>> = LazyLock::new(|| {
        let Some(paths) = DOC["paths"].as_object() else { return Vec::new() };
        paths
            .iter()
            .map(|(p, ops)| {
                let methods = ["get", "put", "post", "patch", "delete"]
                    .iter()
                    .filter(|m| ops.get(**m).is_some())
                    .map(|m| m.to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join(", ");
                (actix_web::dev::ResourceDef::new(p.as_str()), methods)
            })
            .collect()
    });
    ROUTES.iter().find(|(def, _)| def.is_match(path)).map(|(_, m)| m.clone())
}

/// What a duration looks like (`"500ms"`, `"30s"`, `"5m"`, `"1h 30m"`).
const DURATION: &str = "^ *([0-9]+ *(nsec|ns|usec|us|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|w|months|month|M|years|year|y) *)+$";

/// A duration string as the config writes it.
fn duration(default: &str) -> Value {
    json!({"type": "string", "pattern": DURATION, "default": default, "examples": [default]})
}

/// A nullable duration.
fn duration_or_null(example: &str) -> Value {
    json!({"type": ["string", "null"], "pattern": DURATION, "examples": [example]})
}

/// A merge-patch body for `schema` (RFC 7396): objects with the same properties, none
/// required, at every level; any property may be `null` (removes it).
fn patch_of(schema: &Value) -> Value {
    let Some(properties) = schema["properties"].as_object() else { return schema.clone() };
    let mut props = serde_json::Map::new();
    for (k, v) in properties {
        props.insert(k.clone(), json!({"anyOf": [patch_of(v), {"type": "null"}]}));
    }
    json!({"type": "object", "additionalProperties": schema["additionalProperties"].clone(), "properties": props})
}

/// `schema` without required properties (a `PUT` body whose key comes from the path).
fn keyless(mut schema: Value) -> Value {
    schema["required"] = json!([]);
    schema
}

/// A `u32` at least `min`.
fn count(min: u64, default: u64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": u32::MAX, "default": default})
}

fn status_list() -> Value {
    json!({"type": "array", "items": {"type": "integer", "minimum": 100, "maximum": 599}})
}

fn status_list_or_null() -> Value {
    json!({"type": ["array", "null"], "items": {"type": "integer", "minimum": 100, "maximum": 599}})
}

/// What a size looks like (`"10MiB"`, `"512KiB"`, `"1MB"`, `"4096"`).
const SIZE: &str = "^\\s*[0-9]+\\s*([KkMmGg]([Ii]|[Ii][Bb]|[Bb])?|[Bb])?\\s*$";

/// A method name as `methods` takes it.
fn method_list() -> Value {
    json!({"type": ["array", "null"], "minItems": 1, "uniqueItems": true,
           "items": {"type": "string", "pattern": "^[A-Za-z]{1,20}$", "examples": ["GET", "POST"]}})
}

/// Header names as `[services.cors]` takes them (or `*`).
fn header_names(nullable: bool) -> Value {
    let item =
        json!({"type": "string", "pattern": "^([A-Za-z0-9!#$%&'+.^_`|~-]{1,128}|[*])$", "examples": ["Content-Type"]});
    json!({"type": if nullable { json!(["array", "null"]) } else { json!("array") }, "items": item})
}

/// The per-service policies of SPEC §17 (left out of answers when unset).
fn policy_properties() -> Value {
    let cidrs = json!({"type": "array", "items": {"type": "string", "pattern": "^\\s*[0-9A-Fa-f:.]+(/[0-9]{1,3})?\\s*$",
                                                 "examples": ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]}});
    json!({
        "methods": with(method_list(), json!({"description": "accepted methods; GET implies HEAD; others get 405 method_not_allowed with Allow. Absent: every method"})),
        "max_body": {"type": ["string", "integer", "null"], "pattern": SIZE, "minimum": 1, "maximum": actors::units::bounds::MAX_BODY,
                     "examples": ["10MiB"], "description": "largest request body (413 above), instead of node.max_body; at most 1GiB"},
        "ip": {"type": ["object", "null"], "additionalProperties": false, "description": "client address rules (after trusted_proxies); 403 ip_forbidden. Give allow, deny or both", "properties": {
            "allow": with(cidrs.clone(), json!({"description": "when not empty, every other address is refused"})),
            "deny": with(cidrs, json!({"description": "wins over allow"}))}},
        "cors": {"type": ["object", "null"], "additionalProperties": false, "required": ["origins"], "description": "preflights answered 204 at the gateway (403 cors_forbidden when not allowed); Vary: Origin on every answer", "properties": {
            "origins": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^\\s*([*]|[A-Za-z][A-Za-z0-9+.-]*://[^/?#@]+|[*][.][^/?#@]+)\\s*$",
                                                                 "examples": ["https://app.example.com", "*.example.com", "*"]}},
            "methods": with(method_list(), json!({"description": "methods a preflight may ask for; null: the service's methods (or any)"})),
            "headers": with(header_names(true), json!({"description": "request headers a preflight may ask for; null or \"*\": any"})),
            "expose_headers": header_names(false),
            "credentials": {"type": "boolean", "default": false},
            "max_age": duration_or_null("10m")}}
    })
}

/// The service object: request bodies and answers (answers fill every field).
fn service_schema() -> Value {
    let url = json!({"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]", "format": "uri"});
    let mut schema = json!({"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
        "prefix": {"type": ["string", "null"], "pattern": "^/", "description": "default /api/{name}; whole path segments, no query, no dot segments"},
        "strip_prefix": {"type": "boolean", "default": true},
        "hosts": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 300}},
        "endpoints": {"type": "array", "items": {"oneOf": [url.clone(),
            {"type": "object", "required": ["url"], "additionalProperties": false,
             "properties": {"url": url, "weight": count(0, 1)}}]}},
        "balancer": {"type": "string", "pattern": "^(round_robin|least_conn|weighted|consistent_hash:(ip|consumer|header:.+|cookie:.+))$",
                     "examples": ["round_robin", "least_conn", "weighted", "consistent_hash:header:X-User"]},
        "auth": {"enum": ["none", "jwt", "api_key", "any"]},
        "rate_limit": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "timeout": duration("10s"),
        "retries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
        "cache": {"type": ["object", "null"], "additionalProperties": false, "description": "null: no caching", "properties": {
            "ttl": duration_or_null("30s"),
            "statuses": with(status_list(), json!({"minItems": 1})),
            "scope": {"enum": ["consumer", "shared", null]}}},
        "health_check": {"type": ["object", "null"], "additionalProperties": false, "description": "null: no active checks", "properties": {
            "path": {"type": "string", "pattern": "^/", "default": "/health"},
            "interval": duration("5s"), "timeout": duration("2s"),
            "unhealthy_after": count(1, 3), "healthy_after": count(1, 2)}},
        "circuit_breaker": {"type": ["object", "null"], "additionalProperties": false, "description": "null: no breakers", "properties": {
            "failure_ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.5},
            "min_requests": count(1, 20), "window": duration("10s"), "consecutive_failures": count(0, 5),
            "open_for": duration("30s"), "half_open_probes": count(1, 3),
            "failure_statuses": status_list_or_null()}},
        "queue": {"type": ["object", "null"], "additionalProperties": false, "required": ["match"], "description": "null: nothing queued", "properties": {
            "match": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^ *[A-Za-z]+ +/", "examples": ["POST /reports", "POST /jobs/*"]}},
            "mode": {"enum": ["async", "sync"]}, "wait": duration("5s"),
            "rate": {"type": "string", "pattern": "^ *[0-9]+ */", "examples": ["100/10s"]},
            "concurrency": count(1, 4), "max_depth": {"type": "integer", "minimum": 1, "default": 10000},
            "max_attempts": count(1, 3), "lease": duration("60s"), "result_ttl": duration("1h")}}
    }});
    if let (Some(props), Value::Object(policies)) = (schema["properties"].as_object_mut(), policy_properties()) {
        props.extend(policies);
    }
    schema
}

/// The consumer object; in a `PUT` body the id may be left to the path.
fn consumer_schema(id_required: bool) -> Value {
    let required = if id_required { json!(["id"]) } else { json!([]) };
    json!({"type": "object", "required": required, "additionalProperties": false, "properties": {
        "id": {"type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,128}$"},
        "tier": {"type": ["string", "null"], "minLength": 1, "maxLength": 64},
        "enabled": {"type": "boolean", "default": true},
        "permissions": {"type": "object", "additionalProperties": false, "properties": {
            "services": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}},
            "methods": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z]+$"}}}}}})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn errors(codes: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for c in codes {
        out.insert((*c).to_string(), json!({"$ref": "#/components/responses/Error"}));
    }
    Value::Object(out)
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

static DOC: LazyLock<Value> = LazyLock::new(|| {
    let service = json!({"$ref": "#/components/schemas/Service"});
    let instance = json!({"$ref": "#/components/schemas/Instance"});
    let name = json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}});
    let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,128}$"}});
    let body = |schema: Value| json!({"required": true, "content": {"application/json": {"schema": schema}}});
    let doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "gateway admin API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Admin listener of a gateway node. Every /admin route needs `Authorization: Bearer <admin token>`."},
        "security": [{"bearer": []}],
        "paths": {
            "/admin/services": {
                "get": {"summary": "List services", "responses": with(json!({"200": ok("Every service with effective values", json!({"type": "array", "items": service}))}), errors(&["401"]))},
                "post": {"summary": "Create a service", "requestBody": body(service.clone()),
                         "responses": with(json!({"201": ok("Created", service.clone())}), errors(&["400", "401", "409", "503"]))}
            },
            "/admin/services/{name}": {
                "parameters": [name.clone()],
                "get": {"summary": "Read a service", "responses": with(json!({"200": ok("The service", service.clone())}), errors(&["401", "404"]))},
                "put": {"summary": "Replace (or create) a service", "requestBody": body(keyless(service_schema())),
                        "responses": with(json!({"200": ok("Replaced", service.clone()), "201": ok("Created", service.clone())}), errors(&["400", "401", "409", "503"]))},
                "patch": {"summary": "Merge-patch a service (RFC 7396)", "requestBody": {"required": true, "content": {"application/merge-patch+json": {"schema": patch_of(&service_schema())}, "application/json": {"schema": patch_of(&service_schema())}}},
                          "responses": with(json!({"200": ok("Updated", service.clone())}), errors(&["400", "401", "404", "409", "503"]))},
                "delete": {"summary": "Delete a service", "responses": with(json!({"204": {"description": "Deleted"}}), errors(&["401", "404", "503"]))}
            },
            "/admin/services/{name}/instances": {
                "parameters": [name.clone()],
                "get": {"summary": "List endpoints and instances with health and source", "responses": with(json!({"200": ok("Instances", json!({"type": "array", "items": instance}))}), errors(&["401", "404"]))},
                "post": {"summary": "Register an instance (with ttl: self-registered, must heartbeat)",
                         "requestBody": body(json!({"type": "object", "required": ["url"], "additionalProperties": false,
                                                    "properties": {"id": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9._:-]{1,128}$", "description": "generated when absent"},
                                                        "url": {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]", "format": "uri"},
                                                        "weight": {"type": "integer", "minimum": 0, "maximum": 10000, "default": 1},
                                                        "ttl": {"type": ["string", "null"], "pattern": DURATION, "examples": ["30s"], "description": "at least 1s; makes the instance self-registered"}}})),
                         "responses": with(json!({"201": ok("Registered", instance.clone())}), errors(&["400", "401", "404", "503"]))}
            },
            "/admin/services/{name}/instances/{id}": {
                "parameters": [name.clone(), id.clone()],
                "delete": {"summary": "Deregister an instance", "responses": with(json!({"204": {"description": "Removed"}}), errors(&["401", "404", "503"]))}
            },
            "/admin/services/{name}/instances/{id}/heartbeat": {
                "parameters": [name, id],
                "put": {"summary": "Extend a self-registered instance's lease", "responses": with(json!({"204": {"description": "Extended"}}), errors(&["401", "404", "503"]))}
            },
            "/admin/consumers": {
                "get": {"summary": "List consumers", "responses": with(json!({"200": ok("Consumers", json!({"type": "array", "items": {"$ref": "#/components/schemas/Consumer"}}))}), errors(&["401"]))},
                "post": {"summary": "Create a consumer", "requestBody": body(json!({"$ref": "#/components/schemas/Consumer"})),
                         "responses": with(json!({"201": ok("Created", json!({"$ref": "#/components/schemas/Consumer"}))}), errors(&["400", "401", "409", "503"]))}
            },
            "/admin/consumers/{id}": {
                "parameters": [id.clone()],
                "get": {"summary": "Read a consumer", "responses": with(json!({"200": ok("Consumer", json!({"$ref": "#/components/schemas/Consumer"}))}), errors(&["401", "404"]))},
                "put": {"summary": "Replace (or create) a consumer", "requestBody": body(json!({"$ref": "#/components/schemas/ConsumerBody"})),
                        "responses": with(json!({"200": ok("Replaced", json!({"$ref": "#/components/schemas/Consumer"})), "201": ok("Created", json!({"$ref": "#/components/schemas/Consumer"}))}), errors(&["400", "401", "503"]))},
                "patch": {"summary": "Merge-patch a consumer ({\"enabled\":false} disables)", "requestBody": body(patch_of(&consumer_schema(false))),
                          "responses": with(json!({"200": ok("Updated", json!({"$ref": "#/components/schemas/Consumer"}))}), errors(&["400", "401", "404", "503"]))},
                "delete": {"summary": "Delete a consumer and its keys", "responses": with(json!({"204": {"description": "Deleted"}}), errors(&["401", "404", "503"]))}
            },
            "/admin/consumers/{id}/keys": {
                "parameters": [id.clone()],
                "post": {"summary": "Create an API key (the key is shown once)", "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false, "properties": {"name": {"type": ["string", "null"], "maxLength": 128}}}}}},
                         "responses": with(json!({"201": ok("Key", json!({"type": "object", "required": ["key_id", "key", "consumer"], "properties": {"key_id": {"type": "string"}, "key": {"type": "string"},
                             "consumer": {"type": "string"}, "name": {"type": ["string", "null"]}, "created_at": {"type": "string", "format": "date-time"}}}))}), errors(&["400", "401", "404", "503"]))}
            },
            "/admin/consumers/{id}/keys/{key_id}": {
                "parameters": [id.clone(), {"name": "key_id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "delete": {"summary": "Delete an API key", "responses": with(json!({"204": {"description": "Deleted"}}), errors(&["401", "404", "503"]))}
            },
            "/admin/revocations": {
                "post": {"summary": "Revoke one token (jti) or every token of a subject issued before a time",
                         "requestBody": body(json!({"type": "object", "additionalProperties": false,
                             "description": "one token: jti (with its sub, iss and an optional exp), or every token of sub issued before issued_before (default now)",
                             "properties": {"jti": {"type": ["string", "null"]}, "sub": {"type": ["string", "null"]}, "iss": {"type": ["string", "null"]},
                                 "exp": {"type": ["string", "null"], "format": "date-time"}, "issued_before": {"type": ["string", "null"], "format": "date-time"}}})),
                         "responses": with(json!({"201": ok("Stored", json!({"type": "object", "properties": {"revoked": {"type": "integer"}}}))}), errors(&["400", "401", "503"]))}
            },
            "/admin/ratelimits/{policy}/{key}": {
                "parameters": [{"name": "policy", "in": "path", "required": true, "schema": {"type": "string"}},
                               {"name": "key", "in": "path", "required": true, "schema": {"type": "string"}, "description": "the key value as built (consumer id, address, service name; parts joined by +)"}],
                "get": {"summary": "Read a counter without counting a request", "responses": with(json!({"200": ok("Counter", json!({"type": "object", "properties": {
                    "policy": {"type": "string"}, "key": {"type": "string"}, "limit": {"type": "integer"}, "remaining": {"type": "integer"}, "reset": {"type": "integer"}}}))}), errors(&["401", "404", "503"]))},
                "delete": {"summary": "Reset a counter", "responses": with(json!({"204": {"description": "Reset"}}), errors(&["401", "404", "503"]))}
            },
            "/admin/cache": {
                "delete": {"summary": "Purge cached responses on every node: a service's whole cache, the URLs under a client path prefix, or one URL (key = path with query); without service every caching service",
                           "parameters": [
                               {"name": "service", "in": "query", "schema": {"type": "string"}},
                               {"name": "prefix", "in": "query", "schema": {"type": "string", "pattern": "^/"}, "description": "client path prefix, e.g. /api/users/7 (not with key)"},
                               {"name": "key", "in": "query", "schema": {"type": "string"}, "description": "one URL: client path and query (not with prefix)"}],
                           "responses": with(json!({"204": {"description": "Purged"}}), errors(&["400", "401", "404", "503"]))}
            },
            "/admin/circuits": {
                "get": {"summary": "Every circuit breaker (one per instance of services with circuit_breaker), with active health beside it",
                        "responses": with(json!({"200": ok("Breakers", json!({"type": "array", "items": {"type": "object", "properties": {
                    "service": {"type": "string"}, "instance": {"type": "string"}, "url": {"type": "string"},
                    "state": {"enum": ["closed", "open", "half_open"]}, "failures": {"type": "integer"},
                    "opened_at": {"type": ["string", "null"], "format": "date-time"}, "healthy": {"type": "boolean"}}}}))}), errors(&["401"]))}
            },
            "/admin/circuits/{instance}/reset": {
                "parameters": [{"name": "instance", "in": "path", "required": true, "schema": {"type": "string"}}],
                "post": {"summary": "Close an instance's breakers on every node", "responses": with(json!({"204": {"description": "Reset"}}), errors(&["401", "404"]))}
            },
            "/admin/queues": {
                "get": {"summary": "Queued services and their counts", "responses": with(json!({"200": ok("Queues", json!({"type": "array", "items": {"type": "object", "properties": {
                    "service": {"type": "string"}, "depth": {"type": "integer", "description": "jobs waiting"}, "processing": {"type": "integer"}, "dead": {"type": "integer"}}}}))}), errors(&["401", "503"]))}
            },
            "/admin/queues/{service}/dead": {
                "parameters": [{"name": "service", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"summary": "Dead letters of a service, newest first", "responses": with(json!({"200": ok("Jobs", json!({"type": "array", "items": {"$ref": "#/components/schemas/Job"}}))}), errors(&["401", "404", "503"]))}
            },
            "/admin/queues/{service}/dead/{id}/retry": {
                "parameters": [{"name": "service", "in": "path", "required": true, "schema": {"type": "string"}}, id.clone()],
                "post": {"summary": "Re-queue a dead letter under the same job id, attempts reset", "responses": with(json!({"202": ok("Re-queued", json!({"$ref": "#/components/schemas/Job"}))}), errors(&["401", "404", "503"]))}
            },
            "/admin/nodes": {
                "get": {"summary": "Live gateway nodes", "responses": with(json!({"200": ok("Nodes", json!({"type": "array", "items": {"type": "object", "properties": {
                    "id": {"type": "string"}, "address": {"type": "string"}, "started_at": {"type": "string", "format": "date-time"}, "last_seen": {"type": "string", "format": "date-time"}}}}))}), errors(&["401", "503"]))}
            },
            "/admin/events": {
                "get": {"summary": "Cluster events as Server-Sent Events (id = registry version; Last-Event-ID resumes)",
                        "parameters": [
                            {"name": "kind", "in": "query", "schema": {"type": "string"}, "description": "comma-separated event kinds"},
                            {"name": "service", "in": "query", "schema": {"type": "string"}},
                            {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer"}}],
                        "responses": with(json!({"200": {"description": "Event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}}), errors(&["401", "503"]))}
            },
            "/admin/analytics": {
                "get": {"summary": "Cluster-wide usage report from per-minute aggregates",
                        "parameters": [
                            {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "default: one hour before `to`"},
                            {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "default: now"},
                            {"name": "service", "in": "query", "schema": {"type": "string", "minLength": 1}}],
                        "responses": with(json!({"200": ok("Report", json!({"$ref": "#/components/schemas/Analytics"}))}), errors(&["400", "401", "404", "503"]))}
            },
            "/admin/dashboard": {"get": {"summary": "Self-contained HTML dashboard (no token: the page asks for it)", "security": [],
                "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
            "/admin/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI document"}}}},
            "/health": {"get": {"summary": "Liveness, Redis status, degraded actors (no token)", "security": [], "responses": {"200": ok("Health", json!({"$ref": "#/components/schemas/Health"}))}}},
            "/ready": {"get": {"summary": "Readiness (no token)", "security": [], "responses": {"200": ok("Ready", json!({"$ref": "#/components/schemas/Health"})), "503": ok("Not ready", json!({"$ref": "#/components/schemas/Health"}))}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (no token)", "security": [], "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": ok("Error", json!({"$ref": "#/components/schemas/Error"}))},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message", "request_id"], "properties": {
                    "error": {"type": "string", "examples": ["validation_failed", "unauthorized", "not_found", "conflict", "redis_unavailable"]},
                    "message": {"type": "string"}, "request_id": {"type": "string"}, "field": {"type": "string", "examples": ["endpoints[0]"]}}},
                "Job": {"type": "object", "required": ["job_id", "status", "attempts"], "properties": {
                    "job_id": {"type": "string"}, "status": {"enum": ["queued", "running", "succeeded", "failed", "dead"]},
                    "position": {"type": "integer", "description": "only when queued; 1 = next"}, "attempts": {"type": "integer", "description": "runs started"},
                    "result": {"type": "object", "description": "only when done", "properties": {"status": {"type": "integer"}, "headers": {"type": "object"},
                        "body": {"type": "string"}, "body_encoding": {"enum": ["utf8", "base64"]}}}}},
                "Analytics": {"type": "object", "required": ["from", "to", "totals", "by_service", "top_endpoints", "top_consumers", "per_minute"], "properties": {
                    "from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"},
                    "totals": {"type": "object", "properties": {"requests": {"type": "integer"}, "errors": {"type": "integer", "description": "status >= 500"},
                        "rate_limited": {"type": "integer"}, "cache_hits": {"type": "integer"}}},
                    "by_service": {"type": "object", "additionalProperties": {"type": "object", "properties": {"requests": {"type": "integer"},
                        "status": {"type": "object", "properties": {"2xx": {"type": "integer"}, "3xx": {"type": "integer"}, "4xx": {"type": "integer"}, "5xx": {"type": "integer"}}},
                        "p50_ms": {"type": "number"}, "p95_ms": {"type": "number"}, "p99_ms": {"type": "number"}}}},
                    "top_endpoints": {"type": "array", "items": {"type": "object", "properties": {"service": {"type": "string"}, "method": {"type": "string"},
                        "path": {"type": "string"}, "requests": {"type": "integer"}}}},
                    "top_consumers": {"type": "array", "items": {"type": "object", "properties": {"consumer": {"type": "string"}, "requests": {"type": "integer"}}}},
                    "per_minute": {"type": "array", "items": {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}, "requests": {"type": "integer"},
                        "errors": {"type": "integer"}, "rate_limited": {"type": "integer"}, "p99_ms": {"type": "number"}}}},
                    "latency": {"type": "object"}, "peak_minute": {"type": ["object", "null"]}, "source": {"enum": ["cluster", "memory", "local"]}}},
                "Health": {"type": "object", "properties": {"status": {"enum": ["ok", "degraded"]}, "node": {"type": "string"},
                    "redis": {"enum": ["up", "down", "memory"]}, "degraded": {"type": "array", "items": {"type": "string"}}}},
                "Consumer": consumer_schema(true),
                "ConsumerBody": consumer_schema(false),
                "Instance": {"type": "object", "required": ["id", "url", "weight", "healthy", "source"], "properties": {
                    "id": {"type": "string"}, "url": {"type": "string"}, "weight": {"type": "integer"},
                    "healthy": {"type": "boolean"}, "source": {"enum": ["config", "admin", "self"]}}},
                "Service": service_schema()
            }
        }
    });
    with_unsupported_media_type(doc)
});

/// Adds `415` (a body that is not JSON) to every operation that takes a body.
fn with_unsupported_media_type(mut doc: Value) -> Value {
    for ops in doc["paths"].as_object_mut().into_iter().flat_map(|p| p.values_mut()) {
        for op in ops.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
            if op.get("requestBody").is_some() {
                op["responses"]["415"] = json!({"$ref": "#/components/responses/Error"});
            }
        }
    }
    doc
}
