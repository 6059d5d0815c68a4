//! `ServiceRegistry`: the single writer of the service set. It validates changes,
//! rebuilds the route table and publishes it as an immutable snapshot (`RoutesView`)
//! that request handlers read without locks or mailbox round trips.
//!
//! Backend today: in-process memory (services from the config file plus admin changes).
//! The Redis backend (shared registry, Pub/Sub events) plugs in behind the same messages.

mod routes;

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;

pub use routes::{Route, RouteTable};

use crate::snapshot::View;
use crate::spec::{FieldError, ServiceName, ServiceSpec};

/// Lock-free read access to the current route table.
pub type RoutesView = View<RouteTable>;

/// Why a registry change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The service (or a field of it) is invalid or clashes with another service.
    #[error("{0}")]
    Invalid(FieldError),
    /// A service with that name already exists (create only).
    #[error("service {0} already exists")]
    Exists(ServiceName),
    /// No such service.
    #[error("service {0} not found")]
    NotFound(String),
}

/// Create a service; fails with `Exists` when the name is taken.
#[derive(Message)]
#[rtype(result = "Result<Arc<ServiceSpec>, RegistryError>")]
pub struct CreateService(pub ServiceSpec);

/// Create or replace a service (config-file upsert, admin `PUT`).
#[derive(Message)]
#[rtype(result = "Result<Arc<ServiceSpec>, RegistryError>")]
pub struct UpsertService(pub ServiceSpec);

/// Delete a service by name.
#[derive(Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct DeleteService(pub String);

/// List every service, sorted by name.
#[derive(Message)]
#[rtype(result = "Vec<Arc<ServiceSpec>>")]
pub struct ListServices;

/// The registry actor.
pub struct ServiceRegistry {
    services: BTreeMap<String, Arc<ServiceSpec>>,
    view: RoutesView,
}

impl ServiceRegistry {
    /// A registry seeded with `services` (already validated), publishing into `view`.
    pub fn new(services: Vec<ServiceSpec>, view: RoutesView) -> Result<Self, RegistryError> {
        let mut reg = Self { services: BTreeMap::new(), view };
        let staged: BTreeMap<_, _> = services.into_iter().map(|s| (s.name.to_string(), Arc::new(s))).collect();
        reg.commit(staged)?;
        Ok(reg)
    }

    /// Builds the table for `staged`; publishes it and keeps `staged` only if it is valid,
    /// so a refused change leaves both the service set and the routes untouched.
    fn commit(&mut self, staged: BTreeMap<String, Arc<ServiceSpec>>) -> Result<(), RegistryError> {
        let current = self.view.load();
        let table = RouteTable::build(current.version + 1, staged.values().cloned(), Some(&current))
            .map_err(RegistryError::Invalid)?;
        self.services = staged;
        self.view.publish(table);
        Ok(())
    }

    fn upsert(&mut self, spec: ServiceSpec, must_be_new: bool) -> Result<Arc<ServiceSpec>, RegistryError> {
        let spec = spec.validate().map_err(RegistryError::Invalid)?;
        let name = spec.name.to_string();
        if must_be_new && self.services.contains_key(&name) {
            return Err(RegistryError::Exists(spec.name));
        }
        let spec = Arc::new(spec);
        let mut staged = self.services.clone();
        staged.insert(name, Arc::clone(&spec));
        self.commit(staged)?;
        Ok(spec)
    }
}

impl Actor for ServiceRegistry {
    type Context = Context<Self>;
}

impl Handler<CreateService> for ServiceRegistry {
    type Result = Result<Arc<ServiceSpec>, RegistryError>;
    fn handle(&mut self, msg: CreateService, _: &mut Context<Self>) -> Self::Result {
        self.upsert(msg.0, true)
    }
}

impl Handler<UpsertService> for ServiceRegistry {
    type Result = Result<Arc<ServiceSpec>, RegistryError>;
    fn handle(&mut self, msg: UpsertService, _: &mut Context<Self>) -> Self::Result {
        self.upsert(msg.0, false)
    }
}

impl Handler<DeleteService> for ServiceRegistry {
    type Result = Result<(), RegistryError>;
    fn handle(&mut self, msg: DeleteService, _: &mut Context<Self>) -> Self::Result {
        if !self.services.contains_key(&msg.0) {
            return Err(RegistryError::NotFound(msg.0));
        }
        let mut staged = self.services.clone();
        staged.remove(&msg.0);
        self.commit(staged)
    }
}

impl Handler<ListServices> for ServiceRegistry {
    type Result = Vec<Arc<ServiceSpec>>;
    fn handle(&mut self, _: ListServices, _: &mut Context<Self>) -> Self::Result {
        self.services.values().cloned().collect()
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
        let reg = ServiceRegistry::new(vec![spec(r#"{"name":"a"}"#).validate().expect("valid")], view.clone())
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
        assert!(matches!(clash, Err(RegistryError::Invalid(_))));
        assert_eq!(view.load().version, v1 + 1);
        assert_eq!(reg.send(ListServices).await.expect("mailbox").len(), 2);

        reg.send(DeleteService("a".into())).await.expect("mailbox").expect("deleted");
        assert!(view.load().find("/api/a/1", None).is_none());
        let missing = reg.send(DeleteService("a".into())).await.expect("mailbox");
        assert!(matches!(missing, Err(RegistryError::NotFound(_))));
    }
}
