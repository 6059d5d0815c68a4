//! `Membership`: this node's heartbeat in `gw:nodes` (every second, on the Redis clock;
//! a node silent for 3 s is gone) and the list of live nodes. The live count feeds the
//! rate limiter's local fallback (limit / live nodes).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use crate::redis::{Store, StoreError, scripts};
use crate::status::NodeStatus;

/// Heartbeat period.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Leader lease: renewed every heartbeat, so a dead leader is replaced within this.
pub const LEADER_LEASE: Duration = Duration::from_secs(3);
/// Silence after which a node is gone.
pub const GONE_AFTER: Duration = Duration::from_secs(3);

/// A node as listed by `GET /admin/nodes`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node id.
    pub id: String,
    /// Its proxy listener address.
    pub address: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// RFC 3339 time of the last heartbeat.
    pub last_seen: String,
}

/// List live nodes.
#[derive(Message)]
#[rtype(result = "Result<Vec<NodeInfo>, StoreError>")]
pub struct ListNodes;

/// Leave the cluster now (graceful shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave;

/// The membership actor.
pub struct Membership {
    me: NodeInfo,
    store: Option<Store>,
    status: NodeStatus,
}

impl Membership {
    /// Membership of node `id` listening on `address`; `store` is `None` in memory mode.
    pub fn new(id: &str, address: String, store: Option<Store>, status: NodeStatus) -> Self {
        let now = crate::now_rfc3339();
        Self { me: NodeInfo { id: id.into(), address, started_at: now.clone(), last_seen: now }, store, status }
    }
}

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(store) = self.store.clone() else { return };
        let status = self.status.clone();
        let me = Arc::new(self.me.clone());
        ctx.run_interval(HEARTBEAT, move |_, _| {
            let (store, status, me) = (store.clone(), status.clone(), Arc::clone(&me));
            actix::spawn(async move {
                let k = store.keys();
                let gone_ms = GONE_AFTER.as_millis() as u64;
                let live: Result<u32, _> =
                    store.script(&scripts::NODE_HEARTBEAT, &[k.nodes()], &[&me.id.as_str(), &gone_ms]).await;
                let info = serde_json::json!({"id": me.id, "address": me.address, "started_at": me.started_at});
                let set = store
                    .query::<()>(redis::cmd("SET").arg(k.node(&me.id)).arg(info.to_string()).arg("PX").arg(gone_ms))
                    .await;
                match (live, set) {
                    (Ok(n), Ok(())) => status.set_live_nodes(n),
                    (Err(e), _) | (_, Err(e)) => tracing::debug!(error = %e, "membership heartbeat failed"),
                }
                // Leader lease for cluster-wide chores; lost on any doubt.
                let lease_ms = LEADER_LEASE.as_millis() as u64;
                let lead: Result<i64, _> =
                    store.script(&scripts::LEADER_RENEW, &[k.leader()], &[&me.id.as_str(), &lease_ms]).await;
                let leader = matches!(lead, Ok(1));
                if leader != status.is_leader() {
                    tracing::info!(node = %me.id, leader, "leadership changed");
                }
                status.set_leader(leader);
            });
        });
    }
}

impl Handler<ListNodes> for Membership {
    type Result = ResponseFuture<Result<Vec<NodeInfo>, StoreError>>;
    fn handle(&mut self, _: ListNodes, _: &mut Context<Self>) -> Self::Result {
        let Some(store) = self.store.clone() else {
            let mut me = self.me.clone();
            me.last_seen = crate::now_rfc3339();
            return Box::pin(async move { Ok(vec![me]) });
        };
        Box::pin(async move {
            let k = store.keys();
            let (secs, micros): (u64, u64) = store.query(&redis::cmd("TIME")).await?;
            let now_ms = secs * 1000 + micros / 1000;
            let since = now_ms.saturating_sub(GONE_AFTER.as_millis() as u64);
            let members: Vec<(String, u64)> = store
                .query(redis::cmd("ZRANGEBYSCORE").arg(k.nodes()).arg(since).arg("+inf").arg("WITHSCORES"))
                .await?;
            let mut out = Vec::with_capacity(members.len());
            for (id, seen_ms) in members {
                let info: Option<String> = store.query(redis::cmd("GET").arg(k.node(&id))).await?;
                let info: serde_json::Value = info.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
                let field = |f: &str| info.get(f).and_then(|v| v.as_str()).unwrap_or_default().to_string();
                let seen = std::time::UNIX_EPOCH + Duration::from_millis(seen_ms);
                out.push(NodeInfo {
                    id: id.clone(),
                    address: field("address"),
                    started_at: field("started_at"),
                    last_seen: humantime::format_rfc3339_millis(seen).to_string(),
                });
            }
            Ok(out)
        })
    }
}

impl Handler<Leave> for Membership {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Leave, ctx: &mut Context<Self>) -> Self::Result {
        ctx.stop();
        let Some(store) = self.store.clone() else { return Box::pin(async {}) };
        let id = self.me.id.clone();
        self.status.set_leader(false);
        Box::pin(async move {
            let k = store.keys();
            let _ = store.query::<()>(redis::cmd("ZREM").arg(k.nodes()).arg(&id)).await;
            let _ = store.query::<()>(redis::cmd("DEL").arg(k.node(&id))).await;
        })
    }
}
