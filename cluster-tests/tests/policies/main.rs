//! Black-box tests of the per-service policies of issue 24 (SPEC §17): `methods` (405 with
//! `Allow`), `[services.ip]` (after `trusted_proxies`), `[services.cors]` (preflights at
//! the gateway, `Vary: Origin` on every answer, cached ones included) and `max_body`;
//! their validation, and a change made on one node applying on another. Real gateway
//! processes, mock upstreams, one redis-server for the three-node test.

mod access;
mod cluster;
mod cors;

use awc::http::header::HeaderMap;
use cluster_tests::{GatewayProcess, MockUpstream};
use serde_json::Value;

/// One answer, read whole.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value (the first), empty when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// Every value of a header, joined as one list.
    pub fn header_list(&self, name: &str) -> String {
        self.headers.get_all(name).filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(", ")
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Asserts a gateway error of SPEC §4: status, JSON `error`, and the body's
    /// `request_id` equal to `X-Request-Id`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        let body = self.json();
        assert_eq!((self.status, body["error"].as_str()), (status, Some(code)), "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        let id = self.header("x-request-id");
        assert!(!id.is_empty() && body["request_id"] == id, "X-Request-Id {id:?} vs {body}");
    }
}

/// Sends `req` (with `body` when given) and reads the answer.
pub async fn send(req: awc::ClientRequest, body: Option<Vec<u8>>) -> Answer {
    let sent = match body {
        Some(b) => req.send_body(b).await,
        None => req.send().await,
    };
    let mut res = sent.expect("the gateway answers");
    let body = res.body().limit(8 << 20).await.map(|b| b.to_vec()).unwrap_or_default();
    Answer { status: res.status().as_u16(), headers: res.headers().clone(), body }
}

/// A node in memory mode (or on `redis`), with `services` (TOML) after `[node]` `extra`.
pub fn node(id: &str, redis: Option<&str>, node_extra: &str, services: &str) -> GatewayProcess {
    let redis = redis.map(|url| format!("[redis]\nurl = \"{url}\"\n")).unwrap_or_default();
    GatewayProcess::start(&format!(
        "[node]\nid = \"{id}\"\nworkers = 1\n{node_extra}\n[log]\naccess_log = false\n{redis}\n{services}"
    ))
}

/// A `[[services]]` table named `name` sending to `up`, with `rest` (keys and sections).
pub fn service(name: &str, up: &MockUpstream, rest: &str) -> String {
    format!("[[services]]\nname = \"{name}\"\nendpoints = [\"{}\"]\n{rest}\n", up.url())
}
