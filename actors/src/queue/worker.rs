//! `QueueWorker`: one actor per job slot (`concurrency` per queued service on each node).
//! Its loop takes a job (`BLMOVE` on its own connection, 1 s blocks so stopping is prompt),
//! leases it, waits for a cluster-wide start permit while renewing the lease, counts the
//! run, has the gateway's `JobRunner` send it upstream while renewing the lease, and
//! records the outcome.
//!
//! `QueueSupervisor` keeps the workers in line with the route table (services and their
//! `concurrency` can change at run time), reaps expired leases on the leader, refreshes
//! `gateway_queue_depth`, and on `ReturnLeased` (graceful shutdown) stops every worker:
//! no new job is taken, a job not yet started goes back to the front of its queue at once,
//! a running one may finish until the grace deadline and is given back (its attempt not
//! counted) when it has not. The handler answers only once every worker has done so.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{Notify, watch};

use super::memory::MemoryQueue;
use super::redis::RedisTaker;
use super::{Backend, JobRequest, JobRunner, Queues, RunOutcome, Start, classify, count};
use crate::ratelimit::{Check, Limiter};
use crate::redis::StoreError;
use crate::spec::{Algorithm, FailureMode, PolicySpec, QueueSpec};

/// Longest single `BLMOVE` wait: bounds how long stopping a worker takes.
const BLOCK: Duration = Duration::from_secs(1);
/// Supervisor period: worker reconciliation, depth gauges, reaping.
const TICK: Duration = Duration::from_secs(1);
/// Longest wait, after the grace deadline, for workers to hand their jobs back.
const RETURN_WAIT: Duration = Duration::from_secs(5);
/// Rate-limit policy name of the start permits (key `queue:<service>`).
const PERMIT_POLICY: &str = "start";

/// What the supervisor asks of a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Take jobs.
    Run,
    /// Finish the current job, then stop.
    Drain,
    /// Shutdown: take nothing more; give a job not yet started back at once; let a running
    /// one finish until the deadline, then give it back.
    Stop(tokio::time::Instant),
}

struct Shared {
    queues: Queues,
    runner: Rc<dyn JobRunner>,
    limiter: Limiter,
    node: Arc<str>,
    /// What the workers did with their jobs since the shutdown began.
    shutdown: std::cell::Cell<ShutdownCounts>,
}

/// Jobs this node's workers held when the shutdown began, by what became of them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownCounts {
    /// Finished (their outcome recorded) within the grace period.
    pub finished: u64,
    /// Given back to the front of their queues (a started run not counted in `attempts`).
    pub returned: u64,
    /// Neither: the lease was lost, or Redis did not answer; the reaper returns them when
    /// their lease expires.
    pub stranded: u64,
}

impl Shared {
    fn tally(&self, f: impl FnOnce(&mut ShutdownCounts)) {
        let mut c = self.shutdown.get();
        f(&mut c);
        self.shutdown.set(c);
    }
}

/// One job slot of one service on this node.
pub struct QueueWorker {
    shared: Rc<Shared>,
    service: String,
    mode: Option<watch::Receiver<Mode>>,
}

impl Actor for QueueWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(mode) = self.mode.take() else { return };
        let work = work(Rc::clone(&self.shared), self.service.clone(), mode);
        ctx.spawn(work.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }
}

/// Graceful shutdown of this node's workers: stop taking jobs; finish the ones in flight
/// within `grace` or put them back on their queues. Answers once every worker stopped.
#[derive(Message)]
#[rtype(result = "ShutdownCounts")]
pub struct ReturnLeased {
    /// How long running jobs may take to finish before they are given back.
    pub grace: Duration,
}

/// Starts and stops `QueueWorker`s, reaps expired leases on the leader.
pub struct QueueSupervisor {
    shared: Rc<Shared>,
    workers: HashMap<String, Vec<watch::Sender<Mode>>>,
    /// Workers told to drain (service removed, concurrency lowered) that may still hold
    /// a job: a shutdown must stop them too.
    draining: Vec<watch::Sender<Mode>>,
    /// Per service: ids seen on `processing` without a lease at the last pass. A job is
    /// reaped only when leaseless on two passes in a row, so a worker between its `BLMOVE`
    /// and its lease is never robbed.
    suspects: HashMap<String, HashSet<String>>,
    chores_running: bool,
    stopping: bool,
}

impl QueueSupervisor {
    /// A supervisor running `runner` for the queues of `queues`, with start permits from
    /// `limiter`, on node `node`.
    pub fn new(queues: Queues, runner: Rc<dyn JobRunner>, limiter: Limiter, node: Arc<str>) -> Self {
        Self {
            shared: Rc::new(Shared { queues, runner, limiter, node, shutdown: Default::default() }),
            workers: HashMap::new(),
            draining: Vec::new(),
            suspects: HashMap::new(),
            chores_running: false,
            stopping: false,
        }
    }

    fn reconcile(&mut self) {
        let wanted: HashMap<String, QueueSpec> = self.shared.queues.services().into_iter().collect();
        self.draining.retain(|s| !s.is_closed());
        let draining = &mut self.draining;
        self.workers.retain(|name, slots| {
            let keep = wanted.contains_key(name);
            if !keep {
                for s in slots.drain(..) {
                    let _ = s.send(Mode::Drain);
                    draining.push(s);
                }
            }
            keep
        });
        for (name, spec) in &wanted {
            let slots = self.workers.entry(name.clone()).or_default();
            slots.retain(|s| !s.is_closed());
            let n = spec.concurrency as usize;
            while slots.len() > n {
                if let Some(s) = slots.pop() {
                    let _ = s.send(Mode::Drain);
                    self.draining.push(s);
                }
            }
            while slots.len() < n {
                let (tx, rx) = watch::channel(Mode::Run);
                QueueWorker { shared: Rc::clone(&self.shared), service: name.clone(), mode: Some(rx) }.start();
                slots.push(tx);
            }
        }
    }

    fn chores(&mut self, ctx: &mut Context<Self>) {
        if self.chores_running {
            return;
        }
        self.chores_running = true;
        let queues = self.shared.queues.clone();
        let leader = queues.status().is_leader();
        let suspects = std::mem::take(&mut self.suspects);
        let fut = async move {
            let mut next = HashMap::new();
            for (service, spec) in queues.services() {
                let _ = queues.stats(&service).await;
                if leader {
                    let prev = suspects.get(&service).cloned().unwrap_or_default();
                    match reap(&queues, &service, &spec, &prev).await {
                        Ok(s) => {
                            next.insert(service, s);
                        }
                        Err(e) => tracing::debug!(service = %service, error = %e, "queue reaper pass failed"),
                    }
                }
            }
            next
        };
        ctx.spawn(fut.into_actor(self).map(|next, act, _| {
            act.suspects = next;
            act.chores_running = false;
        }));
    }
}

impl Actor for QueueSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.reconcile();
        ctx.run_interval(TICK, |act, ctx| {
            if act.stopping {
                return;
            }
            act.reconcile();
            act.chores(ctx);
        });
    }
}

impl Handler<ReturnLeased> for QueueSupervisor {
    type Result = ResponseFuture<ShutdownCounts>;
    fn handle(&mut self, msg: ReturnLeased, _: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        let deadline = tokio::time::Instant::now() + msg.grace;
        // Workers already draining (service removed, concurrency lowered) stop the same way.
        let slots: Vec<watch::Sender<Mode>> =
            self.workers.drain().flat_map(|(_, s)| s).chain(self.draining.drain(..)).collect();
        for s in &slots {
            let _ = s.send(Mode::Stop(deadline));
        }
        let shared = Rc::clone(&self.shared);
        Box::pin(async move {
            // A worker drops its receiver once it holds no job any more.
            let all = futures_util::future::join_all(slots.iter().map(|s| s.closed()));
            if tokio::time::timeout_at(deadline + RETURN_WAIT, all).await.is_err() {
                tracing::warn!("some queue workers did not return their jobs in time; their leases will expire");
            }
            shared.shutdown.get()
        })
    }
}

/// One reaper pass over `service`: jobs leaseless now and at the previous pass go back
/// to the queue (or to the dead letters). Answers this pass's suspects.
async fn reap(
    queues: &Queues,
    service: &str,
    spec: &QueueSpec,
    prev: &HashSet<String>,
) -> Result<HashSet<String>, StoreError> {
    let (requeued, dead, suspects) = match queues.backend() {
        Backend::Redis(q) => {
            let now: HashSet<String> = q.leaseless(service).await?.into_iter().collect();
            let due: Vec<String> = now.intersection(prev).cloned().collect();
            let (requeued, dead) = q.reap(service, &due, spec.max_attempts).await?;
            (requeued, dead, now.difference(prev).cloned().collect())
        }
        Backend::Memory(q) => {
            let (r, d) = q.reap(service, spec.max_attempts);
            (r, d, HashSet::new())
        }
    };
    if requeued + dead > 0 {
        tracing::info!(service, requeued, dead, "reaper returned jobs whose lease expired");
    }
    (0..requeued).for_each(|_| count(service, "requeued"));
    (0..dead).for_each(|_| count(service, "dead"));
    Ok(suspects)
}

enum Taker {
    Redis(Box<RedisTaker>),
    Memory(Arc<MemoryQueue>, Arc<Notify>, String),
}

impl Taker {
    fn new(queues: &Queues, service: &str) -> Self {
        match queues.backend() {
            Backend::Redis(q) => Self::Redis(Box::new(q.taker(service))),
            Backend::Memory(q) => Self::Memory(Arc::clone(q), q.notifier(service), service.to_string()),
        }
    }

    async fn take(&mut self) -> Result<Option<String>, StoreError> {
        match self {
            Self::Redis(t) => t.take(BLOCK).await,
            Self::Memory(q, notify, service) => {
                if let Some(id) = q.take_now(service) {
                    return Ok(Some(id));
                }
                let _ = tokio::time::timeout(BLOCK, notify.notified()).await;
                Ok(q.take_now(service))
            }
        }
    }
}

fn spec_of(shared: &Shared, service: &str) -> Option<QueueSpec> {
    shared.queues.routes().load().get(service).and_then(|r| r.spec.queue.clone())
}

/// Whether the worker was told to shut down (or its supervisor is gone).
fn told_to_stop(mode: &watch::Receiver<Mode>) -> bool {
    matches!(*mode.borrow(), Mode::Stop(_)) || mode.has_changed().is_err()
}

/// Resolves once the worker is told to shut down (or its supervisor is gone).
async fn stopping(mode: &mut watch::Receiver<Mode>) {
    loop {
        if matches!(*mode.borrow_and_update(), Mode::Stop(_)) {
            return;
        }
        if mode.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves at the shutdown's grace deadline (at once when the supervisor is gone).
async fn grace_over(mode: &mut watch::Receiver<Mode>) {
    loop {
        let current = *mode.borrow_and_update();
        if let Mode::Stop(deadline) = current {
            return tokio::time::sleep_until(deadline).await;
        }
        if mode.changed().await.is_err() {
            return;
        }
    }
}

/// The worker loop; returns (dropping `mode`) when told to stop and holding no job.
async fn work(shared: Rc<Shared>, service: String, mut mode: watch::Receiver<Mode>) {
    let mut taker = Taker::new(&shared.queues, &service);
    let mut backoff = Duration::from_millis(100);
    while *mode.borrow() == Mode::Run && !told_to_stop(&mode) {
        let Some(spec) = spec_of(&shared, &service) else { break };
        // A `BLMOVE` is never abandoned: Redis may already have moved an id to
        // `processing` for us. It ends within `BLOCK`; a job it brings while stopping is
        // leased and given back at once.
        let taken = {
            let take = taker.take();
            tokio::pin!(take);
            tokio::select! {
                r = &mut take => r,
                _ = mode.changed() => take.await,
            }
        };
        let id = match taken {
            Ok(Some(id)) => id,
            Ok(None) => continue,
            Err(e) => {
                shared.queues.status().set_degraded("queue", true);
                tracing::debug!(service = %service, error = %e, "queue worker cannot reach redis");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    changed = mode.changed() => if changed.is_err() { break },
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let token = crate::hex(&rand::random::<[u8; 12]>());
        let job = match claim(&shared.queues, &service, &id, &token, spec.lease.get()).await {
            Ok(Some(job)) => job,
            Ok(None) => continue,
            Err(e) => {
                // Left on `processing` without a lease: the reaper returns it.
                tracing::warn!(service = %service, job = %id, error = %e, "could not lease a job");
                continue;
            }
        };
        if told_to_stop(&mode) {
            hand_back(&shared, &service, &id, &token).await;
            break;
        }
        // Before its run starts a job is given back as soon as the shutdown begins; once
        // running, it may finish until the grace deadline.
        let attempt = tokio::select! {
            a = permit_and_start(&shared, &service, &spec, &job.id, &token) => a,
            _ = stopping(&mut mode) => {
                hand_back(&shared, &service, &id, &token).await;
                break;
            }
        };
        let Some(attempt) = attempt else { continue };
        let run = run_job(&shared, &service, &spec, job, attempt, &token);
        tokio::pin!(run);
        tokio::select! {
            _ = &mut run => {
                if told_to_stop(&mode) {
                    shared.tally(|c| c.finished += 1);
                }
            }
            _ = grace_over(&mut mode) => {
                hand_back(&shared, &service, &id, &token).await;
                break;
            }
        }
    }
}

/// Shutdown: puts a held job back at the front of its queue and counts it.
async fn hand_back(shared: &Shared, service: &str, id: &str, token: &str) {
    match give_back(&shared.queues, service, id, token).await {
        Ok(true) => {
            count(service, "requeued");
            metrics::counter!(crate::names::M_SHUTDOWN_RETURNED, "service" => service.to_string()).increment(1);
            shared.tally(|c| c.returned += 1);
            tracing::debug!(service, job = %id, "returned a held job to the queue");
        }
        Ok(false) => {
            // Not ours any more: the deadline may have cut the run while its outcome was
            // being recorded (then it is final), or the lease was lost.
            let done = shared.queues.get(id).await.ok().flatten().is_some_and(|r| r.status.is_final());
            if done {
                shared.tally(|c| c.finished += 1);
            } else {
                shared.tally(|c| c.stranded += 1);
                tracing::warn!(service, job = %id, "could not return a job at shutdown: its lease was lost");
            }
        }
        Err(e) => {
            shared.tally(|c| c.stranded += 1);
            tracing::warn!(service, job = %id, error = %e, "could not return a job at shutdown; its lease will expire");
        }
    }
}

/// Waits for a start permit (renewing the lease) and counts the run: its attempt number,
/// `None` when the job is not ours to run (lost, dead-lettered).
async fn permit_and_start(shared: &Shared, service: &str, spec: &QueueSpec, id: &str, token: &str) -> Option<u32> {
    let queues = &shared.queues;
    let lease = spec.lease.get();
    let renew_every = (lease / 3).max(Duration::from_millis(100));
    let permit = PolicySpec {
        algorithm: Algorithm::SlidingLog,
        limit: u64::from(spec.rate.count),
        window: spec.rate.per,
        burst: 0,
        key: Default::default(),
        failure_mode: FailureMode::Closed,
    };
    let key = format!("queue:{service}");
    loop {
        let check = Check { policy: PERMIT_POLICY, spec: &permit, key: &key };
        let wait = match shared.limiter.decide_strict(std::slice::from_ref(&check)).await {
            Ok(o) if o.allowed => break,
            Ok(o) => Duration::from_millis(o.verdicts.first().map_or(100, |v| v.retry_ms.max(1))),
            Err(_) => Duration::from_millis(500),
        };
        tokio::time::sleep(wait.min(renew_every)).await;
        if !matches!(renew(queues, service, id, token, lease).await, Ok(true)) {
            return None; // Lost (or unknown): the reaper owns it now.
        }
    }
    match start(queues, service, id, token, spec, &shared.node).await {
        Ok(Start::Run(n)) => {
            count(service, "started");
            Some(n)
        }
        Ok(Start::Dead) => {
            count(service, "dead");
            None
        }
        Ok(Start::Lost) | Err(_) => None,
    }
}

/// Runs a started job (renewing the lease) and records the outcome.
async fn run_job(shared: &Shared, service: &str, spec: &QueueSpec, job: JobRequest, attempt: u32, token: &str) {
    let queues = &shared.queues;
    let lease = spec.lease.get();
    let renew_every = (lease / 3).max(Duration::from_millis(100));
    let job = Arc::new(JobRequest { attempt, ..job });
    let route = queues.routes().load().get(service).cloned();
    let outcome = match route {
        Some(route) => {
            let run = shared.runner.run(Arc::clone(&job), route);
            tokio::pin!(run);
            loop {
                tokio::select! {
                    out = &mut run => break out,
                    _ = tokio::time::sleep(renew_every) => {
                        let _ = renew(queues, service, &job.id, token, lease).await;
                    }
                }
            }
        }
        None => RunOutcome::Failed(format!("service {service:?} no longer exists")),
    };
    let finish = classify(&outcome, attempt, spec.max_attempts);
    let (result, error) = match &outcome {
        RunOutcome::Answered(r) => (Some(r), String::new()),
        RunOutcome::Failed(e) => (None, e.clone()),
    };
    match finish_job(queues, service, &job.id, token, finish, result, &error, spec.result_ttl.get()).await {
        Ok(applied) => {
            let label = match applied.as_str() {
                "succeeded" => "succeeded",
                "failed" => "failed",
                "retry" => "retried",
                "dead" => "dead",
                _ => "late",
            };
            count(service, label);
        }
        Err(e) => {
            tracing::warn!(service, job = %job.id, error = %e, "could not record a job outcome; it will run again")
        }
    }
}

async fn claim(
    q: &Queues,
    service: &str,
    id: &str,
    token: &str,
    lease: Duration,
) -> Result<Option<JobRequest>, StoreError> {
    match q.backend() {
        Backend::Redis(r) => r.claim(service, id, token, lease).await,
        Backend::Memory(m) => Ok(m.claim(service, id, token, lease)),
    }
}

async fn renew(q: &Queues, service: &str, id: &str, token: &str, lease: Duration) -> Result<bool, StoreError> {
    match q.backend() {
        Backend::Redis(r) => r.renew(service, id, token, lease).await,
        Backend::Memory(m) => Ok(m.renew(id, token, lease)),
    }
}

async fn start(
    q: &Queues,
    service: &str,
    id: &str,
    token: &str,
    spec: &QueueSpec,
    node: &str,
) -> Result<Start, StoreError> {
    match q.backend() {
        Backend::Redis(r) => r.start(service, id, token, spec, node).await,
        Backend::Memory(m) => Ok(m.start(service, id, token, spec)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish_job(
    q: &Queues,
    service: &str,
    id: &str,
    token: &str,
    finish: super::Finish,
    result: Option<&super::JobResult>,
    error: &str,
    ttl: Duration,
) -> Result<String, StoreError> {
    match q.backend() {
        Backend::Redis(r) => r.finish(service, id, token, finish, result, error, ttl).await,
        Backend::Memory(m) => Ok(m.finish(service, id, token, finish, result, ttl).to_string()),
    }
}

async fn give_back(q: &Queues, service: &str, id: &str, token: &str) -> Result<bool, StoreError> {
    match q.backend() {
        Backend::Redis(r) => r.give_back(service, id, token).await,
        Backend::Memory(m) => Ok(m.give_back(service, id, token)),
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
