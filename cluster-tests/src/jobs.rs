//! Helpers for tests of queued endpoints: JSON bodies, reading a job, waiting for it to end.

use std::time::Duration;

use serde_json::Value;

use crate::{GatewayProcess, client, eventually};

/// The response body as JSON (`Null` when it is not JSON).
pub async fn body_json(
    res: &mut awc::ClientResponse<
        impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Value {
    let body = res.body().limit(1 << 20).await.map(|b| b.to_vec()).unwrap_or_default();
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

/// `GET /jobs/{id}` (with an API key when given): status and body; `0` when the node
/// does not answer.
pub async fn job(gw: &GatewayProcess, id: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = client().get(gw.url(&format!("/jobs/{id}")));
    if let Some(k) = key {
        req = req.insert_header(("X-API-Key", k));
    }
    let Ok(mut res) = req.send().await else {
        return (0, Value::Null);
    };
    (res.status().as_u16(), body_json(&mut res).await)
}

/// Waits until job `id` reaches a final status; answers the job object.
pub async fn finished(gw: &GatewayProcess, id: &str, key: Option<&str>, within: Duration) -> Value {
    let found = eventually(within, async || {
        let (status, body) = job(gw, id, key).await;
        let done = status == 200 && ["succeeded", "failed", "dead"].contains(&body["status"].as_str().unwrap_or(""));
        done.then_some(body)
    })
    .await;
    found.unwrap_or_else(|| panic!("job {id} did not finish"))
}
