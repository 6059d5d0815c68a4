//! The in-process queue of memory mode: the same lists, leases, attempts, dead letters and
//! idempotency keys as the Redis backend, for one node. Each operation is one short
//! critical section (the analogue of one Lua script); workers wait on a `Notify`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::model::{Finish, JobRecord, JobRequest, JobResult, JobStatus, NewJob, QueueStats, idempotency_digest};
use super::{Enqueued, Start};
use crate::spec::QueueSpec;

#[derive(Default)]
struct Lists {
    /// Newest at the front, taken from the back (like LPUSH / BLMOVE RIGHT).
    pending: VecDeque<String>,
    processing: Vec<String>,
    dead: VecDeque<String>,
    notify: Arc<Notify>,
}

struct Job {
    request: NewJob,
    status: JobStatus,
    attempts: u32,
    result: Option<JobResult>,
    /// Holder token and lease deadline (ms).
    lease: Option<(String, u64)>,
    /// Set once the result is final (ms).
    expires_at: Option<u64>,
    idem: Option<String>,
}

#[derive(Default)]
struct Inner {
    lists: HashMap<String, Lists>,
    jobs: HashMap<String, Job>,
    /// service + digest → (job id, expiry ms)
    idem: HashMap<String, (String, u64)>,
}

impl Inner {
    fn lists(&mut self, service: &str) -> &mut Lists {
        self.lists.entry(service.to_string()).or_default()
    }

    fn live_job(&mut self, id: &str, now: u64) -> Option<&mut Job> {
        if self.jobs.get(id).and_then(|j| j.expires_at).is_some_and(|e| e <= now) {
            self.jobs.remove(id);
        }
        self.jobs.get_mut(id)
    }
}

/// The memory-mode queue (shared by the request path and the workers).
#[derive(Default)]
pub struct MemoryQueue {
    inner: Mutex<Inner>,
}

fn ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

impl MemoryQueue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enqueues with the same checks as the Redis script.
    pub fn enqueue(&self, service: &str, spec: &QueueSpec, id: &str, job: &NewJob) -> Enqueued {
        let now = crate::now_unix_ms();
        let mut g = self.lock();
        let depth = g.lists(service).pending.len() as u64;
        let idem =
            job.idempotency_key.as_ref().map(|k| format!("{service}\u{1f}{}", idempotency_digest(&job.consumer, k)));
        if let Some((existing, until)) = idem.as_ref().and_then(|k| g.idem.get(k)).cloned()
            && until > now
            && g.live_job(&existing, now).is_some()
        {
            return Enqueued::Duplicate { id: existing, depth };
        }
        if depth >= spec.max_depth {
            return Enqueued::Full { depth };
        }
        if let Some(k) = &idem {
            g.idem.insert(k.clone(), (id.to_string(), now + ms(spec.result_ttl.get())));
        }
        g.jobs.insert(
            id.to_string(),
            Job {
                request: job.clone(),
                status: JobStatus::Queued,
                attempts: 0,
                result: None,
                lease: None,
                expires_at: None,
                idem,
            },
        );
        let lists = g.lists(service);
        lists.pending.push_front(id.to_string());
        lists.notify.notify_one();
        Enqueued::New { id: id.to_string(), depth: depth + 1 }
    }

    /// One job's state.
    pub fn get(&self, service: &str, id: &str) -> Option<JobRecord> {
        let now = crate::now_unix_ms();
        let mut g = self.lock();
        let pos = g.lists(service).pending.iter().position(|j| j == id).map(|i| i as u64);
        let len = g.lists(service).pending.len() as u64;
        let job = g.live_job(id, now)?;
        Some(JobRecord {
            id: id.to_string(),
            status: job.status,
            attempts: job.attempts,
            consumer: job.request.consumer.clone(),
            position: (job.status == JobStatus::Queued).then(|| pos.map_or(1, |p| len - p)),
            result: job.result.clone(),
        })
    }

    /// Counts.
    pub fn stats(&self, service: &str) -> QueueStats {
        let mut g = self.lock();
        let l = g.lists(service);
        QueueStats {
            service: service.to_string(),
            depth: l.pending.len() as u64,
            processing: l.processing.len() as u64,
            dead: l.dead.len() as u64,
        }
    }

    /// Dead letters, newest first.
    pub fn dead(&self, service: &str) -> Vec<JobRecord> {
        let ids: Vec<String> =
            self.lock().lists(service).dead.iter().take(super::redis::DEAD_LIST_MAX).cloned().collect();
        ids.iter().filter_map(|id| self.get(service, id)).collect()
    }

    /// Re-queues a dead letter with attempts reset: its state right after.
    pub fn retry_dead(&self, service: &str, id: &str) -> Option<JobRecord> {
        let mut g = self.lock();
        let lists = g.lists(service);
        let i = lists.dead.iter().position(|j| j == id)?;
        lists.dead.remove(i);
        lists.pending.push_front(id.to_string());
        lists.notify.notify_one();
        let position = lists.pending.len() as u64;
        let job = g.jobs.get_mut(id)?;
        job.status = JobStatus::Queued;
        job.attempts = 0;
        job.result = None;
        job.expires_at = None;
        Some(JobRecord {
            id: id.to_string(),
            status: JobStatus::Queued,
            attempts: 0,
            consumer: job.request.consumer.clone(),
            position: Some(position),
            result: None,
        })
    }

    /// The wake-up signal of a service's workers.
    pub fn notifier(&self, service: &str) -> Arc<Notify> {
        Arc::clone(&self.lock().lists(service).notify)
    }

    /// Moves the oldest waiting job to processing (the `BLMOVE`).
    pub fn take_now(&self, service: &str) -> Option<String> {
        let mut g = self.lock();
        let lists = g.lists(service);
        let id = lists.pending.pop_back()?;
        lists.processing.push(id.clone());
        Some(id)
    }

    /// Takes the lease and reads the request.
    pub fn claim(&self, service: &str, id: &str, token: &str, lease: Duration) -> Option<JobRequest> {
        let now = crate::now_unix_ms();
        let mut g = self.lock();
        let runnable = g.live_job(id, now).is_some_and(|j| !j.status.is_final());
        if !runnable {
            g.lists(service).processing.retain(|j| j != id);
            return None;
        }
        let job = g.jobs.get_mut(id)?;
        job.lease = Some((token.to_string(), now + ms(lease)));
        Some(JobRequest { id: id.into(), service: service.into(), request: job.request.clone(), attempt: job.attempts })
    }

    /// Extends the lease.
    pub fn renew(&self, id: &str, token: &str, lease: Duration) -> bool {
        let now = crate::now_unix_ms();
        let mut g = self.lock();
        match g.jobs.get_mut(id).and_then(|j| j.lease.as_mut()) {
            Some((t, until)) if t == token && *until > now => {
                *until = now + ms(lease);
                true
            }
            _ => false,
        }
    }

    fn holds(job: &Job, token: &str, now: u64) -> bool {
        job.lease.as_ref().is_some_and(|(t, until)| t == token && *until > now)
    }

    /// Counts a run (or dead-letters a job out of attempts).
    pub fn start(&self, service: &str, id: &str, token: &str, spec: &QueueSpec) -> Start {
        let now = crate::now_unix_ms();
        let mut g = self.lock();
        let Some(job) = g.jobs.get_mut(id).filter(|j| Self::holds(j, token, now)) else { return Start::Lost };
        if job.attempts >= spec.max_attempts {
            job.status = JobStatus::Dead;
            job.lease = None;
            let lists = g.lists(service);
            lists.processing.retain(|j| j != id);
            lists.dead.push_front(id.to_string());
            return Start::Dead;
        }
        job.attempts += 1;
        job.status = JobStatus::Running;
        job.lease = Some((token.to_string(), now + ms(spec.lease.get())));
        Start::Run(job.attempts)
    }

    /// Records the end of a run (same rules as `queue_finish.lua`).
    pub fn finish(
        &self,
        service: &str,
        id: &str,
        token: &str,
        finish: Finish,
        result: Option<&JobResult>,
        ttl: Duration,
    ) -> &'static str {
        let now = crate::now_unix_ms();
        let mut g = self.lock();
        let Some(job) = g.jobs.get_mut(id) else {
            g.lists(service).processing.retain(|j| j != id);
            return "lost";
        };
        if job.status.is_final() {
            return "late";
        }
        let mine = Self::holds(job, token, now);
        if !mine && matches!(finish, Finish::Retry | Finish::Dead) {
            return "lost";
        }
        job.lease = None;
        let idem = job.idem.clone();
        match finish {
            Finish::Retry => job.status = JobStatus::Queued,
            Finish::Dead => {
                job.status = JobStatus::Dead;
                job.result = result.cloned();
            }
            Finish::Succeeded | Finish::Failed => {
                job.status = if finish == Finish::Succeeded { JobStatus::Succeeded } else { JobStatus::Failed };
                job.result = result.cloned();
                job.expires_at = Some(now + ms(ttl));
                job.request.body = Vec::new();
            }
        }
        if let Some(entry) = idem.and_then(|k| g.idem.get_mut(&k)) {
            entry.1 = entry.1.max(now + ms(ttl));
        }
        let lists = g.lists(service);
        lists.processing.retain(|j| j != id);
        lists.pending.retain(|j| j != id);
        match finish {
            Finish::Retry => {
                lists.pending.push_front(id.to_string());
                lists.notify.notify_one();
            }
            Finish::Dead => lists.dead.push_front(id.to_string()),
            Finish::Succeeded | Finish::Failed => {}
        }
        finish.as_str()
    }

    /// Gives a held job back to the front of the queue.
    pub fn give_back(&self, service: &str, id: &str, token: &str) -> bool {
        let now = crate::now_unix_ms();
        let mut g = self.lock();
        let Some(job) = g.jobs.get_mut(id).filter(|j| Self::holds(j, token, now)) else { return false };
        job.lease = None;
        // A started run cut short by the shutdown does not count (as in queue_return.lua).
        if job.status == JobStatus::Running {
            job.attempts = job.attempts.saturating_sub(1);
        }
        job.status = JobStatus::Queued;
        let lists = g.lists(service);
        lists.processing.retain(|j| j != id);
        lists.pending.push_back(id.to_string());
        lists.notify.notify_one();
        true
    }

    /// Returns jobs whose lease expired; drops expired results. `(requeued, dead)`.
    pub fn reap(&self, service: &str, max_attempts: u32) -> (u64, u64) {
        let now = crate::now_unix_ms();
        let mut g = self.lock();
        g.jobs.retain(|_, j| j.expires_at.is_none_or(|e| e > now));
        g.idem.retain(|_, (_, until)| *until > now);
        let held: Vec<String> = g.lists(service).processing.clone();
        let (mut requeued, mut dead) = (0, 0);
        for id in held {
            let Some(job) = g.jobs.get_mut(&id) else {
                g.lists(service).processing.retain(|j| *j != id);
                continue;
            };
            if job.lease.as_ref().is_some_and(|(_, until)| *until > now) {
                continue;
            }
            job.lease = None;
            let to_dead = job.attempts >= max_attempts;
            job.status = if to_dead { JobStatus::Dead } else { JobStatus::Queued };
            let lists = g.lists(service);
            lists.processing.retain(|j| *j != id);
            if to_dead {
                lists.dead.push_front(id);
                dead += 1;
            } else {
                lists.pending.push_back(id);
                lists.notify.notify_one();
                requeued += 1;
            }
        }
        (requeued, dead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::HumanDuration;

    fn spec(max_depth: u64, max_attempts: u32) -> QueueSpec {
        let mut s: QueueSpec = serde_json::from_value(serde_json::json!({"match": ["POST /x"]})).expect("valid spec");
        s.max_depth = max_depth;
        s.max_attempts = max_attempts;
        s.lease = HumanDuration::secs(60);
        s
    }

    fn job(consumer: &str, key: Option<&str>) -> NewJob {
        NewJob {
            consumer: consumer.into(),
            method: "POST".into(),
            idempotency_key: key.map(str::to_string),
            ..NewJob::default()
        }
    }

    #[test]
    fn depth_counts_waiting_jobs_and_idempotency_keys_dedupe_per_consumer() {
        let q = MemoryQueue::default();
        let s = spec(2, 3);
        assert!(matches!(q.enqueue("s", &s, "s-1", &job("a", Some("k"))), Enqueued::New { .. }));
        assert_eq!(q.enqueue("s", &s, "s-2", &job("a", Some("k"))), Enqueued::Duplicate { id: "s-1".into(), depth: 1 });
        assert!(matches!(q.enqueue("s", &s, "s-3", &job("b", Some("k"))), Enqueued::New { .. }));
        assert_eq!(q.enqueue("s", &s, "s-4", &job("c", None)), Enqueued::Full { depth: 2 });
        // A running job no longer counts against max_depth.
        let id = q.take_now("s").expect("a job");
        assert_eq!(id, "s-1");
        assert!(matches!(q.enqueue("s", &s, "s-5", &job("c", None)), Enqueued::New { .. }));
        assert_eq!(q.get("s", "s-3").and_then(|r| r.position), Some(1));
        assert_eq!(q.get("s", "s-5").and_then(|r| r.position), Some(2));
    }

    #[test]
    fn failing_runs_end_in_the_dead_letters_and_retry_resets_attempts() {
        let q = MemoryQueue::default();
        let s = spec(10, 2);
        q.enqueue("s", &s, "s-1", &job("a", None));
        for attempt in 1..=2 {
            let id = q.take_now("s").expect("queued");
            assert!(q.claim("s", &id, "t", s.lease.get()).is_some());
            assert_eq!(q.start("s", &id, "t", &s), Start::Run(attempt));
            let finish = if attempt == 2 { Finish::Dead } else { Finish::Retry };
            q.finish("s", &id, "t", finish, None, Duration::from_secs(60));
        }
        let dead = q.dead("s");
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].status, dead[0].attempts), (JobStatus::Dead, 2));
        assert_eq!(q.retry_dead("s", "s-1").map(|r| (r.status, r.attempts)), Some((JobStatus::Queued, 0)));
        let rec = q.get("s", "s-1").expect("job");
        assert_eq!((rec.status, rec.attempts), (JobStatus::Queued, 0));
        assert_eq!(q.stats("s").dead, 0);
    }

    #[test]
    fn a_job_given_back_at_shutdown_goes_first_and_its_cut_run_is_not_counted() {
        let q = MemoryQueue::default();
        let s = spec(10, 3);
        q.enqueue("s", &s, "s-1", &job("a", None));
        q.enqueue("s", &s, "s-2", &job("a", None));
        let id = q.take_now("s").expect("queued");
        assert!(q.claim("s", &id, "t", s.lease.get()).is_some());
        assert_eq!(q.start("s", &id, "t", &s), Start::Run(1));
        assert!(!q.give_back("s", &id, "other"), "only the lease holder gives a job back");
        assert!(q.give_back("s", &id, "t"));
        let rec = q.get("s", &id).expect("job");
        assert_eq!((rec.status, rec.attempts), (JobStatus::Queued, 0));
        assert_eq!(q.take_now("s").as_deref(), Some(id.as_str()), "a returned job is next");
        // Given back before its run started: nothing to take back.
        assert!(q.claim("s", &id, "u", s.lease.get()).is_some());
        assert!(q.give_back("s", &id, "u"));
        assert_eq!(q.get("s", &id).map(|r| r.attempts), Some(0));
    }

    #[test]
    fn an_expired_lease_returns_the_job_with_its_attempts() {
        let q = MemoryQueue::default();
        let s = spec(10, 3);
        q.enqueue("s", &s, "s-1", &job("a", None));
        let id = q.take_now("s").expect("queued");
        q.claim("s", &id, "t", Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(q.start("s", &id, "t", &s), Start::Lost);
        assert_eq!(q.reap("s", 3), (1, 0));
        assert_eq!(q.get("s", "s-1").map(|r| r.status), Some(JobStatus::Queued));
    }
}
