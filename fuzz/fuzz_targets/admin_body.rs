//! Admin API bodies (`gateway/src/admin`): parsing that names the failing field, then
//! the same validation the handlers run. The first line picks the route:
//! `service`, `service_put`, `service_patch`, `consumer`, `consumer_put`,
//! `consumer_patch`, `key`, `instance`, `revocation`; the rest is the body.
//!
//! What is accepted must round-trip: the JSON the API answers with (the validated object)
//! is accepted again as a body and gives the same object, so a client can PUT back what
//! it read.
#![no_main]

use std::sync::LazyLock;

use actors::auth::Consumer;
use actors::spec::ServiceSpec;
use gateway::fuzzing::admin;
use libfuzzer_sys::fuzz_target;

static SERVICE: LazyLock<ServiceSpec> = LazyLock::new(|| {
    let body = br#"{"name":"users","prefix":"/api/users","hosts":["API.example.com"],
        "endpoints":["http://127.0.0.1:3000",{"url":"http://127.0.0.1:3001/base","weight":3}],
        "balancer":"weighted","timeout":"2s","retries":2,
        "cache":{"ttl":"30s"},"health_check":{"path":"/health","interval":"5s"},
        "circuit_breaker":{"failure_ratio":0.5},"queue":{"match":["POST /heavy"]}}"#;
    admin::service(body).unwrap_or_else(|e| panic!("fuzz base service: {e}"))
});

static CONSUMER: LazyLock<Consumer> = LazyLock::new(|| {
    let body = br#"{"id":"acme","tier":"gold","permissions":{"services":["users"],"methods":["get"]}}"#;
    admin::consumer(None, body).unwrap_or_else(|e| panic!("fuzz base consumer: {e}"))
});

fn service_round_trips(spec: &ServiceSpec) {
    let json = serde_json::to_vec(spec).unwrap_or_default();
    match admin::service(&json) {
        Ok(again) => assert_eq!(&again, spec, "service changed on a round trip: {}", String::from_utf8_lossy(&json)),
        Err(e) => panic!("the API's own service JSON is refused ({e}): {}", String::from_utf8_lossy(&json)),
    }
}

fn consumer_round_trips(c: &Consumer) {
    let json = serde_json::to_vec(c).unwrap_or_default();
    match admin::consumer(None, &json) {
        Ok(again) => assert_eq!(&again, c, "consumer changed on a round trip"),
        Err(e) => panic!("the API's own consumer JSON is refused ({e}): {}", String::from_utf8_lossy(&json)),
    }
}

fuzz_target!(|data: &[u8]| {
    let (route, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    match route {
        b"service" => {
            if let Ok(s) = admin::service(body) {
                service_round_trips(&s);
            }
        }
        b"service_put" => {
            if let Ok(s) = admin::service_put("users", body) {
                assert_eq!(s.name.as_str(), "users");
                service_round_trips(&s);
            }
        }
        b"service_patch" => {
            if let Ok(s) = admin::service_patch(&SERVICE, body) {
                assert_eq!(s.name, SERVICE.name);
                service_round_trips(&s);
            }
        }
        b"consumer" => {
            if let Ok(c) = admin::consumer(None, body) {
                consumer_round_trips(&c);
            }
        }
        b"consumer_put" => {
            if let Ok(c) = admin::consumer(Some("acme"), body) {
                assert_eq!(c.id, "acme");
                consumer_round_trips(&c);
            }
        }
        b"consumer_patch" => {
            if let Ok(c) = admin::consumer_patch(&CONSUMER, body) {
                assert_eq!(c.id, CONSUMER.id);
                consumer_round_trips(&c);
            }
        }
        b"key" => drop(admin::key(body)),
        b"instance" => drop(admin::instance(body)),
        b"revocation" => drop(admin::revocation(body)),
        _ => {}
    }
});
