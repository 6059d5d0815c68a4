//! Concurrent misses on one key within this node: one request leads the fill, the others
//! wait for it and then read the stored entry (or share its error).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::error::GatewayError;

/// What one fill ended with, as concurrent requests for the same key see it.
#[derive(Clone)]
pub(super) enum Fill {
    /// Still running.
    Pending,
    /// Stored: look it up.
    Filled,
    /// The upstream failed: each waiter answers the same error.
    Failed(GatewayError),
    /// Not shareable (not cacheable, too large, aborted): fetch for yourself.
    NotShared,
}

/// Concurrent misses on one key within this node: one leads, the others wait.
#[derive(Clone, Default)]
pub struct Coalescer(Arc<Mutex<HashMap<String, watch::Receiver<Fill>>>>);

pub(super) enum Join {
    /// This request fills.
    Lead(FillGuard),
    /// Another request fills: wait for it.
    Wait(watch::Receiver<Fill>),
}

impl Coalescer {
    pub(super) fn join(&self, key: &str) -> Join {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = map.get(key) {
            return Join::Wait(rx.clone());
        }
        let (tx, rx) = watch::channel(Fill::Pending);
        map.insert(key.to_string(), rx);
        Join::Lead(FillGuard { owner: self.clone(), key: key.to_string(), tx: Some(tx) })
    }

    pub(super) fn busy(&self, key: &str) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).contains_key(key)
    }
}

/// The leader's promise to tell waiters how the fill ended (`NotShared` if dropped).
pub(super) struct FillGuard {
    owner: Coalescer,
    key: String,
    tx: Option<watch::Sender<Fill>>,
}

impl FillGuard {
    pub(super) fn finish(mut self, fill: Fill) {
        self.settle(fill);
    }

    fn settle(&mut self, fill: Fill) {
        if let Some(tx) = self.tx.take() {
            let mut map = self.owner.0.lock().unwrap_or_else(|e| e.into_inner());
            if map.get(&self.key).is_some_and(|rx| rx.same_channel(&tx.subscribe())) {
                map.remove(&self.key);
            }
            drop(map);
            let _ = tx.send(fill);
        }
    }
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        self.settle(Fill::NotShared);
    }
}
