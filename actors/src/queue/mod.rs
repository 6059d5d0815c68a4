//! The job queue of SPEC §9: requests matching a service's `queue.match` become jobs that
//! `QueueWorker`s on every node run against the upstream at a cluster-wide start rate.
//!
//! - `Queues` is the handle the request path and the admin API use (enqueue, read, wait,
//!   counts, dead letters, retry); it calls Redis directly, like the rate limiter's
//!   `Limiter` — no mailbox hop per request.
//! - `QueueSupervisor` (in `worker.rs`) keeps `concurrency` `QueueWorker` actors per queued
//!   service on this node, reaps expired leases when this node is the leader, and returns
//!   this node's held jobs on shutdown.
//! - The HTTP call itself is the gateway's (`JobRunner`): this crate has no actix-web types.
//!
//! **Invariants:** a job id is on exactly one of `pending`, `processing` or `dead` (or on
//! none once final); every change is one Lua script over keys sharing the service's hash
//! tag; `attempts` counts runs started; delivery is at-least-once.

pub mod memory;
pub mod model;
pub mod redis;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;

pub use model::{
    Finish, JobRecord, JobRequest, JobResult, JobStatus, NewJob, QueueStats, RunOutcome, classify, job_service,
    new_job_id,
};
pub use worker::{QueueSupervisor, QueueWorker, ReturnLeased, ShutdownCounts};

use crate::redis::{Store, StoreError};
use crate::registry::{Route, RoutesView};
use crate::spec::QueueSpec;
use crate::status::NodeStatus;
use memory::MemoryQueue;
use redis::RedisQueue;

/// Sends a job's request upstream (implemented by the gateway's proxy).
pub trait JobRunner {
    /// Runs `job` against the current `route` of its service and reports the answer.
    fn run(&self, job: Arc<JobRequest>, route: Arc<Route>) -> LocalBoxFuture<'static, RunOutcome>;
}

/// What enqueueing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job.
    New {
        /// Its id.
        id: String,
        /// Waiting jobs now.
        depth: u64,
    },
    /// The `Idempotency-Key` names an existing job of this consumer.
    Duplicate {
        /// The existing job's id.
        id: String,
        /// Waiting jobs now.
        depth: u64,
    },
    /// `max_depth` jobs are waiting.
    Full {
        /// Waiting jobs.
        depth: u64,
    },
}

/// What a worker may do with a job it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Run it: this is run number `n`.
    Run(u32),
    /// It had used every attempt: moved to the dead letters.
    Dead,
    /// The lease is no longer ours.
    Lost,
}

/// Why a queue call failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue's storage could not be reached in time.
    #[error("queue storage is unavailable: {0}")]
    Unavailable(#[from] StoreError),
}

#[derive(Clone)]
pub(crate) enum Backend {
    Redis(Box<RedisQueue>),
    Memory(Arc<MemoryQueue>),
}

/// The queue handle (cheap to clone).
#[derive(Clone)]
pub struct Queues {
    backend: Backend,
    routes: RoutesView,
    status: NodeStatus,
}

impl Queues {
    /// Queues over Redis (`store`) or, without one, in process.
    pub fn new(store: Option<Store>, routes: RoutesView, status: NodeStatus) -> Self {
        let backend = match store {
            Some(s) => Backend::Redis(Box::new(RedisQueue::new(s))),
            None => Backend::Memory(Arc::new(MemoryQueue::default())),
        };
        Self { backend, routes, status }
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    pub(crate) fn routes(&self) -> &RoutesView {
        &self.routes
    }

    pub(crate) fn status(&self) -> &NodeStatus {
        &self.status
    }

    /// Records whether the queue reached its storage (`/health` `degraded`).
    pub(crate) fn observe<T>(&self, r: Result<T, StoreError>) -> Result<T, QueueError> {
        if matches!(self.backend, Backend::Redis(_)) {
            self.status.set_degraded("queue", r.is_err());
        }
        Ok(r?)
    }

    /// Stores `job` for `service` and pushes it on the queue (one atomic step).
    pub async fn enqueue(&self, service: &str, spec: &QueueSpec, job: &NewJob) -> Result<Enqueued, QueueError> {
        let id = new_job_id(service);
        let out = match &self.backend {
            Backend::Redis(q) => self.observe(q.enqueue(service, spec, &id, job).await)?,
            Backend::Memory(q) => q.enqueue(service, spec, &id, job),
        };
        let outcome = match &out {
            Enqueued::New { depth, .. } | Enqueued::Duplicate { depth, .. } | Enqueued::Full { depth } => {
                metrics::gauge!(crate::names::M_QUEUE_DEPTH, "service" => service.to_string()).set(*depth as f64);
                match out {
                    Enqueued::New { .. } => "enqueued",
                    Enqueued::Duplicate { .. } => "duplicate",
                    Enqueued::Full { .. } => "rejected",
                }
            }
        };
        count(service, outcome);
        Ok(out)
    }

    /// A job by id (`None`: no such job, or its result expired).
    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>, QueueError> {
        let Some(service) = job_service(id) else { return Ok(None) };
        match &self.backend {
            Backend::Redis(q) => self.observe(q.get(service, id).await),
            Backend::Memory(q) => Ok(q.get(service, id)),
        }
    }

    /// Waits up to `within` for the job to finish, re-reading it with a bounded backoff;
    /// answers its last state.
    pub async fn wait(&self, id: &str, within: Duration) -> Result<Option<JobRecord>, QueueError> {
        let deadline = tokio::time::Instant::from_std(crate::units::deadline_after(std::time::Instant::now(), within));
        let mut n = 0;
        loop {
            let rec = self.get(id).await?;
            let done = rec.as_ref().is_none_or(|r| r.status.is_final());
            let now = tokio::time::Instant::now();
            if done || now >= deadline {
                return Ok(rec);
            }
            tokio::time::sleep(model::wait_step(n).min(deadline - now)).await;
            n += 1;
        }
    }

    /// Names of the services that currently have a queue, sorted.
    pub fn services(&self) -> Vec<(String, QueueSpec)> {
        let table = self.routes.load();
        let mut out: Vec<(String, QueueSpec)> =
            table.routes().filter_map(|r| r.spec.queue.clone().map(|q| (r.name.to_string(), q))).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Counts of one service's queue.
    pub async fn stats(&self, service: &str) -> Result<QueueStats, QueueError> {
        let stats = match &self.backend {
            Backend::Redis(q) => self.observe(q.stats(service).await)?,
            Backend::Memory(q) => q.stats(service),
        };
        metrics::gauge!(crate::names::M_QUEUE_DEPTH, "service" => service.to_string()).set(stats.depth as f64);
        Ok(stats)
    }

    /// The dead letters of a service, newest first.
    pub async fn dead(&self, service: &str) -> Result<Vec<JobRecord>, QueueError> {
        match &self.backend {
            Backend::Redis(q) => self.observe(q.dead(service).await),
            Backend::Memory(q) => Ok(q.dead(service)),
        }
    }

    /// Re-queues a dead letter under the same id with attempts reset; `None` when `id` is
    /// not a dead letter of `service`.
    pub async fn retry(&self, service: &str, id: &str) -> Result<Option<JobRecord>, QueueError> {
        let rec = match &self.backend {
            Backend::Redis(q) => self.observe(q.retry_dead(service, id).await)?,
            Backend::Memory(q) => q.retry_dead(service, id),
        };
        if rec.is_some() {
            count(service, "revived");
        }
        Ok(rec)
    }
}

/// Counts one job outcome in `gateway_queue_jobs_total`.
pub(crate) fn count(service: &str, outcome: &'static str) {
    metrics::counter!(crate::names::M_QUEUE_JOBS, "service" => service.to_string(), "outcome" => outcome).increment(1);
}
