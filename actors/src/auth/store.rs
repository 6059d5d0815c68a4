//! The auth records in Redis: consumers and key digests in hashes, revocations in a
//! sorted set scored by expiry, subject cutoffs in a hash; every change published on
//! `gw:events` from the same script that makes it.

use std::sync::Arc;

use super::model::{Consumer, Directory, KeyRecord, Revocation, TokenRef};
use crate::redis::{Store, StoreError, scripts};

/// How a record write treats an existing record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Fail if it exists.
    Create,
    /// Write whatever is there.
    Replace,
    /// Fail if it is missing.
    Update,
    /// Remove; fail if it is missing.
    Delete,
}

/// Outcome of a record write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// Written and published.
    Applied,
    /// `Create` found an existing record.
    Exists,
    /// `Update` / `Delete` found nothing.
    Missing,
}

/// Auth storage over Redis.
#[derive(Clone)]
pub struct AuthStore {
    store: Store,
    node: Arc<str>,
}

impl AuthStore {
    /// Auth storage on `store`, publishing as node `node`.
    pub fn new(store: Store, node: Arc<str>) -> Self {
        Self { store, node }
    }

    fn event(&self, kind: &str, extra: serde_json::Value) -> String {
        let mut ev = serde_json::json!({"kind": kind, "node": &*self.node, "at": crate::now_rfc3339()});
        if let (Some(obj), serde_json::Value::Object(more)) = (ev.as_object_mut(), extra) {
            obj.extend(more);
        }
        ev.to_string()
    }

    async fn put(
        &self,
        hash: String,
        mode: PutMode,
        field: &str,
        value: &str,
        event: String,
    ) -> Result<PutOutcome, StoreError> {
        let mode_s = match mode {
            PutMode::Create => "create",
            PutMode::Replace => "replace",
            PutMode::Update => "update",
            PutMode::Delete => "delete",
        };
        let channel = self.store.keys().events_channel();
        let r: i64 =
            self.store.script(&scripts::AUTH_PUT, &[hash], &[&mode_s, &field, &value, &channel, &event]).await?;
        Ok(match r {
            -1 => PutOutcome::Exists,
            -2 => PutOutcome::Missing,
            _ => PutOutcome::Applied,
        })
    }

    /// Writes a consumer.
    pub async fn put_consumer(&self, c: &Consumer, mode: PutMode) -> Result<PutOutcome, StoreError> {
        let json = serde_json::to_string(c).unwrap_or_default();
        let ev = self.event("consumer_updated", serde_json::json!({"consumer": c.id}));
        self.put(self.store.keys().auth_consumers(), mode, &c.id, &json, ev).await
    }

    /// Deletes a consumer and its keys; `false` when it did not exist.
    pub async fn delete_consumer(&self, id: &str) -> Result<bool, StoreError> {
        let k = self.store.keys();
        let ev = self.event("consumer_deleted", serde_json::json!({"consumer": id}));
        let r: i64 = self
            .store
            .script(
                &scripts::AUTH_DELETE_CONSUMER,
                &[k.auth_consumers(), k.auth_keys()],
                &[&id, &k.events_channel(), &ev],
            )
            .await?;
        Ok(r == 1)
    }

    /// Stores a key digest.
    pub async fn put_key(&self, digest: &str, rec: &KeyRecord) -> Result<PutOutcome, StoreError> {
        let json = serde_json::to_string(rec).unwrap_or_default();
        let ev = self.event("key_created", serde_json::json!({"consumer": rec.consumer, "key_id": rec.key_id}));
        self.put(self.store.keys().auth_keys(), PutMode::Create, digest, &json, ev).await
    }

    /// Removes a key digest.
    pub async fn delete_key(&self, digest: &str, rec: &KeyRecord) -> Result<PutOutcome, StoreError> {
        let ev = self.event("key_deleted", serde_json::json!({"consumer": rec.consumer, "key_id": rec.key_id}));
        self.put(self.store.keys().auth_keys(), PutMode::Delete, digest, "", ev).await
    }

    /// Stores and publishes a revocation (the event carries the rule itself).
    pub async fn revoke(&self, r: &Revocation) -> Result<(), StoreError> {
        let k = self.store.keys();
        let (kind, subject, value) = match r {
            Revocation::Token { id, exp } => ("jti", id.as_str(), *exp),
            Revocation::Subject { sub, before } => ("subject", sub.as_str(), *before),
        };
        let ev = self.event("revocation", serde_json::json!({"revocation": r}));
        let _: i64 = self
            .store
            .script(
                &scripts::AUTH_REVOKE,
                &[k.auth_revoked(), k.auth_cutoffs()],
                &[&kind, &subject, &value, &crate::now_unix(), &k.events_channel(), &ev],
            )
            .await?;
        Ok(())
    }

    /// Everything, consistently.
    pub async fn load(&self) -> Result<Directory, StoreError> {
        let k = self.store.keys();
        type Reply = (Vec<(String, String)>, Vec<(String, String)>, Vec<(String, u64)>, Vec<(String, u64)>);
        let (consumers, keys, revoked, cutoffs): Reply = self
            .store
            .script(
                &scripts::AUTH_SNAPSHOT,
                &[k.auth_consumers(), k.auth_keys(), k.auth_revoked(), k.auth_cutoffs()],
                &[&crate::now_unix()],
            )
            .await?;
        let mut dir = Directory::default();
        for (id, json) in consumers {
            match serde_json::from_str::<Consumer>(&json) {
                Ok(c) => {
                    dir.consumers.insert(id, c);
                }
                Err(e) => tracing::error!(consumer = %id, error = %e, "stored consumer is unreadable"),
            }
        }
        for (digest, json) in keys {
            if let Ok(rec) = serde_json::from_str::<KeyRecord>(&json) {
                dir.keys.insert(digest, rec);
            }
        }
        // Unreadable members (a bare `jti` of an earlier version) revoke nothing.
        dir.revoked = revoked.into_iter().filter_map(|(m, exp)| Some((TokenRef::parse(&m)?, exp))).collect();
        dir.cutoffs = cutoffs.into_iter().collect();
        Ok(dir)
    }
}
