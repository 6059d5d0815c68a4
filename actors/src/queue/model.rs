//! The queue's vocabulary and its pure rules: job ids (which name their service), statuses,
//! what a run's outcome means (succeeded, failed, retry, dead), stored results and the
//! JSON object `GET /jobs/{id}` answers (SPEC §11).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Hex characters of the random part of a job id.
const ID_HEX: usize = 32;

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting on the queue (or taken by a worker still waiting for its start permit).
    Queued,
    /// A worker is running it.
    Running,
    /// The upstream answered with a final, non-error status (1xx–3xx).
    Succeeded,
    /// The upstream answered with a client error (4xx other than 408/429): final, not retried.
    Failed,
    /// Every attempt failed (5xx, 408, 429, transport error, or lease lost): on the dead-letter list.
    Dead,
}

impl JobStatus {
    /// The stored / JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "dead" => Self::Dead,
            _ => return None,
        })
    }

    /// Whether the job will not run again (until an admin retry of a dead letter).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Dead)
    }
}

/// A new job id for `service`: `<service>-<32 hex>`. The service is part of the id so
/// `GET /jobs/{id}` finds the job's keys (they carry the service's hash tag).
pub fn new_job_id(service: &str) -> String {
    format!("{service}-{}", crate::hex(&rand::random::<[u8; 16]>()))
}

/// The service named by a job id, when the id is well formed.
pub fn job_service(id: &str) -> Option<&str> {
    let split = id.len().checked_sub(ID_HEX + 1)?;
    let (service, rest) = id.split_at_checked(split)?;
    let hex = rest.strip_prefix('-')?;
    let ok = !service.is_empty()
        && service.parse::<crate::spec::ServiceName>().is_ok()
        && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then_some(service)
}

/// Digest naming an idempotency key: the same key from another consumer is another job.
pub fn idempotency_digest(consumer: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(consumer.as_bytes());
    h.update([0x1f]);
    h.update(key.as_bytes());
    crate::hex(&h.finalize())
}

/// A request captured as a job at enqueue time: what the proxy would have sent upstream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewJob {
    /// Verified consumer id; empty for anonymous requests.
    pub consumer: String,
    /// Method.
    pub method: String,
    /// Upstream path (prefix stripped as configured).
    pub path: String,
    /// Raw query string (without `?`).
    pub query: String,
    /// Headers as they would go upstream (hop-by-hop removed, forwarding headers added).
    pub headers: Vec<(String, String)>,
    /// Body (bounded by `node.max_body`).
    pub body: Vec<u8>,
    /// The enqueueing request's id, sent upstream as `X-Request-Id`.
    pub request_id: String,
    /// `Idempotency-Key` of the request.
    pub idempotency_key: Option<String>,
}

/// A job as a worker runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequest {
    /// Job id.
    pub id: String,
    /// Service name.
    pub service: String,
    /// The captured request.
    pub request: NewJob,
    /// This run's number (1 = first).
    pub attempt: u32,
}

/// An upstream answer, kept as the job's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    /// Status code.
    pub status: u16,
    /// Response headers (hop-by-hop removed), in order; names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct StoredResult {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    body_encoding: String,
}

impl JobResult {
    /// The stored form: JSON with the body as UTF-8 text, or base64 when it is not text.
    pub fn to_stored(&self) -> String {
        let (body, body_encoding) = match std::str::from_utf8(&self.body) {
            Ok(s) => (s.to_string(), "utf8"),
            Err(_) => (B64.encode(&self.body), "base64"),
        };
        let stored = StoredResult {
            status: self.status,
            headers: self.headers.clone(),
            body,
            body_encoding: body_encoding.into(),
        };
        serde_json::to_string(&stored).unwrap_or_default()
    }

    /// Parses the stored form.
    pub fn from_stored(s: &str) -> Option<Self> {
        let r: StoredResult = serde_json::from_str(s).ok()?;
        let body = match r.body_encoding.as_str() {
            "base64" => B64.decode(r.body.as_bytes()).ok()?,
            _ => r.body.into_bytes(),
        };
        Some(Self { status: r.status, headers: r.headers, body })
    }

    /// The `result` object of SPEC §11: headers as an object (repeated names joined by `, `).
    pub fn view(&self) -> Value {
        let mut headers = Map::new();
        for (k, v) in &self.headers {
            match headers.get_mut(k) {
                Some(Value::String(prev)) => {
                    prev.push_str(", ");
                    prev.push_str(v);
                }
                _ => {
                    headers.insert(k.clone(), Value::String(v.clone()));
                }
            }
        }
        let (body, encoding) = match std::str::from_utf8(&self.body) {
            Ok(s) => (s.to_string(), "utf8"),
            Err(_) => (B64.encode(&self.body), "base64"),
        };
        json!({"status": self.status, "headers": headers, "body": body, "body_encoding": encoding})
    }
}

/// What one run produced.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// The upstream answered.
    Answered(JobResult),
    /// No answer: connect error, timeout, no route or no healthy endpoint.
    Failed(String),
}

/// What a run's outcome does to the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Final: 1xx–3xx answer.
    Succeeded,
    /// Final: a client-error answer, which running again would not change.
    Failed,
    /// Back on the queue for another attempt.
    Retry,
    /// Out of attempts: to the dead-letter list.
    Dead,
}

impl Finish {
    /// The name the finish script and the metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Retry => "retry",
            Self::Dead => "dead",
        }
    }
}

/// Decides what run number `attempt` (of at most `max_attempts`) leads to. 5xx, 408, 429
/// and answers that never came are worth another attempt; other statuses are final.
pub fn classify(outcome: &RunOutcome, attempt: u32, max_attempts: u32) -> Finish {
    let retriable = match outcome {
        RunOutcome::Answered(r) => r.status >= 500 || r.status == 408 || r.status == 429,
        RunOutcome::Failed(_) => true,
    };
    match outcome {
        _ if retriable && attempt >= max_attempts => Finish::Dead,
        _ if retriable => Finish::Retry,
        RunOutcome::Answered(r) if r.status >= 400 => Finish::Failed,
        _ => Finish::Succeeded,
    }
}

/// A job as `GET /jobs/{id}` and the dead-letter list show it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Job id.
    pub id: String,
    /// Status.
    pub status: JobStatus,
    /// Runs started.
    pub attempts: u32,
    /// The consumer that enqueued it (empty: anonymous).
    pub consumer: String,
    /// 1-based place in line while queued.
    pub position: Option<u64>,
    /// The upstream answer, once there is one to keep.
    pub result: Option<JobResult>,
}

impl JobRecord {
    /// The JSON of SPEC §11: `position` only when queued, `result` only when done.
    pub fn view(&self) -> Value {
        let mut v = json!({"job_id": self.id, "status": self.status.as_str(), "attempts": self.attempts});
        if self.status == JobStatus::Queued {
            v["position"] = json!(self.position.unwrap_or(1).max(1));
        }
        if self.status.is_final()
            && let Some(r) = &self.result
        {
            v["result"] = r.view();
        }
        v
    }
}

/// Counts of one service's queue (`GET /admin/queues`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Service name.
    pub service: String,
    /// Jobs waiting.
    pub depth: u64,
    /// Jobs held by workers.
    pub processing: u64,
    /// Dead letters.
    pub dead: u64,
}

/// Re-reads at the shortest pause before backing off.
const QUICK_READS: u32 = 10;

/// The pause before the `n`-th re-read while a `sync` request waits for its job: 2 ms for
/// the first `QUICK_READS` (a fast job answers within a few ms of finishing), then
/// doubling from 5 ms to at most 200 ms (bounded Redis load for slow jobs).
pub fn wait_step(n: u32) -> Duration {
    if n < QUICK_READS {
        return Duration::from_millis(2);
    }
    Duration::from_millis((5u64 << (n - QUICK_READS).min(6)).min(200))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16) -> RunOutcome {
        RunOutcome::Answered(JobResult { status, headers: vec![], body: vec![] })
    }

    #[test]
    fn job_ids_name_their_service() {
        let id = new_job_id("heavy-reports.v2");
        assert_eq!(job_service(&id), Some("heavy-reports.v2"));
        assert_eq!(job_service("reports"), None);
        assert_eq!(job_service(&format!("reports-{}", "g".repeat(32))), None);
        assert_eq!(job_service(&format!("-{}", "a".repeat(32))), None);
        assert_eq!(job_service(&format!("re/ports-{}", "a".repeat(32))), None);
    }

    #[test]
    fn outcomes_retry_until_the_last_attempt_then_die() {
        assert_eq!(classify(&answered(200), 1, 3), Finish::Succeeded);
        assert_eq!(classify(&answered(302), 3, 3), Finish::Succeeded);
        assert_eq!(classify(&answered(404), 1, 3), Finish::Failed);
        assert_eq!(classify(&answered(503), 1, 3), Finish::Retry);
        assert_eq!(classify(&answered(429), 2, 3), Finish::Retry);
        assert_eq!(classify(&answered(500), 3, 3), Finish::Dead);
        assert_eq!(classify(&RunOutcome::Failed("refused".into()), 1, 1), Finish::Dead);
    }

    #[test]
    fn results_round_trip_text_and_binary_bodies() {
        let text = JobResult { status: 201, headers: vec![("a".into(), "1".into())], body: b"hello".to_vec() };
        assert_eq!(JobResult::from_stored(&text.to_stored()), Some(text.clone()));
        assert_eq!(text.view()["body_encoding"], "utf8");
        let bin = JobResult { status: 200, headers: vec![], body: vec![0xff, 0x00, 0x80] };
        assert_eq!(JobResult::from_stored(&bin.to_stored()), Some(bin.clone()));
        assert_eq!(bin.view()["body_encoding"], "base64");
    }

    #[test]
    fn the_view_shows_position_only_when_queued_and_result_only_when_done() {
        let result = JobResult {
            status: 200,
            headers: vec![("x".into(), "1".into()), ("x".into(), "2".into())],
            body: b"ok".to_vec(),
        };
        let mut rec = JobRecord {
            id: "s-1".into(),
            status: JobStatus::Queued,
            attempts: 0,
            consumer: String::new(),
            position: Some(4),
            result: None,
        };
        assert_eq!(rec.view(), json!({"job_id": "s-1", "status": "queued", "attempts": 0, "position": 4}));
        rec.status = JobStatus::Succeeded;
        rec.attempts = 1;
        rec.result = Some(result);
        let v = rec.view();
        assert!(v.get("position").is_none());
        assert_eq!(v["result"]["headers"]["x"], "1, 2");
        assert_eq!(v["result"]["status"], 200);
    }

    #[test]
    fn idempotency_digests_differ_by_consumer() {
        assert_ne!(idempotency_digest("a", "k"), idempotency_digest("b", "k"));
        assert_eq!(idempotency_digest("a", "k"), idempotency_digest("a", "k"));
    }

    #[test]
    fn sync_waits_back_off_to_a_bounded_step() {
        assert_eq!(wait_step(0), Duration::from_millis(2));
        assert_eq!(wait_step(QUICK_READS), Duration::from_millis(5));
        assert!(wait_step(QUICK_READS + 3) < wait_step(QUICK_READS + 4));
        assert_eq!(wait_step(50), Duration::from_millis(200));
    }
}
