//! Analytics in Redis: one pipeline per flush appends the batch's records to the capped
//! stream and adds the batch's counters to the per-minute hashes (`HINCRBY`, then
//! `EXPIRE` = retention); reads fetch a range of minute hashes with pipelined `HGETALL`s.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::redis::{Store, StoreError};

use super::model::{Aggregates, Minute, Record, template_path};

/// Minute hashes fetched per pipeline on reads.
const READ_CHUNK: usize = 120;

/// The Redis side of the analytics actor.
#[derive(Clone)]
pub struct AnalyticsStore {
    store: Store,
    stream_max_len: u64,
    retention: Duration,
}

impl AnalyticsStore {
    /// Analytics over `store`; the stream keeps about `stream_max_len` entries and minute
    /// hashes expire after `retention`.
    pub fn new(store: Store, stream_max_len: u64, retention: Duration) -> Self {
        Self { store, stream_max_len, retention }
    }

    /// Writes one batch: stream entries and counter increments, in one pipeline.
    pub async fn flush(&self, node: &str, records: &[Record], agg: &Aggregates) -> Result<(), StoreError> {
        let keys = self.store.keys();
        let mut pipe = redis::pipe();
        let stream = keys.analytics_stream();
        for r in records {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&stream).arg("MAXLEN").arg("~").arg(self.stream_max_len).arg("*");
            cmd.arg("at").arg(r.at_ms).arg("node").arg(node);
            cmd.arg("service").arg(r.service.as_deref().unwrap_or(super::model::NO_SERVICE));
            cmd.arg("method").arg(r.method).arg("path").arg(template_path(&r.path)).arg("status").arg(r.status);
            cmd.arg("consumer").arg(r.consumer.as_deref().unwrap_or(""));
            cmd.arg("latency_ms").arg(r.latency_us as f64 / 1000.0);
            cmd.arg("upstream_ms").arg(r.upstream_us.map(|u| (u as f64 / 1000.0).to_string()).unwrap_or_default());
            cmd.arg("cache").arg(r.cache.unwrap_or("")).arg("limiter").arg(r.limiter.as_str());
            pipe.add_command(cmd).ignore();
        }
        let ttl = self.retention.as_secs().max(60);
        for (minute, fields) in &agg.minutes {
            let key = keys.analytics_minute(*minute);
            for (field, n) in fields {
                pipe.cmd("HINCRBY").arg(&key).arg(field).arg(*n).ignore();
            }
            pipe.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
        }
        if records.is_empty() && agg.is_empty() {
            // Nothing to write: a PING tells whether Redis is back.
            pipe.cmd("PING").ignore();
        }
        self.store.pipeline::<()>(&pipe).await
    }

    /// Reads the minute hashes of `minutes`.
    pub async fn read(&self, minutes: std::ops::RangeInclusive<u64>) -> Result<BTreeMap<u64, Minute>, StoreError> {
        let keys = self.store.keys();
        let all: Vec<u64> = minutes.collect();
        let mut out = BTreeMap::new();
        for chunk in all.chunks(READ_CHUNK) {
            let mut pipe = redis::pipe();
            for m in chunk {
                pipe.cmd("HGETALL").arg(keys.analytics_minute(*m));
            }
            let maps: Vec<HashMap<String, u64>> = self.store.pipeline(&pipe).await?;
            for (m, fields) in chunk.iter().zip(maps) {
                if !fields.is_empty() {
                    out.insert(*m, fields);
                }
            }
        }
        Ok(out)
    }
}
