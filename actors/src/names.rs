//! Metric names the actors record (the gateway re-exports them next to its own).

/// Current registry (route table) version.
pub const M_REGISTRY_VERSION: &str = "gateway_registry_version";
/// 1 while an actor runs on its fallback (label `actor`).
pub const M_DEGRADED: &str = "gateway_degraded";
/// Redis command latency (histogram, seconds; label `actor`).
pub const M_REDIS_DURATION: &str = "gateway_redis_command_duration_seconds";
/// Rate-limit decisions, by policy and result (`allowed` / `limited`).
pub const M_RATELIMIT_DECISIONS: &str = "gateway_ratelimit_decisions_total";
/// Redis commands that failed or timed out.
pub const M_REDIS_ERRORS: &str = "gateway_redis_errors_total";
/// Breaker state per instance: 0 closed, 1 open, 2 half-open (labels `service`, `instance`).
pub const M_CIRCUIT_STATE: &str = "gateway_circuit_state";
/// Jobs waiting in a service's queue (gauge; label `service`).
pub const M_QUEUE_DEPTH: &str = "gateway_queue_depth";
/// Job events by service and outcome (`enqueued`, `duplicate`, `rejected`, `started`,
/// `succeeded`, `failed`, `retried`, `requeued`, `dead`, `revived`, `late`).
pub const M_QUEUE_JOBS: &str = "gateway_queue_jobs_total";
/// Analytics records lost (label `reason`: `mailbox` full, `redis` flush failed or
/// backlog over its cap).
pub const M_ANALYTICS_DROPPED: &str = "gateway_analytics_dropped_total";
/// Jobs a stopping node gave back to their queues (label `service`).
pub const M_SHUTDOWN_RETURNED: &str = "gateway_shutdown_jobs_returned_total";
