//! The registry's Redis storage: atomic writes (one script: change + version + log +
//! publish), a consistent snapshot, and single-service reads.

use std::sync::Arc;

use redis::Value;

use super::RegistryError;
use crate::redis::{Store, StoreError, scripts};

/// Length of the event log kept for SSE resume.
pub const EVENT_LOG_LEN: usize = 1000;

/// A registry write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// Fails if the service exists.
    Create,
    /// Create or replace.
    Upsert,
    /// Fails if the service is missing.
    Delete,
}

/// Where a service was defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The config file (re-written at start and after Redis lost its data).
    Config,
    /// The admin API.
    Admin,
}

impl Source {
    /// Parses the stored form (anything unknown is `admin`).
    pub fn parse(s: &str) -> Self {
        if s == "config" { Self::Config } else { Self::Admin }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Admin => "admin",
        }
    }
}

/// Result of a write that applied (or changed nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Changed; the registry is now at this version.
    At(u64),
    /// Identical upsert: nothing changed; current version.
    Unchanged(u64),
}

/// Registry operations over Redis.
#[derive(Clone)]
pub struct RegistryStore {
    store: Store,
    node: Arc<str>,
}

/// A stored service as read from Redis (not yet parsed).
#[derive(Debug, Clone)]
pub struct StoredService {
    /// Name.
    pub name: String,
    /// Spec JSON.
    pub spec: String,
    /// Where it was defined.
    pub source: Source,
    /// Instance id → instance JSON.
    pub instances: Vec<(String, String)>,
    /// Endpoint id → "1"/"0".
    pub health: Vec<(String, String)>,
}

/// An instance-level change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceOp {
    /// Create or replace an instance.
    Register,
    /// Remove an instance.
    Deregister,
    /// Extend a self-registered instance's lease.
    Heartbeat,
    /// Record an endpoint's health.
    Health,
}

impl RegistryStore {
    /// Registry storage on `store`, writing events as node `node`.
    pub fn new(store: Store, node: Arc<str>) -> Self {
        Self { store, node }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Applies one change atomically.
    pub async fn write(&self, op: WriteOp, name: &str, spec: &str, source: Source) -> Result<Written, RegistryError> {
        let k = self.store.keys();
        let op_s = match op {
            WriteOp::Create => "create",
            WriteOp::Upsert => "upsert",
            WriteOp::Delete => "delete",
        };
        let at = crate::now_rfc3339();
        let keys = [
            k.registry_version(),
            k.registry_services(),
            k.registry_service(name),
            k.registry_log(),
            k.registry_instances(name),
            k.registry_health(name),
        ];
        let reply: (i64, Value) = self
            .store
            .script(
                &scripts::REGISTRY_WRITE,
                &keys,
                &[&op_s, &name, &spec, &source.as_str(), &&*self.node, &k.events_channel(), &EVENT_LOG_LEN, &at],
            )
            .await
            .map_err(RegistryError::Store)?;
        match reply {
            (-1, _) => Err(RegistryError::Exists(name.to_string())),
            (-2, _) => Err(RegistryError::NotFound(name.to_string())),
            (0, v) => Ok(Written::Unchanged(int(&v).unwrap_or(0))),
            (v, _) => Ok(Written::At(v as u64)),
        }
    }

    /// A consistent copy (version 0 when empty) and the data epoch (`None`: never seeded,
    /// or Redis lost its data).
    pub async fn snapshot(&self) -> Result<(u64, Vec<StoredService>, Option<String>), StoreError> {
        // Every key a script touches is declared (Redis Cluster), so the names are read
        // first; the script reports when they changed meanwhile and the read is retried.
        for _ in 0..5 {
            let names: Vec<String> =
                self.store.query(redis::cmd("SMEMBERS").arg(self.store.keys().registry_services())).await?;
            if let Some(snapshot) = self.snapshot_of(&names).await? {
                return Ok(snapshot);
            }
        }
        Err(StoreError::Reply("the service set kept changing during the snapshot".into()))
    }

    async fn snapshot_of(
        &self,
        names: &[String],
    ) -> Result<Option<(u64, Vec<StoredService>, Option<String>)>, StoreError> {
        let k = self.store.keys();
        type Row = (String, String, String, Vec<(String, String)>, Vec<(String, String)>);
        let mut keys = vec![k.registry_version(), k.registry_services(), k.registry_epoch()];
        for n in names {
            keys.extend([k.registry_service(n), k.registry_instances(n), k.registry_health(n)]);
        }
        let args: Vec<&dyn crate::redis::ToRedisArgsDyn> =
            names.iter().map(|n| n as &dyn crate::redis::ToRedisArgsDyn).collect();
        let reply: (Option<u64>, Vec<Row>, Option<String>, i64) =
            self.store.script(&scripts::REGISTRY_SNAPSHOT, &keys, &args).await?;
        if reply.3 != 0 {
            return Ok(None);
        }
        let rows = reply.1.into_iter().map(|(name, spec, source, instances, health)| StoredService {
            name,
            spec,
            source: Source::parse(&source),
            instances,
            health,
        });
        Ok(Some((reply.0.unwrap_or(0), rows.collect(), reply.2)))
    }

    /// Marks the data as seeded (first writer wins) and answers the epoch in force.
    pub async fn ensure_epoch(&self) -> Result<String, StoreError> {
        let key = self.store.keys().registry_epoch();
        let fresh = uuid_like();
        let _: Option<String> = self.store.query(redis::cmd("SET").arg(&key).arg(&fresh).arg("NX")).await?;
        let current: Option<String> = self.store.query(redis::cmd("GET").arg(&key)).await?;
        current.ok_or_else(|| StoreError::Reply("epoch vanished".into()))
    }

    /// One service (`None` when deleted) with the current version.
    pub async fn get(&self, name: &str) -> Result<(u64, Option<StoredService>), StoreError> {
        let k = self.store.keys();
        type Reply = (Option<u64>, Option<String>, String, Vec<(String, String)>, Vec<(String, String)>);
        let reply: Reply = self
            .store
            .script(
                &scripts::REGISTRY_GET,
                &[k.registry_version(), k.registry_service(name), k.registry_instances(name), k.registry_health(name)],
                &[],
            )
            .await?;
        let (version, spec, source, instances, health) = reply;
        let stored = spec.map(|spec| StoredService {
            name: name.to_string(),
            spec,
            source: Source::parse(&source),
            instances,
            health,
        });
        Ok((version.unwrap_or(0), stored))
    }

    /// Applies one instance change atomically (`payload`: instance JSON or "1"/"0").
    pub async fn instance(
        &self,
        op: InstanceOp,
        service: &str,
        id: &str,
        payload: &str,
    ) -> Result<Written, RegistryError> {
        let k = self.store.keys();
        let op_s = match op {
            InstanceOp::Register => "register",
            InstanceOp::Deregister => "deregister",
            InstanceOp::Heartbeat => "heartbeat",
            InstanceOp::Health => "health",
        };
        let at = crate::now_rfc3339();
        let keys = [
            k.registry_version(),
            k.registry_service(service),
            k.registry_instances(service),
            k.registry_log(),
            k.registry_health(service),
        ];
        let reply: (i64, Value) = self
            .store
            .script(
                &scripts::INSTANCE_WRITE,
                &keys,
                &[&op_s, &service, &id, &payload, &&*self.node, &k.events_channel(), &EVENT_LOG_LEN, &at],
            )
            .await
            .map_err(RegistryError::Store)?;
        match reply {
            (-2, _) => Err(RegistryError::NotFound(service.to_string())),
            (-3, _) => Err(RegistryError::InstanceNotFound(id.to_string())),
            (0, v) => Ok(Written::Unchanged(int(&v).unwrap_or(0))),
            (v, _) => Ok(Written::At(v as u64)),
        }
    }

    /// Removes instances whose lease ran out; returns how many.
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        let k = self.store.keys();
        let names: Vec<String> = self.store.query(redis::cmd("SMEMBERS").arg(k.registry_services())).await?;
        let mut keys = vec![k.registry_version(), k.registry_services(), k.registry_log()];
        for n in &names {
            keys.extend([k.registry_instances(n), k.registry_health(n)]);
        }
        let (node, channel, at) = (&*self.node, k.events_channel(), crate::now_rfc3339());
        let mut args: Vec<&dyn crate::redis::ToRedisArgsDyn> = vec![&node, &channel, &EVENT_LOG_LEN, &at];
        args.extend(names.iter().map(|n| n as &dyn crate::redis::ToRedisArgsDyn));
        self.store.script(&scripts::INSTANCE_SWEEP, &keys, &args).await
    }

    /// The current version, `None` when Redis holds no registry.
    pub async fn version(&self) -> Result<Option<u64>, StoreError> {
        self.store.query(redis::cmd("GET").arg(self.store.keys().registry_version())).await
    }

    /// Recent events, oldest first, with a version above `after`.
    pub async fn events_after(&self, after: u64) -> Result<Vec<String>, StoreError> {
        let raw: Vec<String> =
            self.store.query(redis::cmd("LRANGE").arg(self.store.keys().registry_log()).arg(0).arg(-1)).await?;
        let mut out: Vec<(u64, String)> = raw
            .into_iter()
            .filter_map(|e| {
                let v = serde_json::from_str::<serde_json::Value>(&e).ok()?.get("version")?.as_u64()?;
                (v > after).then_some((v, e))
            })
            .collect();
        out.sort_by_key(|(v, _)| *v);
        Ok(out.into_iter().map(|(_, e)| e).collect())
    }
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn uuid_like() -> String {
    let r: [u8; 16] = rand::random();
    crate::hex(&r)
}
