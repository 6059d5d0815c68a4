//! Usage analytics (SPEC §12): the request path hands each finished request to the
//! `AnalyticsActor` with `try_send` (never waiting, never failing: a full mailbox counts a
//! drop in `gateway_analytics_dropped_total`). The actor folds records into per-minute
//! counters at once and, in Redis mode, flushes every `flush_interval` (or every `batch`
//! records) in one pipeline: stream entries (`XADD … MAXLEN ~`) and `HINCRBY`s on the
//! cluster-wide minute hashes. In memory mode the counters stay in a ring of minutes.
//!
//! Redis unreachable: counters keep accumulating in memory (at most `MAX_BACKLOG_MINUTES`
//! minutes; older ones are dropped and counted) and are flushed when Redis answers again;
//! the raw stream entries of a failed flush are dropped and counted. `analytics` shows in
//! `/health` `degraded` meanwhile. No actix-web types here.

pub mod model;
pub mod report;
pub mod store;

use std::time::Duration;

use actix::prelude::*;

pub use model::{LimiterResult, Record};
pub use report::{Query, Report};
pub use store::AnalyticsStore;

use crate::names::M_ANALYTICS_DROPPED;
use crate::status::NodeStatus;
use model::{Aggregates, Caps};

/// Distinct endpoints (and consumers) a node records per minute before folding into `other`.
pub const MAX_DISTINCT: usize = 1000;
/// Unflushed minutes kept while Redis is unreachable.
pub const MAX_BACKLOG_MINUTES: u64 = 60;
/// Minutes kept in memory mode at most (whatever the retention).
pub const MAX_MEMORY_MINUTES: u64 = 24 * 60;

/// `[analytics]` settings.
#[derive(Debug, Clone)]
pub struct AnalyticsSettings {
    /// Approximate length cap of the Redis stream.
    pub stream_max_len: u64,
    /// How long minute aggregates are kept.
    pub retention: Duration,
    /// Records per flush (a full batch flushes before the interval).
    pub batch: usize,
    /// Longest time between flushes.
    pub flush_interval: Duration,
}

/// Where the counters go.
pub enum Backend {
    /// This process only (memory mode): a ring of minutes.
    Memory,
    /// Cluster-wide in Redis.
    Redis(Box<AnalyticsStore>),
}

/// The analytics actor (one per node).
pub struct AnalyticsActor {
    node: std::sync::Arc<str>,
    settings: AnalyticsSettings,
    backend: Backend,
    status: NodeStatus,
    /// Memory mode: every minute kept; Redis mode: counters not yet flushed.
    counters: Aggregates,
    /// Records counted since the last flush or query, folded but not yet in `counters`.
    pending: model::Pending,
    stream: Vec<Record>,
    caps: Caps,
    flushing: bool,
}

impl AnalyticsActor {
    /// An actor for node `node`.
    pub fn new(node: std::sync::Arc<str>, settings: AnalyticsSettings, backend: Backend, status: NodeStatus) -> Self {
        Self {
            node,
            settings,
            backend,
            status,
            counters: Aggregates::default(),
            pending: model::Pending::default(),
            stream: Vec::new(),
            caps: Caps::new(MAX_DISTINCT),
            flushing: false,
        }
    }

    fn mailbox(&self) -> usize {
        (self.settings.batch * 32).clamp(1024, 65_536)
    }

    /// Moves the folded records into `counters`.
    fn settle(&mut self) {
        if !self.pending.is_empty() {
            self.pending.drain_into(&mut self.counters, &mut self.caps);
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        self.settle();
        let Backend::Redis(store) = &self.backend else {
            let oldest = now_minute().saturating_sub(memory_minutes(&self.settings));
            self.counters.prune_before(oldest);
            return;
        };
        if self.flushing {
            return;
        }
        self.flushing = true;
        let (store, node) = (store.clone(), self.node.clone());
        let records = std::mem::take(&mut self.stream);
        let counters = std::mem::take(&mut self.counters);
        let fut = async move {
            let result = store.flush(&node, &records, &counters).await;
            (result, records.len(), counters)
        };
        ctx.spawn(fut.into_actor(self).map(|(result, sent, counters), act, _| {
            act.flushing = false;
            match result {
                Ok(()) => act.status.set_degraded("analytics", false),
                Err(e) => {
                    if !act.status.degraded().contains(&"analytics") {
                        tracing::warn!(error = %e, "analytics flush failed; keeping counters in memory");
                    }
                    act.status.set_degraded("analytics", true);
                    metrics::counter!(M_ANALYTICS_DROPPED, "reason" => "redis").increment(sent as u64);
                    act.counters.merge(counters);
                    let lost = act.counters.prune_before(now_minute().saturating_sub(MAX_BACKLOG_MINUTES));
                    metrics::counter!(M_ANALYTICS_DROPPED, "reason" => "redis").increment(lost);
                }
            }
        }));
    }
}

fn now_minute() -> u64 {
    crate::now_unix() / 60
}

fn memory_minutes(s: &AnalyticsSettings) -> u64 {
    (s.retention.as_secs() / 60).clamp(1, MAX_MEMORY_MINUTES)
}

impl Actor for AnalyticsActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox());
        ctx.run_interval(self.settings.flush_interval, |act, ctx| act.flush(ctx));
    }
}

impl AnalyticsActor {
    fn add(&mut self, r: Record, ctx: &mut Context<Self>) {
        self.pending.fold(&r);
        if let Backend::Redis(_) = self.backend {
            if self.stream.len() >= self.settings.batch * 8 {
                // A flush is stuck: raw entries are the first thing to give up.
                metrics::counter!(M_ANALYTICS_DROPPED, "reason" => "redis").increment(1);
                return;
            }
            self.stream.push(r);
            if self.stream.len() >= self.settings.batch {
                self.flush(ctx);
            }
        }
    }
}

impl Handler<Record> for AnalyticsActor {
    type Result = ();

    fn handle(&mut self, r: Record, ctx: &mut Context<Self>) {
        self.add(r, ctx);
    }
}

/// Records gathered on one worker thread (see `Analytics::record`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Batch(pub Vec<Record>);

impl Handler<Batch> for AnalyticsActor {
    type Result = ();

    fn handle(&mut self, b: Batch, ctx: &mut Context<Self>) {
        for r in b.0 {
            self.add(r, ctx);
        }
    }
}

/// Records a worker thread gathers before handing them to the actor in one message: one
/// cross-thread wake-up per batch instead of per request.
const LOCAL_BATCH: usize = 128;
/// A worker's partial batch is handed over at least this often.
const LOCAL_FLUSH: Duration = Duration::from_millis(250);

thread_local! {
    static LOCAL: std::cell::RefCell<Local> = const { std::cell::RefCell::new(Local { batches: Vec::new(), timer: false }) };
}

struct Local {
    /// Per actor: its address and the records waiting for it.
    batches: Vec<(Addr<AnalyticsActor>, Vec<Record>)>,
    timer: bool,
}

fn send_batch(addr: &Addr<AnalyticsActor>, records: Vec<Record>) {
    let n = records.len() as u64;
    if addr.try_send(Batch(records)).is_err() {
        metrics::counter!(M_ANALYTICS_DROPPED, "reason" => "mailbox").increment(n);
    }
}

/// Hands every partial batch of this thread over.
fn flush_local() {
    let pending: Vec<_> = LOCAL.with(|l| {
        l.borrow_mut()
            .batches
            .iter_mut()
            .filter(|(_, v)| !v.is_empty())
            .map(|(a, v)| (a.clone(), std::mem::take(v)))
            .collect()
    });
    for (addr, records) in pending {
        send_batch(&addr, records);
    }
}

/// Build the `/admin/analytics` report.
#[derive(Message)]
#[rtype(result = "Report")]
pub struct QueryAnalytics(pub Query);

impl Handler<QueryAnalytics> for AnalyticsActor {
    type Result = ResponseFuture<Report>;

    fn handle(&mut self, msg: QueryAnalytics, _: &mut Context<Self>) -> Self::Result {
        self.settle();
        let q = msg.0;
        let pending: std::collections::BTreeMap<_, _> =
            self.counters.minutes.range(q.minutes()).map(|(m, f)| (*m, f.clone())).collect();
        let store = match &self.backend {
            Backend::Memory => return Box::pin(async move { report::build(&q, &pending, "memory") }),
            Backend::Redis(s) => (**s).clone(),
        };
        Box::pin(async move {
            match store.read(q.minutes()).await {
                Ok(minutes) => {
                    // Counters this node has not flushed yet belong in the answer too.
                    let mut all = Aggregates { minutes };
                    all.merge(Aggregates { minutes: pending });
                    report::build(&q, &all.minutes, "cluster")
                }
                Err(e) => {
                    tracing::debug!(error = %e, "analytics read failed; answering from this node");
                    report::build(&q, &pending, "local")
                }
            }
        })
    }
}

/// The request path's handle: records are offered, never awaited.
#[derive(Clone, Default)]
pub struct Analytics {
    addr: Option<Addr<AnalyticsActor>>,
}

impl Analytics {
    /// Starts the actor (`None` = analytics disabled: records are ignored).
    pub fn start(actor: Option<AnalyticsActor>) -> Self {
        Self { addr: actor.map(Actor::start) }
    }

    /// Whether records are collected.
    pub fn enabled(&self) -> bool {
        self.addr.is_some()
    }

    /// Hands a record over without waiting: gathered per thread and sent in batches of
    /// `LOCAL_BATCH` (at least every `LOCAL_FLUSH`); a full mailbox counts drops.
    pub fn record(&self, r: Record) {
        let Some(addr) = &self.addr else { return };
        if tokio::runtime::Handle::try_current().is_err() {
            // Not on a runtime thread (no timer to flush a partial batch): send at once.
            send_batch(addr, vec![r]);
            return;
        }
        let (full, start_timer) = LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            let slot = match l.batches.iter().position(|(a, _)| a == addr) {
                Some(i) => i,
                None => {
                    l.batches.push((addr.clone(), Vec::with_capacity(LOCAL_BATCH)));
                    l.batches.len() - 1
                }
            };
            let batch = &mut l.batches[slot].1;
            batch.push(r);
            let full = (batch.len() >= LOCAL_BATCH).then(|| std::mem::replace(batch, Vec::with_capacity(LOCAL_BATCH)));
            let start_timer = !l.timer;
            l.timer = true;
            (full, start_timer)
        });
        if let Some(records) = full {
            send_batch(addr, records);
        }
        if start_timer {
            // This thread's runtime (an actix arbiter) runs the timer; it ends with it.
            tokio::task::spawn_local(async {
                loop {
                    tokio::time::sleep(LOCAL_FLUSH).await;
                    flush_local();
                }
            });
        }
    }

    /// The report for `q` (`None` when analytics is disabled or the actor is gone).
    pub async fn query(&self, q: Query, wait: Duration) -> Option<Report> {
        self.addr.as_ref()?.send(QueryAnalytics(q)).timeout(wait).await.ok()
    }
}
