//! The Redis side of the breakers: one script (`circuit.lua`) per transition or probe
//! request, and a full read for resyncs.

use std::collections::HashMap;
use std::sync::Arc;

use super::Machine;
use crate::redis::scripts::CIRCUIT;
use crate::redis::{Store, StoreError};
use crate::spec::CircuitBreakerSpec;

/// A shared-state operation on one breaker.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Trip,
    Probe,
    ProbeOk,
    ProbeFail,
    ProbeRelease,
    Reset,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Self::Trip => "trip",
            Self::Probe => "probe",
            Self::ProbeOk => "probe_ok",
            Self::ProbeFail => "probe_fail",
            Self::ProbeRelease => "probe_release",
            Self::Reset => "reset",
        }
    }
}

/// The hash field of one breaker.
pub(crate) fn field(service: &str, instance: &str) -> String {
    format!("{service}/{instance}")
}

/// Breaker state in Redis, shared by every node.
#[derive(Clone)]
pub struct CircuitStore {
    store: Store,
    node: Arc<str>,
}

impl CircuitStore {
    /// Breakers stored through `store`, changes signed by `node`.
    pub fn new(store: Store, node: Arc<str>) -> Self {
        Self { store, node }
    }

    /// Runs `op`; answers whether a probe was granted and the breaker's shared state.
    pub(crate) async fn apply(
        &self,
        op: Op,
        service: &str,
        instance: &str,
        spec: &CircuitBreakerSpec,
    ) -> Result<(bool, Machine), StoreError> {
        let keys = self.store.keys();
        let open_for = spec.open_for.get().as_millis() as u64;
        let (granted, json): (i64, String) = self
            .store
            .script(
                &CIRCUIT,
                &[keys.circuits()],
                &[
                    &op.as_str(),
                    &field(service, instance),
                    &open_for,
                    &spec.half_open_probes,
                    &keys.events_channel(),
                    &&*self.node,
                    &service,
                    &instance,
                    &crate::now_rfc3339(),
                ],
            )
            .await?;
        let machine = serde_json::from_str(&json).map_err(|e| StoreError::Reply(e.to_string()))?;
        Ok((granted == 1, machine))
    }

    /// Every stored breaker by field.
    pub(crate) async fn all(&self) -> Result<HashMap<String, Machine>, StoreError> {
        let raw: HashMap<String, String> =
            self.store.query(redis::cmd("HGETALL").arg(self.store.keys().circuits())).await?;
        Ok(raw.into_iter().filter_map(|(k, v)| Some((k, serde_json::from_str(&v).ok()?))).collect())
    }
}
