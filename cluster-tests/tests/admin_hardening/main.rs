//! Black-box tests of issue #20's admin and auth hardening: the token-less admin listener
//! cannot be driven by a web page, JWT claim and header rules, revocation scoped to
//! issuer + subject, validation errors that name the field, and bounded durations/sizes.

mod admin_guard;
mod bounds;
mod jwt;
mod revocation;
mod validation;

use std::process::Command;

use cluster_tests::{GatewayProcess, client, free_port, gateway_bin};
use serde_json::Value;

/// Sends `method path` to the admin listener with `headers` and a raw `body`; answers the
/// status and the JSON body (`Null` when none).
pub async fn admin_raw(
    gw: &GatewayProcess,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut req = client().request(method.parse().expect("method"), gw.admin_url(path));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut res =
        if body.is_empty() { req.send().await } else { req.send_body(body.to_string()).await }.expect("admin request");
    let bytes = res.body().limit(1 << 20).await.expect("body");
    (res.status().as_u16(), serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// `admin_raw` with `Content-Type: application/json`.
pub async fn admin_json(gw: &GatewayProcess, method: &str, path: &str, body: &str) -> (u16, Value) {
    admin_raw(gw, method, path, &[("content-type", "application/json")], body).await
}

/// Runs `gateway check-config` on `text`: exit code and output.
pub fn check_config(text: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("gw-harden-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("c.toml");
    std::fs::write(&file, text).expect("write");
    let out = Command::new(gateway_bin()).arg("check-config").arg(&file).output().expect("run check-config");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}
