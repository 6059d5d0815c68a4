//! Instances of a service: registered through the admin API (`admin`), self-registered
//! with a TTL and kept alive by heartbeats (`self`), and health recorded by the active
//! health checker. Every change but a heartbeat bumps the registry version and is
//! published like a service change.

use std::sync::Arc;

use actix::prelude::*;
use serde::Serialize;

use super::store::{InstanceOp, Written};
use super::{Backend, InstanceRecord, RegistryError, ServiceEntry, ServiceRegistry};
use crate::balancer::EndpointSource;

/// An instance as listed by the admin API.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InstanceView {
    /// Id.
    pub id: String,
    /// Base URL.
    pub url: String,
    /// Weight.
    pub weight: u32,
    /// Current health.
    pub healthy: bool,
    /// `config`, `admin` or `self`.
    pub source: EndpointSource,
}

/// Register (or replace) an instance.
#[derive(Message)]
#[rtype(result = "Result<InstanceView, RegistryError>")]
pub struct RegisterInstance {
    /// Service name.
    pub service: String,
    /// The instance.
    pub record: InstanceRecord,
}

/// Remove an instance.
#[derive(Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct DeregisterInstance {
    /// Service name.
    pub service: String,
    /// Instance id.
    pub id: String,
}

/// Extend a self-registered instance's lease.
#[derive(Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct HeartbeatInstance {
    /// Service name.
    pub service: String,
    /// Instance id.
    pub id: String,
}

/// Record an endpoint's health (from the active health checker).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetHealth {
    /// Service name.
    pub service: String,
    /// Endpoint id.
    pub id: String,
    /// New state.
    pub healthy: bool,
}

/// Every endpoint of a service (spec endpoints and instances).
#[derive(Message)]
#[rtype(result = "Result<Vec<InstanceView>, RegistryError>")]
pub struct ListInstances(pub String);

/// Drop expired self-registered instances (memory mode: locally; Redis: leader only).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct SweepExpired;

fn views(entry: &ServiceEntry) -> Vec<InstanceView> {
    entry
        .endpoint_list()
        .into_iter()
        .map(|(id, url, weight, source)| InstanceView {
            healthy: entry.health.get(&id).copied().unwrap_or(true),
            id,
            url: url.to_string(),
            weight,
            source,
        })
        .collect()
}

impl ServiceRegistry {
    /// Applies an instance change: locally in memory mode, through Redis otherwise.
    fn instance_change(
        &mut self,
        op: InstanceOp,
        service: String,
        id: String,
        payload: String,
        local: impl FnOnce(&mut ServiceEntry) -> Result<bool, RegistryError> + 'static,
    ) -> ResponseActFuture<Self, Result<(), RegistryError>> {
        let Some(current) = self.services.get(&service).cloned() else {
            return Box::pin(fut::ready(Err(RegistryError::NotFound(service))));
        };
        match &self.backend {
            Backend::Memory => {
                let mut entry = (*current).clone();
                let result = local(&mut entry).map(|changed| {
                    self.services.insert(service.clone(), Arc::new(entry));
                    if changed {
                        self.version += 1;
                        self.publish();
                        let kind = match op {
                            InstanceOp::Register => "instance_registered",
                            InstanceOp::Deregister => "instance_deregistered",
                            InstanceOp::Heartbeat | InstanceOp::Health => "instance_health",
                        };
                        self.emit_local(kind, &service, Some(&id));
                    }
                });
                Box::pin(fut::ready(result))
            }
            Backend::Redis(store) => {
                let store = store.clone();
                let fut = async move {
                    let res = store.instance(op, &service, &id, &payload).await;
                    (service, res)
                };
                Box::pin(fut.into_actor(self).map(move |(service, res), act, ctx| {
                    if let Written::At(v) = res? {
                        let mut entry = (*current).clone();
                        local(&mut entry)?;
                        act.applied(v, &service, Some(Arc::new(entry)), ctx);
                    }
                    Ok(())
                }))
            }
        }
    }
}

impl Handler<RegisterInstance> for ServiceRegistry {
    type Result = AtomicResponse<Self, Result<InstanceView, RegistryError>>;
    fn handle(&mut self, msg: RegisterInstance, _: &mut Context<Self>) -> Self::Result {
        let RegisterInstance { service, mut record } = msg;
        record.expires_at = if record.ttl_ms > 0 { crate::now_unix_ms() + record.ttl_ms } else { 0 };
        let payload = serde_json::to_string(&record).unwrap_or_default();
        let view = InstanceView {
            id: record.id.clone(),
            url: record.url.to_string(),
            weight: record.weight,
            healthy: true,
            source: record.source,
        };
        let id = record.id.clone();
        let change = self.instance_change(InstanceOp::Register, service, id, payload, move |e| {
            e.health.remove(&record.id);
            e.instances.insert(record.id.clone(), record);
            Ok(true)
        });
        AtomicResponse::new(Box::pin(change.map(move |r, _, _| r.map(|()| view))))
    }
}

impl Handler<DeregisterInstance> for ServiceRegistry {
    type Result = AtomicResponse<Self, Result<(), RegistryError>>;
    fn handle(&mut self, msg: DeregisterInstance, _: &mut Context<Self>) -> Self::Result {
        let id = msg.id.clone();
        AtomicResponse::new(self.instance_change(
            InstanceOp::Deregister,
            msg.service,
            msg.id,
            String::new(),
            move |e| {
                e.health.remove(&id);
                e.instances.remove(&id).map(|_| true).ok_or(RegistryError::InstanceNotFound(id))
            },
        ))
    }
}

impl Handler<HeartbeatInstance> for ServiceRegistry {
    type Result = AtomicResponse<Self, Result<(), RegistryError>>;
    fn handle(&mut self, msg: HeartbeatInstance, _: &mut Context<Self>) -> Self::Result {
        let id = msg.id.clone();
        AtomicResponse::new(self.instance_change(InstanceOp::Heartbeat, msg.service, msg.id, String::new(), move |e| {
            let inst = e.instances.get_mut(&id).ok_or(RegistryError::InstanceNotFound(id))?;
            if inst.ttl_ms > 0 {
                inst.expires_at = crate::now_unix_ms() + inst.ttl_ms;
            }
            Ok(false)
        }))
    }
}

impl Handler<SetHealth> for ServiceRegistry {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: SetHealth, _: &mut Context<Self>) -> Self::Result {
        let (id, healthy) = (msg.id.clone(), msg.healthy);
        let payload = if healthy { "1" } else { "0" }.to_string();
        let change = self.instance_change(InstanceOp::Health, msg.service, msg.id, payload, move |e| {
            let changed = e.health.get(&id).copied().unwrap_or(true) != healthy;
            e.health.insert(id, healthy);
            Ok(changed)
        });
        AtomicResponse::new(Box::pin(change.map(|r, _, _| {
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot record endpoint health");
            }
        })))
    }
}

impl Handler<ListInstances> for ServiceRegistry {
    type Result = Result<Vec<InstanceView>, RegistryError>;
    fn handle(&mut self, msg: ListInstances, _: &mut Context<Self>) -> Self::Result {
        self.services.get(&msg.0).map(|e| views(e)).ok_or(RegistryError::NotFound(msg.0))
    }
}

impl Handler<SweepExpired> for ServiceRegistry {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, _: SweepExpired, _: &mut Context<Self>) -> Self::Result {
        match &self.backend {
            Backend::Memory => {
                let now = crate::now_unix_ms();
                let mut changed = false;
                for entry in self.services.values_mut() {
                    if entry.instances.values().any(|i| i.expires_at > 0 && i.expires_at < now) {
                        let e = Arc::make_mut(entry);
                        e.instances.retain(|_, i| i.expires_at == 0 || i.expires_at >= now);
                        changed = true;
                    }
                }
                if changed {
                    self.version += 1;
                    self.publish();
                }
                AtomicResponse::new(Box::pin(fut::ready(())))
            }
            Backend::Redis(store) => {
                if !self.status.is_leader() {
                    return AtomicResponse::new(Box::pin(fut::ready(())));
                }
                let store = store.clone();
                AtomicResponse::new(Box::pin(async move { store.sweep().await }.into_actor(self).map(
                    |r, _, _| match r {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(removed = n, "expired instances removed"),
                        Err(e) => tracing::warn!(error = %e, "instance sweep failed"),
                    },
                )))
            }
        }
    }
}
