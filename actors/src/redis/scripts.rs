//! The Lua scripts, loaded from `actors/lua/` at compile time and run by EVALSHA.

use std::sync::LazyLock;

use redis::Script;

/// Change one service atomically with the version bump, log and publish.
pub static REGISTRY_WRITE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/registry_write.lua")));
/// Consistent copy of the registry.
pub static REGISTRY_SNAPSHOT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/registry_snapshot.lua")));
/// One service with the current version.
pub static REGISTRY_GET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/registry_get.lua")));
/// Membership heartbeat on the Redis clock.
pub static NODE_HEARTBEAT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/node_heartbeat.lua")));
/// Change one instance (register, deregister, heartbeat, health) atomically.
pub static INSTANCE_WRITE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/instance_write.lua")));
/// Remove instances whose heartbeat TTL ran out.
pub static INSTANCE_SWEEP: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/instance_sweep.lua")));
/// Take or keep the leader lease.
pub static LEADER_RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/leader_renew.lua")));
/// Consistent read of consumers, keys, revocations and cutoffs.
pub static AUTH_SNAPSHOT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/auth_snapshot.lua")));
/// Delete a consumer with its keys.
pub static AUTH_DELETE_CONSUMER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/auth_delete_consumer.lua")));
/// Record and publish a revocation.
pub static AUTH_REVOKE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/auth_revoke.lua")));
/// Create / replace / update / delete one auth record and publish it.
pub static AUTH_PUT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/auth_put.lua")));
/// Trip / probe / probe result / reset of one circuit breaker, published when it changes.
pub static CIRCUIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/circuit.lua")));
/// Store cached records with their URL index, release the fill lock, announce the fill.
pub static CACHE_STORE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/cache_store.lua")));
/// Enqueue a job: idempotency key, max_depth, hash and push together.
pub static QUEUE_ENQUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/queue_enqueue.lua")));
/// A job's state and place in line.
pub static QUEUE_GET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/queue_get.lua")));
/// The jobs of a list (dead letters) with their state.
pub static QUEUE_LIST: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/queue_list.lua")));
/// Take the lease of a job just moved to processing and read its request.
pub static QUEUE_CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/queue_claim.lua")));
/// Extend a lease, only for its holder.
pub static QUEUE_RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/queue_renew.lua")));
/// Count a run and mark it running (or dead-letter a job out of attempts).
pub static QUEUE_START: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/queue_start.lua")));
/// Record the end of a run: result, retry or dead letter.
pub static QUEUE_FINISH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/queue_finish.lua")));
/// Give a held job back to the front of the queue.
pub static QUEUE_RETURN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/queue_return.lua")));
/// Processing job ids without a lease.
pub static QUEUE_LEASELESS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/queue_leaseless.lua")));
/// Return expired-lease jobs to the queue or the dead-letter list.
pub static QUEUE_REAP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/queue_reap.lua")));
/// Re-queue a dead letter under the same id.
pub static QUEUE_RETRY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/queue_retry.lua")));
