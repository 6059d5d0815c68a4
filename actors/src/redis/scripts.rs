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
