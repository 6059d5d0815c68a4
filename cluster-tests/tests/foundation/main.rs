//! Black-box tests of the foundation (SPEC §2–§4): real gateway processes, real mock
//! upstreams, real sockets.

mod balancing;
mod headers;
mod lifecycle;
mod limits;
mod routing;
mod tls;
mod upstream_wire;

use cluster_tests::{GatewayProcess, MockUpstream};

/// Node settings shared by these tests: one worker, JSON logs.
pub const BASE: &str = r#"
[node]
id = "gw-test"
workers = 1
"#;

/// Starts a gateway with `BASE` plus `rest`.
pub fn gateway(rest: &str) -> GatewayProcess {
    GatewayProcess::start(&format!("{BASE}\n{rest}"))
}

/// A `[[services]]` table over the given upstreams.
pub fn service(name: &str, upstreams: &[&MockUpstream], extra: &str) -> String {
    let eps: Vec<String> = upstreams.iter().map(|u| format!("\"{}\"", u.url())).collect();
    format!("[[services]]\nname = \"{name}\"\nendpoints = [{}]\n{extra}\n", eps.join(", "))
}

/// Reads a JSON body.
pub async fn json<S>(res: &mut awc::ClientResponse<S>) -> serde_json::Value
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    let body = res.body().limit(1 << 20).await.expect("body");
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))
}

/// A header as a string ("" when absent).
pub fn header<S>(res: &awc::ClientResponse<S>, name: &str) -> String {
    res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}
