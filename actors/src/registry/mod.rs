//! `ServiceRegistry`: the single writer of the service set. It validates changes, stores
//! them (memory, or Redis with a version counter and an event per change), and publishes
//! the route table as an immutable snapshot (`RoutesView`) that request handlers read
//! without locks or mailbox round trips.
//!
//! Redis mode invariants: every change goes through one atomic script (change + version +
//! event); events are applied in version order; a gap, a (re)subscription or a version
//! mismatch found by the periodic reconcile triggers a full reload. Changes are handled
//! one at a time (`AtomicResponse`), so local writes and remote events never interleave.

mod instances;
mod routes;
mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

pub use instances::{DeregisterInstance, HeartbeatInstance, InstanceView, ListInstances, RegisterInstance, SetHealth};
pub use routes::{InstanceRecord, OnClash, Route, RouteLimits, RouteTable, ServiceEntry};
pub use store::{InstanceOp, RegistryStore, Source, StoredService, WriteOp, Written};

use crate::ratelimit::PolicyRegistry;
use crate::redis::StoreError;
use crate::redis::events::{BusMessage, ClusterEvent, EventStream};
use crate::snapshot::View;
use crate::spec::{FieldError, ServiceSpec};
use crate::status::NodeStatus;

/// Lock-free read access to the current route table.
pub type RoutesView = View<RouteTable>;

/// Services by name.
type ServiceMap = BTreeMap<String, Arc<ServiceEntry>>;

/// How often the registry compares its version with Redis.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(30);
/// How often expired self-registered instances are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Retry delay while the registry cannot load from Redis.
const RETRY_LOAD: Duration = Duration::from_secs(1);

/// Why a registry change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A field is invalid.
    #[error("{0}")]
    Invalid(FieldError),
    /// The change clashes with another service (same prefix and hosts).
    #[error("{0}")]
    Conflict(FieldError),
    /// A service with that name already exists (create only).
    #[error("service {0} already exists")]
    Exists(String),
    /// No such service.
    #[error("service {0} not found")]
    NotFound(String),
    /// No such instance.
    #[error("instance {0} not found")]
    InstanceNotFound(String),
    /// Redis could not be reached in time; nothing was changed.
    #[error("registry storage unavailable: {0}")]
    Store(StoreError),
}

/// Create a service; fails with `Exists` when the name is taken.
#[derive(Message)]
#[rtype(result = "Result<Arc<ServiceSpec>, RegistryError>")]
pub struct CreateService(pub ServiceSpec);

/// Create or replace a service; answers whether it was created.
#[derive(Message)]
#[rtype(result = "Result<(Arc<ServiceSpec>, bool), RegistryError>")]
pub struct UpsertService(pub ServiceSpec);

/// Delete a service by name.
#[derive(Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct DeleteService(pub String);

/// List every service, sorted by name.
#[derive(Message)]
#[rtype(result = "Vec<Arc<ServiceSpec>>")]
pub struct ListServices;

/// One service by name.
#[derive(Message)]
#[rtype(result = "Option<Arc<ServiceSpec>>")]
pub struct GetService(pub String);

/// Reload everything from Redis.
#[derive(Message)]
#[rtype(result = "()")]
struct Resync;

/// Compare versions with Redis and resync on mismatch.
#[derive(Message)]
#[rtype(result = "()")]
struct Reconcile;

/// Where the registry keeps its state.
pub enum Backend {
    /// In process only (memory mode).
    Memory,
    /// Shared through Redis.
    Redis(Box<RegistryStore>),
}

/// The registry actor.
pub struct ServiceRegistry {
    services: ServiceMap,
    version: u64,
    view: RoutesView,
    backend: Backend,
    /// Services from the config file: upserted at start and after Redis lost its data.
    seeds: Vec<ServiceSpec>,
    /// Data epoch last seen in Redis (see `Keys::registry_epoch`).
    epoch: Option<String>,
    status: NodeStatus,
    /// Memory mode: where change events go (Redis mode publishes through Redis).
    local_events: Option<(EventStream, Arc<str>)>,
    /// The node's rate-limit policies, which routes resolve their names against.
    policies: PolicyRegistry,
}

impl ServiceRegistry {
    /// A registry seeded with the config file's `services` (validated), publishing into
    /// `view`. In Redis mode the seeds route at once and are written to Redis when it is
    /// reachable; the table is then replaced by Redis's view.
    pub fn new(
        services: Vec<ServiceSpec>,
        view: RoutesView,
        backend: Backend,
        status: NodeStatus,
        policies: PolicyRegistry,
    ) -> Result<Self, RegistryError> {
        let mut reg = Self {
            services: BTreeMap::new(),
            version: 0,
            view,
            backend,
            seeds: services.clone(),
            epoch: None,
            status,
            local_events: None,
            policies,
        };
        let staged = services
            .into_iter()
            .map(|s| (s.name.to_string(), Arc::new(ServiceEntry::new(Arc::new(s), Source::Config))))
            .collect();
        let table = reg.trial(&staged)?;
        reg.services = staged;
        reg.view.publish(table);
        if matches!(reg.backend, Backend::Memory) {
            reg.version = 1;
            reg.publish();
        }
        Ok(reg)
    }

    /// Memory mode: also announce changes on `stream` as node `node` (for SSE).
    pub fn with_local_events(mut self, stream: EventStream, node: Arc<str>) -> Self {
        self.local_events = Some((stream, node));
        self
    }

    /// Announces a memory-mode change (Redis mode announces through Redis).
    fn emit_local(&self, kind: &str, service: &str, instance: Option<&str>) {
        let (Backend::Memory, Some((stream, node))) = (&self.backend, &self.local_events) else { return };
        let mut ev = ClusterEvent {
            version: Some(self.version),
            kind: kind.to_string(),
            service: Some(service.to_string()),
            instance: instance.map(str::to_string),
            node: node.to_string(),
            at: crate::now_rfc3339(),
            raw: Arc::from(""),
        };
        ev.raw = serde_json::to_string(&ev).unwrap_or_default().into();
        let _ = stream.send(Arc::new(ev));
    }

    /// Builds a table for `staged`, refusing clashes (the current table is untouched).
    fn trial(&self, staged: &ServiceMap) -> Result<RouteTable, RegistryError> {
        let current = self.view.load();
        RouteTable::build_entries(
            self.version,
            staged.values().cloned(),
            Some(&current),
            OnClash::Refuse,
            &self.policies,
        )
        .map_err(RegistryError::Conflict)
    }

    /// Publishes the table for the current service set and version.
    fn publish(&mut self) {
        let current = self.view.load_full();
        let entries = self.services.values().cloned();
        let table = RouteTable::build_entries(self.version, entries, Some(&current), OnClash::Skip, &self.policies)
            .unwrap_or_default();
        self.view.publish(table);
        metrics::gauge!(crate::names::M_REGISTRY_VERSION).set(self.version as f64);
    }

    /// Validates a change against the local state; returns the staged service set.
    fn stage(&self, spec: ServiceSpec, must_be_new: bool) -> Result<(Arc<ServiceSpec>, ServiceMap), RegistryError> {
        let spec = spec.validate().map_err(RegistryError::Invalid)?;
        let name = spec.name.to_string();
        if must_be_new && self.services.contains_key(&name) {
            return Err(RegistryError::Exists(name));
        }
        let spec = Arc::new(spec);
        let entry = match self.services.get(&name) {
            Some(old) => ServiceEntry { spec: Arc::clone(&spec), ..(**old).clone() },
            None => ServiceEntry::new(Arc::clone(&spec), Source::Admin),
        };
        let mut staged = self.services.clone();
        staged.insert(name, Arc::new(entry));
        self.trial(&staged)?;
        Ok((spec, staged))
    }

    /// Applies a change that storage accepted at `version`.
    fn applied(&mut self, version: u64, name: &str, entry: Option<Arc<ServiceEntry>>, ctx: &mut Context<Self>) {
        match entry {
            Some(s) => self.services.insert(name.to_string(), s),
            None => self.services.remove(name),
        };
        if version == self.version + 1 {
            self.version = version;
        } else if version > self.version {
            // Someone else's change slipped in between: reload to converge.
            ctx.notify(Resync);
        }
        self.publish();
    }

    fn write(
        &mut self,
        op: WriteOp,
        name: String,
        spec: Option<Arc<ServiceSpec>>,
        staged: Option<ServiceMap>,
    ) -> ResponseActFuture<Self, Result<bool, RegistryError>> {
        let entry = staged.as_ref().and_then(|s| s.get(&name).cloned());
        match &self.backend {
            Backend::Memory => {
                let existed = self.services.contains_key(&name);
                let result = match (op, staged) {
                    (WriteOp::Delete, _) if !existed => Err(RegistryError::NotFound(name)),
                    (WriteOp::Delete, _) => {
                        self.services.remove(&name);
                        self.version += 1;
                        self.publish();
                        self.emit_local("service_deleted", &name, None);
                        Ok(false)
                    }
                    (_, Some(staged)) => {
                        self.services = staged;
                        self.version += 1;
                        self.publish();
                        self.emit_local(if existed { "service_updated" } else { "service_created" }, &name, None);
                        Ok(!existed)
                    }
                    (_, None) => Ok(false),
                };
                Box::pin(fut::ready(result))
            }
            Backend::Redis(store) => {
                let store = store.clone();
                let json = spec.as_ref().map(|s| serde_json::to_string(&**s).unwrap_or_default()).unwrap_or_default();
                let fut = async move {
                    let res = store.write(op, &name, &json, Source::Admin).await;
                    (name, res)
                };
                Box::pin(fut.into_actor(self).map(move |(name, res), act, ctx| match res? {
                    Written::At(v) => {
                        let created = op != WriteOp::Delete && !act.services.contains_key(&name);
                        act.applied(v, &name, entry, ctx);
                        Ok(created)
                    }
                    Written::Unchanged(_) => Ok(false),
                }))
            }
        }
    }

    fn schedule_retry(&self, ctx: &mut Context<Self>) {
        ctx.run_later(RETRY_LOAD, |_, ctx| ctx.notify(Resync));
    }
}

impl Actor for ServiceRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(SWEEP_EVERY, |_, ctx| ctx.notify(instances::SweepExpired));
        if matches!(self.backend, Backend::Redis(_)) {
            ctx.notify(Resync);
            ctx.run_interval(RECONCILE_EVERY, |_, ctx| ctx.notify(Reconcile));
        }
    }
}

impl Handler<CreateService> for ServiceRegistry {
    type Result = AtomicResponse<Self, Result<Arc<ServiceSpec>, RegistryError>>;
    fn handle(&mut self, msg: CreateService, _: &mut Context<Self>) -> Self::Result {
        let (spec, staged) = match self.stage(msg.0, true) {
            Ok(s) => s,
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        let out = Arc::clone(&spec);
        let inner = self.write(WriteOp::Create, spec.name.to_string(), Some(spec), Some(staged));
        AtomicResponse::new(Box::pin(inner.map(move |r, _, _| r.map(|_| out))))
    }
}

impl Handler<UpsertService> for ServiceRegistry {
    type Result = AtomicResponse<Self, Result<(Arc<ServiceSpec>, bool), RegistryError>>;
    fn handle(&mut self, msg: UpsertService, _: &mut Context<Self>) -> Self::Result {
        let (spec, staged) = match self.stage(msg.0, false) {
            Ok(s) => s,
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        let out = Arc::clone(&spec);
        let inner = self.write(WriteOp::Upsert, spec.name.to_string(), Some(spec), Some(staged));
        AtomicResponse::new(Box::pin(inner.map(move |r, _, _| r.map(|created| (out, created)))))
    }
}

impl Handler<DeleteService> for ServiceRegistry {
    type Result = AtomicResponse<Self, Result<(), RegistryError>>;
    fn handle(&mut self, msg: DeleteService, _: &mut Context<Self>) -> Self::Result {
        if !self.services.contains_key(&msg.0) && matches!(self.backend, Backend::Memory) {
            return AtomicResponse::new(Box::pin(fut::ready(Err(RegistryError::NotFound(msg.0)))));
        }
        let inner = self.write(WriteOp::Delete, msg.0, None, None);
        AtomicResponse::new(Box::pin(inner.map(|r, _, _| r.map(|_| ()))))
    }
}

impl Handler<ListServices> for ServiceRegistry {
    type Result = Vec<Arc<ServiceSpec>>;
    fn handle(&mut self, _: ListServices, _: &mut Context<Self>) -> Self::Result {
        self.services.values().map(|e| Arc::clone(&e.spec)).collect()
    }
}

impl Handler<GetService> for ServiceRegistry {
    type Result = Option<Arc<ServiceSpec>>;
    fn handle(&mut self, msg: GetService, _: &mut Context<Self>) -> Self::Result {
        self.services.get(&msg.0).map(|e| Arc::clone(&e.spec))
    }
}

fn parse_stored(stored: StoredService) -> Option<Arc<ServiceEntry>> {
    let name = stored.name.as_str();
    let spec = match serde_json::from_str::<ServiceSpec>(&stored.spec).map(ServiceSpec::validate) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::error!(service = name, error = %e, "stored service is invalid; ignoring it");
            return None;
        }
        Err(e) => {
            tracing::error!(service = name, error = %e, "stored service is unreadable; ignoring it");
            return None;
        }
    };
    let instances = stored
        .instances
        .iter()
        .filter_map(|(id, json)| match serde_json::from_str::<InstanceRecord>(json) {
            Ok(i) => Some((id.clone(), i)),
            Err(e) => {
                tracing::error!(service = name, instance = %id, error = %e, "stored instance is unreadable");
                None
            }
        })
        .collect();
    let health = stored.health.iter().map(|(id, v)| (id.clone(), v != "0")).collect();
    Some(Arc::new(ServiceEntry { spec: Arc::new(spec), source: stored.source, instances, health }))
}

impl Handler<Resync> for ServiceRegistry {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, _: Resync, _: &mut Context<Self>) -> Self::Result {
        let Backend::Redis(store) = &self.backend else {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        };
        let store = store.clone();
        let seeds: Vec<(String, String)> =
            self.seeds.iter().map(|s| (s.name.to_string(), serde_json::to_string(s).unwrap_or_default())).collect();
        let known_epoch = self.epoch.clone();
        let fut = async move {
            let (mut version, mut stored, epoch) = store.snapshot().await?;
            // Seed at start, and again whenever the data epoch changed: Redis lost (or
            // replaced) its data, even if another node has written into it since.
            let epoch = match epoch {
                Some(e) if known_epoch.as_deref() == Some(e.as_str()) => e,
                _ => {
                    for (name, json) in &seeds {
                        store.write(WriteOp::Upsert, name, json, Source::Config).await.map_err(|e| match e {
                            RegistryError::Store(s) => s,
                            other => StoreError::Reply(other.to_string()),
                        })?;
                    }
                    let epoch = store.ensure_epoch().await?;
                    (version, stored, _) = store.snapshot().await?;
                    epoch
                }
            };
            Ok::<_, StoreError>((version, stored, epoch))
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok((version, stored, epoch)) => {
                act.epoch = Some(epoch);
                act.services = stored
                    .into_iter()
                    .filter_map(|st| parse_stored(st).map(|e| (e.spec.name.to_string(), e)))
                    .collect();
                act.version = version;
                act.publish();
                act.status.set_registry_loaded();
                act.status.set_degraded("registry", false);
                tracing::info!(version, services = act.services.len(), "registry loaded from redis");
            }
            Err(e) => {
                tracing::warn!(error = %e, "registry reload failed; serving the last snapshot");
                act.status.set_degraded("registry", true);
                act.schedule_retry(ctx);
            }
        })))
    }
}

impl Handler<Reconcile> for ServiceRegistry {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, _: Reconcile, _: &mut Context<Self>) -> Self::Result {
        let Backend::Redis(store) = &self.backend else {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        };
        let store = store.clone();
        AtomicResponse::new(Box::pin(async move { store.version().await }.into_actor(self).map(
            |res, act, ctx| match res {
                Ok(Some(v)) if v == act.version => act.status.set_degraded("registry", false),
                Ok(_) => ctx.notify(Resync),
                Err(e) => {
                    tracing::warn!(error = %e, "registry reconcile failed");
                    act.status.set_degraded("registry", true);
                }
            },
        )))
    }
}

impl Handler<BusMessage> for ServiceRegistry {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: BusMessage, ctx: &mut Context<Self>) -> Self::Result {
        let done = || AtomicResponse::new(Box::pin(fut::ready(())));
        let ev: Arc<ClusterEvent> = match msg {
            BusMessage::Connected => {
                ctx.notify(Resync);
                return done();
            }
            BusMessage::Disconnected => {
                self.status.set_degraded("registry", true);
                return done();
            }
            BusMessage::Event(ev) => ev,
        };
        let (Some(version), Some(name), Backend::Redis(store)) = (ev.version, ev.service.clone(), &self.backend) else {
            return done();
        };
        if !ev.kind.starts_with("service_") && !ev.kind.starts_with("instance_") {
            return done();
        }
        if version <= self.version {
            return done();
        }
        if version > self.version + 1 {
            tracing::info!(have = self.version, got = version, "registry version gap; reloading");
            ctx.notify(Resync);
            return done();
        }
        let store = store.clone();
        let fut = async move {
            let r = store.get(&name).await;
            (name, r)
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(move |(name, res), act, ctx| match res {
            Ok((_, stored)) => {
                let entry = stored.and_then(parse_stored);
                act.applied(version, &name, entry, ctx);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch changed service; reloading");
                ctx.notify(Resync);
            }
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> ServiceSpec {
        serde_json::from_str(json).expect("json")
    }

    #[actix_rt::test]
    async fn changes_are_published_to_the_view_and_refusals_change_nothing() {
        let view = RoutesView::default();
        let reg = ServiceRegistry::new(
            vec![spec(r#"{"name":"a"}"#).validate().expect("valid")],
            view.clone(),
            Backend::Memory,
            NodeStatus::memory(),
            PolicyRegistry::default(),
        )
        .expect("registry")
        .start();
        assert!(view.load().find("/api/a/1", None).is_some());
        let v1 = view.load().version;

        let created = reg.send(CreateService(spec(r#"{"name":"b"}"#))).await.expect("mailbox");
        assert!(created.is_ok());
        assert!(view.load().find("/api/b", None).is_some());
        assert_eq!(view.load().version, v1 + 1);

        let dup = reg.send(CreateService(spec(r#"{"name":"b"}"#))).await.expect("mailbox");
        assert!(matches!(dup, Err(RegistryError::Exists(_))));
        let clash = reg.send(CreateService(spec(r#"{"name":"c","prefix":"/api/a"}"#))).await.expect("mailbox");
        assert!(matches!(clash, Err(RegistryError::Conflict(_))));
        assert_eq!(view.load().version, v1 + 1);
        assert_eq!(reg.send(ListServices).await.expect("mailbox").len(), 2);

        let (_, created) =
            reg.send(UpsertService(spec(r#"{"name":"b","prefix":"/bee"}"#))).await.expect("mailbox").expect("ok");
        assert!(!created);
        assert!(view.load().find("/bee/1", None).is_some());
        assert!(view.load().find("/api/b", None).is_none());

        reg.send(DeleteService("a".into())).await.expect("mailbox").expect("deleted");
        assert!(view.load().find("/api/a/1", None).is_none());
        let missing = reg.send(DeleteService("a".into())).await.expect("mailbox");
        assert!(matches!(missing, Err(RegistryError::NotFound(_))));
    }
}
