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
