//! `CircuitBreaker`: one breaker per upstream instance of every service with
//! `[services.circuit_breaker]` (SPEC §8).
//!
//! The request path reads each endpoint's `CircuitCell` (atomics) and counts outcomes
//! into it; only failures and probe results reach the actor (`do_send`). The actor trips
//! breakers on the failure ratio over a bucketed window or on consecutive failures, and
//! shares every transition through Redis (`circuit.lua`: stored in `gw:{circuit}:breakers`
//! and published as a `circuit` event), so a breaker opened on one node is open on all.
//! Half-open probes are granted by the same script, so the cluster sends
//! `half_open_probes` probes in total. Without Redis (memory mode, or Redis lost) the
//! same state machine runs per node, and the node resyncs when Redis returns.
//!
//! The request path takes one mailbox hop here: `Breakers::probe` asks the actor whether
//! a request may be a half-open probe. An answer that never comes (the mailbox failed)
//! grants no probe: the endpoint stays out of rotation, never counts as closed.
//!
//! The actor runs under `supervise::start`: a panic restarts it in place, with every
//! breaker's state kept and, with Redis, resynced (docs/decisions/actor-supervision.md).

mod store;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use domain::circuit::should_trip;
pub use domain::circuit::{CircuitCell, CircuitState, Machine};
pub use store::CircuitStore;

use crate::balancer::Endpoint;
use crate::names::M_CIRCUIT_STATE;
use crate::now_unix_ms;
use crate::redis::events::BusMessage;
use crate::registry::{RouteTable, RoutesView};
use crate::spec::CircuitBreakerSpec;
use crate::status::NodeStatus;

/// Buckets of the failure-ratio window.
const BUCKETS: usize = 10;
/// Bucket rotation and route-table sync resolution.
const TICK: Duration = Duration::from_millis(100);
/// How long a node waits before asking again for a probe the cluster refused.
const PROBE_RECHECK_MS: u64 = 250;

/// `(service, instance id)`.
type Key = (Arc<str>, Arc<str>);

struct Entry {
    ep: Arc<Endpoint>,
    spec: CircuitBreakerSpec,
    machine: Machine,
    /// Closed buckets, oldest first, as `(requests, failures)`.
    ring: VecDeque<(u32, u32)>,
    rotated: Instant,
}

impl Entry {
    fn new(ep: Arc<Endpoint>, spec: CircuitBreakerSpec) -> Self {
        Self { ep, spec, machine: Machine::default(), ring: VecDeque::with_capacity(BUCKETS), rotated: Instant::now() }
    }

    fn open_for_ms(&self) -> u64 {
        self.spec.open_for.get().as_millis() as u64
    }

    /// `(requests, failures)` over the window, current bucket included.
    fn window(&self) -> (u32, u32) {
        let (t, f) = self.ep.circuit().current();
        self.ring.iter().fold((t, f), |(t, f), (bt, bf)| (t.saturating_add(*bt), f.saturating_add(*bf)))
    }

    fn clear(&mut self) {
        self.ring.clear();
        self.ep.circuit().clear_counts();
    }

    /// Makes the request path see `machine` (`refused`: this node was just refused a
    /// probe, so it waits a little before asking again).
    fn publish(&self, key: &Key, now: u64, refused: bool) {
        let until = match self.machine.state {
            CircuitState::Closed => 0,
            CircuitState::Open => self.machine.until_ms,
            CircuitState::HalfOpen if refused => now + PROBE_RECHECK_MS,
            CircuitState::HalfOpen => 0,
        };
        self.ep.circuit().set(self.machine.state, until);
        metrics::gauge!(M_CIRCUIT_STATE, "service" => key.0.to_string(), "instance" => key.1.to_string())
            .set(self.machine.state.gauge());
    }
}

/// The breaker actor of one node.
pub struct CircuitBreaker {
    routes: RoutesView,
    store: Option<CircuitStore>,
    status: NodeStatus,
    entries: HashMap<Key, Entry>,
    table: Option<Arc<RouteTable>>,
}

impl CircuitBreaker {
    /// Breakers for the services in `routes`; shared through `store` when there is one.
    pub fn new(routes: RoutesView, store: Option<CircuitStore>, status: NodeStatus) -> Self {
        Self { routes, store, status, entries: HashMap::new(), table: None }
    }

    /// Follows the route table: one entry per endpoint of every service with a breaker.
    /// Returns whether entries were added.
    fn sync(&mut self) -> bool {
        let table = self.routes.load_full();
        if self.table.as_ref().is_some_and(|t| Arc::ptr_eq(t, &table)) {
            return false;
        }
        let now = now_unix_ms();
        let mut added = false;
        let mut next = HashMap::with_capacity(self.entries.len());
        for route in table.routes() {
            let Some(spec) = route.spec.circuit_breaker.clone() else { continue };
            for ep in route.pool.endpoints() {
                let key: Key = (Arc::clone(&route.name), Arc::clone(&ep.id));
                let entry = match self.entries.remove(&key) {
                    Some(mut e) => {
                        e.spec = spec.clone();
                        if !Arc::ptr_eq(&e.ep, ep) {
                            // A rebuilt endpoint (new URL or weight): carry the state over.
                            e.ep = Arc::clone(ep);
                            e.publish(&key, now, false);
                        }
                        e
                    }
                    None => {
                        added = true;
                        let e = Entry::new(Arc::clone(ep), spec.clone());
                        e.publish(&key, now, false);
                        e
                    }
                };
                next.insert(key, entry);
            }
        }
        self.entries = next;
        self.table = Some(table);
        added
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.sync() && self.store.is_some() {
            ctx.notify(Resync);
        }
        let now = Instant::now();
        for e in self.entries.values_mut() {
            let bucket = (e.spec.window.get() / BUCKETS as u32).max(TICK);
            if now.duration_since(e.rotated) >= bucket {
                e.ring.push_back(e.ep.circuit().take_bucket());
                while e.ring.len() >= BUCKETS {
                    e.ring.pop_front();
                }
                e.rotated = now;
            }
        }
    }

    /// Takes a state read from Redis (the cluster's truth) for `key`.
    fn adopt(&mut self, key: &Key, m: Machine, refused: bool) {
        let Some(e) = self.entries.get_mut(key) else { return };
        let was = e.machine.state;
        e.machine = m;
        if was != m.state {
            e.clear();
            log_transition(key, was, m.state);
        }
        e.publish(key, now_unix_ms(), refused);
    }

    /// Runs `op` on the shared record and adopts the answer; on failure the node keeps
    /// its local decision and reports itself degraded.
    fn remote(&self, ctx: &mut Context<Self>, key: Key, op: store::Op) {
        let Some(store) = self.store.clone() else { return };
        let Some(spec) = self.entries.get(&key).map(|e| e.spec.clone()) else { return };
        let fut = async move { store.apply(op, &key.0, &key.1, &spec).await.map(|r| (key, r)) };
        ctx.spawn(fut.into_actor(self).map(|r, act, _| match r {
            Ok((key, (granted, m))) => {
                act.status.set_degraded("circuit", false);
                act.adopt(&key, m, !granted && m.state == CircuitState::HalfOpen);
            }
            Err(e) => {
                act.status.set_degraded("circuit", true);
                tracing::warn!(error = %e, "circuit breaker state not shared: redis failed");
            }
        }));
    }

    fn local_probe(&mut self, key: &Key) -> bool {
        let Some(e) = self.entries.get_mut(key) else { return false };
        let now = now_unix_ms();
        let was = e.machine.state;
        let (granted, _) = e.machine.probe(now, e.open_for_ms(), e.spec.half_open_probes);
        if was != e.machine.state {
            log_transition(key, was, e.machine.state);
        }
        e.publish(key, now, !granted);
        granted
    }
}

fn log_transition(key: &Key, from: CircuitState, to: CircuitState) {
    tracing::warn!(service = %key.0, instance = %key.1, from = from.as_str(), to = to.as_str(), "circuit breaker");
}

impl Actor for CircuitBreaker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sync();
        ctx.run_interval(TICK, Self::tick);
    }
}

impl Supervised for CircuitBreaker {
    /// After a panic: each breaker keeps its machine (the actor's decision; a cell only
    /// mirrors it) and shows it again, `started` re-reads the route table and restarts
    /// the tick, and with Redis every breaker is resynced from the cluster's record.
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        let now = now_unix_ms();
        for (key, e) in &self.entries {
            e.publish(key, now, false);
        }
        self.table = None;
        if self.store.is_some() {
            ctx.notify(Resync);
        }
    }
}

/// An ordinary request to `endpoint` failed (connect error, timeout or failure status).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Failure {
    /// Service name.
    pub service: Arc<str>,
    /// The endpoint.
    pub endpoint: Arc<Endpoint>,
    /// Consecutive failures counted by the cell, this one included.
    pub consecutive: u32,
}

impl Handler<Failure> for CircuitBreaker {
    type Result = ();
    fn handle(&mut self, msg: Failure, ctx: &mut Context<Self>) {
        self.sync();
        let key: Key = (msg.service, Arc::clone(&msg.endpoint.id));
        let Some(e) = self.entries.get_mut(&key) else { return };
        if e.machine.state != CircuitState::Closed || !Arc::ptr_eq(&e.ep, &msg.endpoint) {
            return;
        }
        let (requests, failures) = e.window();
        if !should_trip(&e.spec, requests, failures, msg.consecutive) {
            return;
        }
        let now = now_unix_ms();
        e.machine.trip(now, e.open_for_ms());
        e.clear();
        e.publish(&key, now, false);
        tracing::warn!(
            service = %key.0, instance = %key.1, requests, failures, consecutive = msg.consecutive,
            "circuit breaker opened"
        );
        self.remote(ctx, key, store::Op::Trip);
    }
}

/// Asks for a half-open probe to `endpoint`; answers whether this request may be it.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Probe {
    /// Service name.
    pub service: Arc<str>,
    /// The endpoint.
    pub endpoint: Arc<Endpoint>,
}

impl Handler<Probe> for CircuitBreaker {
    type Result = AtomicResponse<Self, bool>;
    fn handle(&mut self, msg: Probe, _: &mut Context<Self>) -> Self::Result {
        self.sync();
        let key: Key = (msg.service, Arc::clone(&msg.endpoint.id));
        // The spec of a breaker that is due a probe (none: no probe).
        let due = self.entries.get(&key).filter(|e| e.ep.circuit().probe_due(now_unix_ms())).map(|e| e.spec.clone());
        let (store, spec) = match (self.store.clone(), due) {
            (Some(store), Some(spec)) => (store, spec),
            (_, due) => {
                let granted = due.is_some() && self.local_probe(&key);
                return AtomicResponse::new(Box::pin(fut::ready(granted)));
            }
        };
        let fut = async move {
            let r = store.apply(store::Op::Probe, &key.0, &key.1, &spec).await;
            (key, r)
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(|(key, r), act, _| match r {
            Ok((granted, m)) => {
                act.status.set_degraded("circuit", false);
                act.adopt(&key, m, !granted);
                granted
            }
            Err(e) => {
                act.status.set_degraded("circuit", true);
                tracing::warn!(error = %e, "circuit probe decided locally: redis failed");
                act.local_probe(&key)
            }
        })))
    }
}

/// What one request to an upstream tells about that upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// It answered with a status that is not a failure.
    Success,
    /// Connect error, timeout, broken exchange or a failure status.
    Failure,
    /// Nothing about the upstream: the client failed the request (body too slow, too
    /// large, cut off). Never charges a breaker; a probe slot it held is given back.
    Neutral,
}

/// A probe request finished.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ProbeResult {
    /// Service name.
    pub service: Arc<str>,
    /// The endpoint.
    pub endpoint: Arc<Endpoint>,
    /// What the probe showed (`Neutral`: it showed nothing; the slot is released).
    pub outcome: CallOutcome,
}

impl Handler<ProbeResult> for CircuitBreaker {
    type Result = ();
    fn handle(&mut self, msg: ProbeResult, ctx: &mut Context<Self>) {
        self.sync();
        let key: Key = (msg.service, Arc::clone(&msg.endpoint.id));
        let Some(e) = self.entries.get_mut(&key) else { return };
        let now = now_unix_ms();
        let was = e.machine.state;
        let op = match msg.outcome {
            CallOutcome::Neutral => {
                e.machine.release_probe();
                store::Op::ProbeRelease
            }
            outcome => {
                let ok = outcome == CallOutcome::Success;
                if e.machine.probe_result(ok, now, e.open_for_ms(), e.spec.half_open_probes) {
                    e.clear();
                    log_transition(&key, was, e.machine.state);
                }
                if ok { store::Op::ProbeOk } else { store::Op::ProbeFail }
            }
        };
        e.publish(&key, now, false);
        self.remote(ctx, key, op);
    }
}

/// One breaker as `GET /admin/circuits` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CircuitInfo {
    /// Service name.
    pub service: String,
    /// Instance id.
    pub instance: String,
    /// Instance URL.
    pub url: String,
    /// `closed`, `open` or `half_open`.
    pub state: CircuitState,
    /// Failures in the current window.
    pub failures: u32,
    /// When the breaker last opened (RFC 3339), while not closed.
    pub opened_at: Option<String>,
    /// Health as active health checks see it (passive and active health side by side).
    pub healthy: bool,
}

/// Lists every breaker.
#[derive(Message)]
#[rtype(result = "Vec<CircuitInfo>")]
pub struct ListCircuits;

impl Handler<ListCircuits> for CircuitBreaker {
    type Result = MessageResult<ListCircuits>;
    fn handle(&mut self, _: ListCircuits, _: &mut Context<Self>) -> Self::Result {
        self.sync();
        let mut out: Vec<CircuitInfo> = self
            .entries
            .iter()
            .map(|((service, instance), e)| {
                let state = e.ep.circuit().state();
                CircuitInfo {
                    service: service.to_string(),
                    instance: instance.to_string(),
                    url: e.ep.url.to_string(),
                    state,
                    failures: e.window().1,
                    opened_at: (state != CircuitState::Closed && e.machine.opened_ms > 0)
                        .then(|| rfc3339_ms(e.machine.opened_ms))
                        .flatten(),
                    healthy: e.ep.is_healthy(),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.service, &a.instance).cmp(&(&b.service, &b.instance)));
        MessageResult(out)
    }
}

/// Closes the breakers of instance `instance` (in every service that has one by that
/// id), cluster-wide. Answers how many were found.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ResetCircuit {
    /// Instance id.
    pub instance: String,
}

impl Handler<ResetCircuit> for CircuitBreaker {
    type Result = usize;
    fn handle(&mut self, msg: ResetCircuit, ctx: &mut Context<Self>) -> usize {
        self.sync();
        let now = now_unix_ms();
        let keys: Vec<Key> = self.entries.keys().filter(|k| *k.1 == *msg.instance).cloned().collect();
        for key in &keys {
            if let Some(e) = self.entries.get_mut(key) {
                let was = e.machine.state;
                e.machine.reset();
                e.clear();
                e.publish(key, now, false);
                if was != CircuitState::Closed {
                    log_transition(key, was, CircuitState::Closed);
                }
            }
            self.remote(ctx, key.clone(), store::Op::Reset);
        }
        keys.len()
    }
}

/// Reloads every breaker from Redis (after a reconnect or new instances).
#[derive(Message)]
#[rtype(result = "()")]
struct Resync;

impl Handler<Resync> for CircuitBreaker {
    type Result = ();
    fn handle(&mut self, _: Resync, ctx: &mut Context<Self>) {
        let Some(store) = self.store.clone() else { return };
        ctx.spawn(async move { store.all().await }.into_actor(self).map(|r, act, ctx| match r {
            Err(e) => {
                act.status.set_degraded("circuit", true);
                tracing::warn!(error = %e, "circuit breakers not resynced: redis failed");
            }
            Ok(shared) => {
                act.status.set_degraded("circuit", false);
                let keys: Vec<Key> = act.entries.keys().cloned().collect();
                for key in keys {
                    let field = store::field(&key.0, &key.1);
                    let local = act.entries.get(&key).map(|e| e.machine.state);
                    match shared.get(&field) {
                        // Opened here while Redis was away: tell the cluster.
                        Some(m) if m.state == CircuitState::Closed && local == Some(CircuitState::Open) => {
                            act.remote(ctx, key, store::Op::Trip)
                        }
                        None if local == Some(CircuitState::Open) => act.remote(ctx, key, store::Op::Trip),
                        Some(m) => act.adopt(&key, *m, false),
                        None => {}
                    }
                }
            }
        }));
    }
}

/// A `circuit` event as `circuit.lua` publishes it.
#[derive(Deserialize)]
struct CircuitEvent {
    service: String,
    instance: String,
    state: CircuitState,
    #[serde(default)]
    until_ms: u64,
    #[serde(default)]
    opened_ms: u64,
}

impl Handler<BusMessage> for CircuitBreaker {
    type Result = ();
    fn handle(&mut self, msg: BusMessage, ctx: &mut Context<Self>) {
        match msg {
            BusMessage::Connected => ctx.notify(Resync),
            BusMessage::Disconnected => {}
            BusMessage::Event(ev) if ev.kind == "circuit" => {
                let Ok(c) = serde_json::from_str::<CircuitEvent>(&ev.raw) else { return };
                self.sync();
                let key: Key = (c.service.into(), c.instance.into());
                let Some(e) = self.entries.get(&key) else { return };
                let mut m = e.machine;
                if m.state != c.state {
                    m.probes = 0;
                    m.ok = 0;
                    m.since_ms = now_unix_ms();
                }
                m.state = c.state;
                m.until_ms = c.until_ms;
                m.opened_ms = c.opened_ms;
                self.adopt(&key, m, false);
            }
            BusMessage::Event(_) => {}
        }
    }
}

/// What the request path holds: reports outcomes and asks for probes.
#[derive(Clone)]
pub struct Breakers(Addr<CircuitBreaker>);

impl Breakers {
    /// Starts the actor, restarted in place after a panic.
    pub fn start(actor: CircuitBreaker) -> Self {
        Self(crate::supervise::start("circuit", actor))
    }

    /// The actor (admin routes, event subscription).
    pub fn addr(&self) -> &Addr<CircuitBreaker> {
        &self.0
    }

    /// Records the outcome of a request to `endpoint` (`probe`: it was a half-open probe).
    /// Successes only touch atomics; a `Neutral` outcome counts nothing and only gives a
    /// probe slot back.
    pub fn record(&self, service: &Arc<str>, endpoint: &Arc<Endpoint>, outcome: CallOutcome, probe: bool) {
        if probe {
            self.0.do_send(ProbeResult { service: Arc::clone(service), endpoint: Arc::clone(endpoint), outcome });
            return;
        }
        let ok = match outcome {
            CallOutcome::Neutral => return,
            CallOutcome::Success => true,
            CallOutcome::Failure => false,
        };
        let consecutive = endpoint.circuit().record(ok);
        if !ok {
            self.0.do_send(Failure { service: Arc::clone(service), endpoint: Arc::clone(endpoint), consecutive });
        }
    }

    /// Asks whether this request may be a half-open probe to `endpoint`. No answer (the
    /// handler panicked) is "no": the endpoint is not used, as while it is open.
    pub async fn probe(&self, service: &Arc<str>, endpoint: &Arc<Endpoint>) -> bool {
        self.0.send(Probe { service: Arc::clone(service), endpoint: Arc::clone(endpoint) }).await.unwrap_or(false)
    }
}

/// `ms` as RFC 3339; `None` past year 9999 (a time read from Redis may be anything, and
/// humantime's `Display` fails there, which `to_string` would turn into a panic).
fn rfc3339_ms(ms: u64) -> Option<String> {
    use std::fmt::Write;
    let t = std::time::UNIX_EPOCH.checked_add(Duration::from_millis(ms))?;
    let mut out = String::new();
    write!(out, "{}", humantime::format_rfc3339_millis(t)).ok()?;
    Some(out)
}
