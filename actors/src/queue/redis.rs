//! The Redis backend of the queue: the reliable-queue pattern over one service's lists
//! (`pending` → `BLMOVE` → `processing`, lease keys with a TTL, `dead`), every change one
//! Lua script over keys sharing the hash tag `{q:<service>}`.
//!
//! Request-path and worker calls go through `Store` (multiplexed, bounded by
//! `command_timeout`); only `BLMOVE` runs on a worker's own connection (`RedisTaker`),
//! since a blocking command would stall every other command on a shared one.

use std::time::Duration;

use super::model::{Finish, JobRecord, JobRequest, JobResult, JobStatus, NewJob, QueueStats, idempotency_digest};
use super::{Enqueued, Start};
use crate::redis::{Keys, Store, StoreError, ToRedisArgsDyn, scripts};
use crate::spec::QueueSpec;

/// Most dead letters one admin listing returns.
pub const DEAD_LIST_MAX: usize = 1000;

/// The Redis queue operations (cheap to clone).
#[derive(Clone)]
pub struct RedisQueue {
    store: Store,
}

fn ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

fn parse_record(id: String, f: &[String]) -> Option<JobRecord> {
    let [status, attempts, consumer, result, rest @ ..] = f else { return None };
    Some(JobRecord {
        id,
        status: JobStatus::parse(status)?,
        attempts: attempts.parse().unwrap_or(0),
        consumer: consumer.clone(),
        position: rest.first().and_then(|p| p.parse().ok()).filter(|p| *p > 0),
        result: JobResult::from_stored(result),
    })
}

impl RedisQueue {
    /// Queue operations over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    fn keys(&self) -> &Keys {
        self.store.keys()
    }

    /// A dedicated connection for one worker's `BLMOVE`s on `service`.
    pub fn taker(&self, service: &str) -> RedisTaker {
        RedisTaker {
            store: self.store.clone(),
            moved: self.store.moved(),
            pending: self.keys().queue_pending(service),
            processing: self.keys().queue_processing(service),
            conn: None,
        }
    }

    /// Runs the enqueue script.
    pub async fn enqueue(
        &self,
        service: &str,
        spec: &QueueSpec,
        id: &str,
        job: &NewJob,
    ) -> Result<Enqueued, StoreError> {
        let k = self.keys();
        let job_key = k.queue_job(service, id);
        let idem = job
            .idempotency_key
            .as_ref()
            .map(|key| k.queue_idempotency(service, &idempotency_digest(&job.consumer, key)));
        let keys = [k.queue_pending(service), job_key.clone(), idem.clone().unwrap_or(job_key)];
        let headers = serde_json::to_string(&job.headers).unwrap_or_else(|_| "[]".into());
        let now = crate::now_unix_ms();
        let (max_depth, has_idem, ttl) =
            (spec.max_depth, if idem.is_some() { "1" } else { "0" }, ms(spec.result_ttl.get()));
        let prefix = k.queue_job_prefix(service);
        let idem_name = idem.unwrap_or_default();
        let args: [&dyn ToRedisArgsDyn; 29] = [
            &id,
            &max_depth,
            &prefix,
            &has_idem,
            &ttl,
            &"service",
            &service,
            &"consumer",
            &job.consumer,
            &"method",
            &job.method,
            &"path",
            &job.path,
            &"query",
            &job.query,
            &"headers",
            &headers,
            &"body",
            &job.body,
            &"request_id",
            &job.request_id,
            &"enqueued_at",
            &now,
            &"status",
            &"queued",
            &"attempts",
            &0u32,
            &"idem",
            &idem_name,
        ];
        let (verdict, id, depth): (String, String, u64) =
            self.store.script(&scripts::QUEUE_ENQUEUE, &keys, &args).await?;
        Ok(match verdict.as_str() {
            "new" => Enqueued::New { id, depth },
            "duplicate" => Enqueued::Duplicate { id, depth },
            _ => Enqueued::Full { depth },
        })
    }

    /// One job's state, `None` when it does not exist (or its result expired).
    pub async fn get(&self, service: &str, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let k = self.keys();
        let keys = [k.queue_job(service, id), k.queue_pending(service)];
        let f: Vec<String> = self.store.script(&scripts::QUEUE_GET, &keys, &[&id]).await?;
        Ok(if f.is_empty() { None } else { parse_record(id.to_string(), &f) })
    }

    /// Depth, processing and dead counts.
    pub async fn stats(&self, service: &str) -> Result<QueueStats, StoreError> {
        let k = self.keys();
        let mut pipe = redis::pipe();
        pipe.cmd("LLEN").arg(k.queue_pending(service));
        pipe.cmd("LLEN").arg(k.queue_processing(service));
        pipe.cmd("LLEN").arg(k.queue_dead(service));
        let (depth, processing, dead): (u64, u64, u64) = self.store.pipeline(&pipe).await?;
        Ok(QueueStats { service: service.to_string(), depth, processing, dead })
    }

    /// The dead letters, newest first.
    pub async fn dead(&self, service: &str) -> Result<Vec<JobRecord>, StoreError> {
        let k = self.keys();
        let prefix = k.queue_job_prefix(service);
        let flat: Vec<String> =
            self.store.script(&scripts::QUEUE_LIST, &[k.queue_dead(service)], &[&prefix, &DEAD_LIST_MAX]).await?;
        Ok(flat.chunks_exact(5).filter_map(|c| parse_record(c[0].clone(), &c[1..])).collect())
    }

    /// Re-queues a dead letter: its state right after (`None` when `id` is not one).
    pub async fn retry_dead(&self, service: &str, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let k = self.keys();
        let keys = [k.queue_job(service, id), k.queue_pending(service), k.queue_dead(service)];
        let f: Vec<String> = self.store.script(&scripts::QUEUE_RETRY, &keys, &[&id]).await?;
        let [consumer, position] = f.as_slice() else { return Ok(None) };
        Ok(Some(JobRecord {
            id: id.to_string(),
            status: JobStatus::Queued,
            attempts: 0,
            consumer: consumer.clone(),
            position: position.parse().ok(),
            result: None,
        }))
    }

    /// Takes the lease of a job just moved to processing and reads its request.
    pub async fn claim(
        &self,
        service: &str,
        id: &str,
        token: &str,
        lease: Duration,
    ) -> Result<Option<JobRequest>, StoreError> {
        let k = self.keys();
        let keys = [k.queue_job(service, id), k.queue_lease(service, id), k.queue_processing(service)];
        let f: Vec<Option<Vec<u8>>> =
            self.store.script(&scripts::QUEUE_CLAIM, &keys, &[&token, &ms(lease), &id]).await?;
        if f.len() < 8 {
            return Ok(None);
        }
        let text = |i: usize| f[i].as_deref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        let headers: Vec<(String, String)> = serde_json::from_str(&text(4)).unwrap_or_default();
        let request = NewJob {
            consumer: text(0),
            method: text(1),
            path: text(2),
            query: text(3),
            headers,
            body: f[5].clone().unwrap_or_default(),
            request_id: text(6),
            idempotency_key: None,
        };
        let attempt = text(7).parse().unwrap_or(0);
        Ok(Some(JobRequest { id: id.to_string(), service: service.to_string(), request, attempt }))
    }

    /// Extends the lease; false when it is no longer ours.
    pub async fn renew(&self, service: &str, id: &str, token: &str, lease: Duration) -> Result<bool, StoreError> {
        let n: i64 = self
            .store
            .script(&scripts::QUEUE_RENEW, &[self.keys().queue_lease(service, id)], &[&token, &ms(lease)])
            .await?;
        Ok(n == 1)
    }

    /// Counts a run and marks it running (or dead-letters a job out of attempts).
    pub async fn start(
        &self,
        service: &str,
        id: &str,
        token: &str,
        spec: &QueueSpec,
        node: &str,
    ) -> Result<Start, StoreError> {
        let k = self.keys();
        let keys =
            [k.queue_job(service, id), k.queue_lease(service, id), k.queue_processing(service), k.queue_dead(service)];
        let now = crate::now_unix_ms();
        let args: [&dyn ToRedisArgsDyn; 6] = [&token, &ms(spec.lease.get()), &spec.max_attempts, &id, &node, &now];
        let (verdict, attempts): (String, u32) = self.store.script(&scripts::QUEUE_START, &keys, &args).await?;
        Ok(match verdict.as_str() {
            "run" => Start::Run(attempts),
            "dead" => Start::Dead,
            _ => Start::Lost,
        })
    }

    /// Records the end of a run; answers what was applied (`late` / `lost` when not ours).
    #[allow(clippy::too_many_arguments)]
    pub async fn finish(
        &self,
        service: &str,
        id: &str,
        token: &str,
        finish: Finish,
        result: Option<&JobResult>,
        error: &str,
        result_ttl: Duration,
    ) -> Result<String, StoreError> {
        let k = self.keys();
        let keys = [
            k.queue_job(service, id),
            k.queue_lease(service, id),
            k.queue_pending(service),
            k.queue_processing(service),
            k.queue_dead(service),
        ];
        let stored = result.map(JobResult::to_stored).unwrap_or_default();
        let now = crate::now_unix_ms();
        let args: [&dyn ToRedisArgsDyn; 7] = [&token, &id, &finish.as_str(), &stored, &ms(result_ttl), &error, &now];
        self.store.script(&scripts::QUEUE_FINISH, &keys, &args).await
    }

    /// Gives a held job back to the front of the queue.
    pub async fn give_back(&self, service: &str, id: &str, token: &str) -> Result<bool, StoreError> {
        let k = self.keys();
        let keys = [
            k.queue_job(service, id),
            k.queue_lease(service, id),
            k.queue_pending(service),
            k.queue_processing(service),
        ];
        let n: i64 = self.store.script(&scripts::QUEUE_RETURN, &keys, &[&token, &id]).await?;
        Ok(n == 1)
    }

    /// Ids on the processing list without a lease.
    pub async fn leaseless(&self, service: &str) -> Result<Vec<String>, StoreError> {
        let k = self.keys();
        let prefix = k.queue_lease_prefix(service);
        self.store.script(&scripts::QUEUE_LEASELESS, &[k.queue_processing(service)], &[&prefix]).await
    }

    /// Returns leaseless jobs to the queue (or the dead letters): `(requeued, dead)`.
    pub async fn reap(&self, service: &str, ids: &[String], max_attempts: u32) -> Result<(u64, u64), StoreError> {
        if ids.is_empty() {
            return Ok((0, 0));
        }
        let k = self.keys();
        let keys = [k.queue_pending(service), k.queue_processing(service), k.queue_dead(service)];
        let (job_prefix, lease_prefix, now) =
            (k.queue_job_prefix(service), k.queue_lease_prefix(service), crate::now_unix_ms());
        let mut args: Vec<&dyn ToRedisArgsDyn> = vec![&job_prefix, &lease_prefix, &max_attempts, &now];
        args.extend(ids.iter().map(|i| i as &dyn ToRedisArgsDyn));
        self.store.script(&scripts::QUEUE_REAP, &keys, &args).await
    }
}

/// One worker's dedicated connection for `BLMOVE pending processing`.
pub struct RedisTaker {
    store: Store,
    moved: tokio::sync::watch::Receiver<u64>,
    pending: String,
    processing: String,
    conn: Option<crate::redis::Dedicated>,
}

impl RedisTaker {
    /// Waits up to `block` for a job id and moves it to processing; `None` when none came.
    pub async fn take(&mut self, block: Duration) -> Result<Option<String>, StoreError> {
        // After a Sentinel failover the old connection points at a replica: reopen.
        if self.moved.has_changed().unwrap_or(false) {
            self.moved.mark_unchanged();
            self.conn = None;
        }
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.store.dedicated().await?,
        };
        let mut cmd = redis::cmd("BLMOVE");
        cmd.arg(&self.pending).arg(&self.processing).arg("RIGHT").arg("LEFT").arg(block.as_secs_f64());
        // On any error the connection is dropped: a BLMOVE we stopped waiting for must not
        // deliver its job to a connection nobody reads (the reaper would return it anyway).
        let id: Option<String> = tokio::time::timeout(block + Duration::from_secs(2), cmd.query_async(&mut conn))
            .await
            .map_err(|_| StoreError::Timeout)??;
        self.conn = Some(conn);
        Ok(id)
    }
}
