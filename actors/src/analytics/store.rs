//! Analytics in Redis: one pipeline per flush appends the batch's records to the capped
//! stream and adds the batch's counters to the per-minute hashes (`HINCRBY`, then
//! `EXPIRE` = retention); reads fetch a range of minute hashes with pipelined `HGETALL`s.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::redis::{Store, StoreError};

use super::model::{Aggregates, Minute, Record};

/// Minute hashes fetched per pipeline on reads.
const READ_CHUNK: usize = 120;

/// The Redis side of the analytics actor.
#[derive(Clone)]
pub struct AnalyticsStore {
    store: Store,
    stream_max_len: u64,
    retention: Duration,
}

/// Column names of the stream entries' `records` lines (tab-separated, one per request).
pub const STREAM_FIELDS: &str = "at_ms service method path status consumer latency_ms upstream_ms cache limiter";

impl AnalyticsStore {
    /// Analytics over `store`; the stream keeps about `stream_max_len` entries and minute
    /// hashes expire after `retention`.
    pub fn new(store: Store, stream_max_len: u64, retention: Duration) -> Self {
        Self { store, stream_max_len, retention }
    }

    /// Writes one batch: one stream entry and the counter increments, in one pipeline.
    pub async fn flush(&self, node: &str, records: &[Record], agg: &Aggregates) -> Result<(), StoreError> {
        let keys = self.store.keys();
        let mut pipe = redis::pipe();
        let stream = keys.analytics_stream();
        if !records.is_empty() {
            // One entry per flush: the batch's records as tab-separated lines, so the stream
            // costs Redis one command per flush, not one per request.
            let mut lines = String::with_capacity(records.len() * 96);
            // Integers and fixed-point milliseconds written by hand, no `write!`: the
            // formatting machinery was most of this loop's cost, and it runs per request.
            let mut n = itoa::Buffer::new();
            for r in records {
                for part in [
                    n.format(r.at_ms),
                    "\t",
                    r.service.as_deref().unwrap_or(super::model::NO_SERVICE),
                    "\t",
                    r.method,
                    "\t",
                ] {
                    lines.push_str(part);
                }
                super::model::write_template_path(&mut lines, &r.path);
                lines.push('\t');
                lines.push_str(n.format(r.status));
                lines.push('\t');
                lines.push_str(r.consumer.as_deref().unwrap_or(""));
                lines.push('\t');
                write_ms(&mut lines, r.latency_us);
                lines.push('\t');
                if let Some(u) = r.upstream_us {
                    write_ms(&mut lines, u);
                }
                for part in ["\t", r.cache.unwrap_or(""), "\t", r.limiter.as_str(), "\n"] {
                    lines.push_str(part);
                }
            }
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&stream).arg("MAXLEN").arg("~").arg(self.stream_max_len).arg("*");
            cmd.arg("node").arg(node).arg("count").arg(records.len()).arg("fields").arg(STREAM_FIELDS);
            cmd.arg("records").arg(lines);
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

/// `us` microseconds as milliseconds with three decimals (`1234` → `1.234`), as `{:.3}`
/// of `us / 1000.0` prints them.
fn write_ms(out: &mut String, us: u64) {
    out.push_str(itoa::Buffer::new().format(us / 1000));
    let frac = us % 1000;
    out.push('.');
    out.push(char::from(b'0' + (frac / 100) as u8));
    out.push(char::from(b'0' + (frac / 10 % 10) as u8));
    out.push(char::from(b'0' + (frac % 10) as u8));
}

#[cfg(test)]
mod tests {
    #[test]
    fn milliseconds_print_as_float_formatting_did() {
        for us in [0u64, 1, 9, 10, 999, 1000, 1234, 60_000_001, 123_456_789] {
            let mut s = String::new();
            super::write_ms(&mut s, us);
            assert_eq!(s, format!("{:.3}", us as f64 / 1000.0));
        }
    }
}
