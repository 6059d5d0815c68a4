//! The Redis connection layer: one shared connection for commands and scripts (`Store`;
//! standalone adds up to `pool_size - 1` per-thread ones, `local`), every call bounded by
//! `command_timeout`, for the three deployments of SPEC §3 —
//! standalone (a self-reconnecting `ConnectionManager`), Sentinel (the same, to the master
//! the sentinels name, re-discovered after a failover) and Cluster (a `ClusterConnection`
//! routing each command to its slot's owner) — plus the key schema (`keys`), the scripts
//! (`scripts`) and the Pub/Sub subscriber (`events`).
//!
//! A node may start while Redis is down: `Store` then answers `Unavailable` at once until
//! the background connector succeeds, and callers use their fallback. No request waits
//! for a reconnection or a master discovery: those run in the background.

pub mod connect;
pub mod events;
pub mod guard;
pub mod keys;
mod local;
pub mod scripts;
mod sentinel;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::{AsyncConnectionConfig, ConnectionInfo, FromRedisValue, TlsCertificates, ToRedisArgs};
use tokio::sync::watch;

pub use connect::{Dedicated, TlsFiles, redact};
pub use keys::Keys;

use crate::status::NodeStatus;
use connect::{Conn, DedicatedConn};
use sentinel::SentinelTarget;

/// Which Redis deployment to talk to.
#[derive(Clone, Debug, Default)]
pub enum Topology {
    /// One server at `url`.
    #[default]
    Standalone,
    /// A Sentinel-managed master: `url` gives credentials, database and `rediss://`; the
    /// address comes from the sentinels.
    Sentinel {
        /// `host:port` or `redis[s]://[user:pass@]host:port` of each sentinel.
        sentinels: Vec<String>,
        /// The monitored master's name.
        master_name: String,
        /// Password for sentinels whose address carries none (sentinel AUTH often
        /// differs from the data nodes'); `None`: no AUTH to sentinels.
        sentinel_password: Option<String>,
    },
    /// Redis Cluster: seed nodes as `redis[s]://[user:pass@]host:port` (empty: `url`);
    /// credentials missing from the seeds come from `url`.
    Cluster {
        /// Seed nodes.
        nodes: Vec<String>,
    },
}

/// How to reach Redis.
#[derive(Clone)]
pub struct StoreConfig {
    /// `redis://` / `rediss://` URL (may carry credentials: never log it, see `redact`).
    pub url: String,
    /// Standalone, Sentinel or Cluster.
    pub topology: Topology,
    /// CA and client certificate for `rediss://`.
    pub tls: TlsFiles,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Bound on every command.
    pub command_timeout: Duration,
    /// Key prefix.
    pub key_prefix: String,
    /// Standalone only: the most command connections one node opens to the server — the
    /// shared one plus up to `pool_size - 1` per-thread ones (`local`); threads beyond
    /// that use the shared connection. Sentinel and Cluster ignore it (one shared
    /// connection, one per cluster node).
    pub pool_size: usize,
}

/// `[redis] pool_size` when the config does not say.
pub const DEFAULT_POOL_SIZE: usize = 16;

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redact(&self.url))
            .field("topology", &self.topology_name())
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl StoreConfig {
    /// `standalone`, `sentinel` or `cluster`, for logs.
    pub fn topology_name(&self) -> &'static str {
        match self.topology {
            Topology::Standalone => "standalone",
            Topology::Sentinel { .. } => "sentinel",
            Topology::Cluster { .. } => "cluster",
        }
    }
}

/// Why a Redis call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not connected (yet, or any more).
    #[error("redis is unavailable")]
    Unavailable,
    /// No answer within `command_timeout`.
    #[error("redis did not answer in time")]
    Timeout,
    /// Redis answered with an error.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// The reply did not have the expected shape.
    #[error("unexpected redis reply: {0}")]
    Reply(String),
    /// The settings cannot be used (bad URL, unreadable certificate).
    #[error("redis settings: {0}")]
    Config(String),
}

/// Where the connections go, per deployment.
enum Target {
    Standalone(redis::Client),
    Sentinel(Arc<SentinelTarget>),
    Cluster {
        /// Commands: each node's answer bounded by `command_timeout`.
        commands: Box<ClusterClient>,
        /// Blocking commands: no response bound.
        blocking: Box<ClusterClient>,
        /// One client per seed node, for Pub/Sub.
        seeds: Vec<redis::Client>,
    },
}

/// Shared handle to Redis (cheap to clone).
#[derive(Clone)]
pub struct Store {
    target: Arc<Target>,
    conn: Arc<ArcSwapOption<Conn>>,
    /// Bumped whenever the connection moves to another server (Sentinel failover), so
    /// dedicated connections (the Pub/Sub subscriber) follow.
    moved: Arc<watch::Sender<u64>>,
    cfg: Arc<StoreConfig>,
    keys: Keys,
    status: NodeStatus,
    /// Actor label for `gateway_redis_command_duration_seconds`.
    actor: &'static str,
    /// The breaker around Redis, shared by every actor of the node.
    guard: Arc<guard::RedisGuard>,
    /// Threads holding a connection of their own (standalone), at most `pool_size - 1`.
    per_thread: Arc<local::Budget>,
}

impl Store {
    /// A store for `cfg`; does not connect yet (see `connect_with_retry`). Fails on
    /// unusable settings (bad URL, unreadable TLS files).
    pub fn new(cfg: StoreConfig, status: NodeStatus) -> Result<Self, StoreError> {
        let base = connect::parse(&cfg.url)?;
        let certs = cfg.tls.load()?;
        let target = match &cfg.topology {
            Topology::Standalone => Target::Standalone(connect::client(base, certs.as_ref())?),
            Topology::Sentinel { sentinels, master_name, sentinel_password } => {
                Target::Sentinel(Arc::new(SentinelTarget::new(
                    sentinels,
                    sentinel_password.as_deref(),
                    master_name,
                    base,
                    certs,
                    cfg.connect_timeout,
                )?))
            }
            Topology::Cluster { nodes } => cluster_target(nodes, &base, certs.as_ref(), &cfg)?,
        };
        let keys = Keys::new(&cfg.key_prefix);
        if !matches!(cfg.topology, Topology::Standalone) && cfg.pool_size != DEFAULT_POOL_SIZE {
            tracing::info!(
                pool_size = cfg.pool_size,
                mode = cfg.topology_name(),
                "redis.pool_size applies to standalone redis only: this mode multiplexes one command connection (per cluster node)"
            );
        }
        Ok(Self {
            target: Arc::new(target),
            conn: Arc::new(ArcSwapOption::empty()),
            moved: Arc::new(watch::channel(0).0),
            cfg: Arc::new(cfg),
            keys,
            status,
            actor: "gateway",
            guard: Arc::new(guard::RedisGuard::default()),
            per_thread: Arc::new(local::Budget::default()),
        })
    }

    /// The same store, with commands timed under `actor` in the metrics.
    pub fn for_actor(&self, actor: &'static str) -> Self {
        Self { actor, ..self.clone() }
    }

    /// The key schema.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Settings.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Identifies the Redis deployment this handle talks to (equal for every clone).
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.target) as usize
    }

    /// Whether this is Redis Cluster (where one script's keys must share a slot).
    pub fn is_cluster(&self) -> bool {
        matches!(*self.target, Target::Cluster { .. })
    }

    /// Node status board (Redis up/down is recorded here).
    pub fn status(&self) -> &NodeStatus {
        &self.status
    }

    /// Changes (the value is a counter) whenever commands move to another server — a
    /// Sentinel failover — so holders of dedicated connections reconnect.
    pub fn moved(&self) -> watch::Receiver<u64> {
        self.moved.subscribe()
    }

    /// Settings of every multiplexed command connection: bounded connect and answers.
    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.cfg.connect_timeout))
            .set_response_timeout(Some(self.cfg.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500))
    }

    /// Tries to connect once (for Sentinel: discovers the master first).
    pub async fn connect(&self) -> Result<(), StoreError> {
        let config = self.manager_config();
        let bound = self.cfg.connect_timeout * 4;
        let conn = match &*self.target {
            Target::Standalone(client) => {
                let attempt = ConnectionManager::new_with_config(client.clone(), config);
                Conn::Single(tokio::time::timeout(bound, attempt).await.map_err(|_| StoreError::Timeout)??)
            }
            Target::Sentinel(s) => {
                let (conn, changed) =
                    tokio::time::timeout(bound * 2, s.connect(config)).await.map_err(|_| StoreError::Timeout)??;
                if changed {
                    if let Some((host, port)) = s.current() {
                        tracing::info!(%host, port, "following the redis master named by the sentinels");
                    }
                    self.moved.send_modify(|n| *n += 1);
                }
                Conn::Single(conn)
            }
            Target::Cluster { commands, .. } => {
                let attempt = commands.get_async_connection();
                Conn::Cluster(tokio::time::timeout(bound, attempt).await.map_err(|_| StoreError::Timeout)??)
            }
        };
        self.conn.store(Some(Arc::new(conn)));
        Ok(())
    }

    /// Connects, retrying with backoff (up to 5 s between tries) until it succeeds. Each
    /// failure is logged with the redacted address, never the credentials.
    pub async fn connect_with_retry(&self) {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.connect().await {
                Ok(()) => {
                    tracing::info!(redis = %redact(&self.cfg.url), mode = self.cfg.topology_name(), "redis connected");
                    return;
                }
                Err(e) => {
                    self.status.set_redis_up(false);
                    tracing::warn!(
                        redis = %redact(&self.cfg.url),
                        mode = self.cfg.topology_name(),
                        error = %e,
                        retry_in_ms = delay.as_millis() as u64,
                        "redis connect failed"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// A dedicated Pub/Sub connection, bounded by the connect timeout: standalone → the
    /// server; Sentinel → the current master; Cluster → the first reachable seed node
    /// (classic `PUBLISH` reaches every node of a cluster). Re-open it when `moved`
    /// changes or its stream ends.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, StoreError> {
        let bound = self.cfg.connect_timeout * 4;
        let clients = match &*self.target {
            Target::Standalone(c) => vec![c.clone()],
            Target::Sentinel(s) => vec![self.sentinel_master(s).await?],
            Target::Cluster { seeds, .. } => seeds.clone(),
        };
        let mut last = StoreError::Unavailable;
        for c in clients {
            match tokio::time::timeout(bound, c.get_async_pubsub()).await {
                Ok(Ok(ps)) => return Ok(ps),
                Ok(Err(e)) => last = StoreError::Redis(e),
                Err(_) => last = StoreError::Timeout,
            }
        }
        Err(last)
    }

    /// A dedicated connection for blocking commands (`BLMOVE`, `BRPOP`): never shared
    /// with other callers and with no response timeout, so one blocked command delays
    /// nothing else. Contract: the caller bounds each call itself (a timeout longer than
    /// the block time), runs one blocking command at a time on it, and opens a new one
    /// after an error or when `moved` changes. Standalone → the server; Sentinel → the
    /// current master; Cluster → its own `ClusterConnection` that routes by key, so every
    /// key of one blocking command must share a hash tag (`BLMOVE {q:x}:ready {q:x}:run`).
    pub async fn dedicated(&self) -> Result<Dedicated, StoreError> {
        let bound = self.cfg.connect_timeout * 4;
        let single = |c: redis::Client| async move {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.cfg.connect_timeout))
                .set_response_timeout(None);
            let conn = tokio::time::timeout(bound, c.get_multiplexed_async_connection_with_config(&config))
                .await
                .map_err(|_| StoreError::Timeout)??;
            Ok::<_, StoreError>(Dedicated(DedicatedConn::Single(conn)))
        };
        match &*self.target {
            Target::Standalone(c) => single(c.clone()).await,
            Target::Sentinel(s) => single(self.sentinel_master(s).await?).await,
            Target::Cluster { blocking, .. } => {
                let conn = tokio::time::timeout(bound, blocking.get_async_connection())
                    .await
                    .map_err(|_| StoreError::Timeout)??;
                Ok(Dedicated(DedicatedConn::Cluster(conn)))
            }
        }
    }

    /// The master's client, discovering it when none is known yet.
    async fn sentinel_master(&self, s: &SentinelTarget) -> Result<redis::Client, StoreError> {
        if let Some(m) = s.master.load_full() {
            return Ok(m.client.clone());
        }
        self.connect().await?;
        s.master.load_full().map(|m| m.client.clone()).ok_or(StoreError::Unavailable)
    }

    /// Sentinel: after a failure a failover would explain, find the master again in the
    /// background (one search at a time) and switch to it; requests never wait for this.
    fn follow_master(&self) {
        let Target::Sentinel(s) = &*self.target else { return };
        if s.following.swap(true, Ordering::AcqRel) {
            return;
        }
        let (store, s) = (self.clone(), Arc::clone(s));
        tokio::spawn(async move {
            // Up to ~30 s per search; the next failure starts another one.
            for _ in 0..120 {
                let same = match s.discover().await {
                    Ok(addr) => s.current().as_ref() == Some(&addr),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue;
                    }
                };
                if same {
                    // The sentinels still name our server: fine if it still is the master
                    // (a timeout or a restart the manager reconnects by itself).
                    if let Ok(Conn::Single(mut c)) = store.connection()
                        && sentinel::is_master(&mut c, store.cfg.command_timeout * 4).await
                    {
                        break;
                    }
                } else if store.connect().await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            s.following.store(false, Ordering::Release);
        });
    }

    /// The connection for a command, unless the Redis guard is open (then fail at once):
    /// this thread's own connection to a single server when it is ready (see `local`;
    /// at most `pool_size - 1` threads get one), else the shared one.
    fn connection(&self) -> Result<Conn, StoreError> {
        if !self.guard.admit(crate::now_unix_ms()) {
            return Err(StoreError::Unavailable);
        }
        if let Target::Standalone(client) = &*self.target {
            let id = Arc::as_ptr(&self.target) as usize;
            let generation = *self.moved.borrow();
            if let Some(c) = local::get(id, generation) {
                return Ok(Conn::Single(c));
            }
            // Only once the shared connection exists (Redis answered): until then, fail fast.
            if self.conn.load().is_some()
                && tokio::runtime::Handle::try_current().is_ok()
                && local::begin(id, generation, &self.per_thread, self.cfg.pool_size.saturating_sub(1))
            {
                let (client, config, bound) = (client.clone(), self.manager_config(), self.cfg.connect_timeout * 4);
                // On a current-thread runtime (every actix arbiter) this runs on this thread.
                tokio::spawn(async move {
                    let conn = tokio::time::timeout(bound, ConnectionManager::new_with_config(client, config)).await;
                    local::put(id, generation, conn.ok().and_then(Result::ok));
                });
            }
        }
        self.conn.load().as_deref().cloned().ok_or(StoreError::Unavailable)
    }

    fn guard_failure(&self) {
        if self.guard.failure(crate::now_unix_ms()) {
            self.status.set_redis_up(false);
            tracing::warn!(
                failures = guard::TRIP_AFTER,
                cooldown_ms = guard::COOLDOWN.as_millis() as u64,
                "redis guard open: redis calls fail fast and actors use their fallbacks"
            );
        }
    }

    /// Runs one command with the command timeout.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.connection()?;
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(self.cfg.command_timeout, cmd.query_async(&mut conn)).await;
        self.observe(r, started)
    }

    /// Runs a pipeline (not atomic on Cluster: commands go to their slots' owners) with
    /// the command timeout.
    pub async fn pipeline<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, StoreError> {
        let mut conn = self.connection()?;
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(self.cfg.command_timeout, pipe.query_async(&mut conn)).await;
        self.observe(r, started)
    }

    /// Runs a script (EVALSHA, loading it on NOSCRIPT) with the command timeout. On
    /// Cluster every key must be in `keys` and share one hash tag.
    pub async fn script<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[&dyn ToRedisArgsDyn],
    ) -> Result<T, StoreError> {
        self.invoke(script, keys, |inv| {
            for a in args {
                inv.arg(a.to_args());
            }
        })
        .await
    }

    /// `script` with arguments already encoded (no conversion per argument).
    pub async fn script_bytes<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[Vec<u8>],
    ) -> Result<T, StoreError> {
        self.invoke(script, keys, |inv| {
            for a in args {
                inv.arg(a.as_slice());
            }
        })
        .await
    }

    async fn invoke<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[String],
        add_args: impl FnOnce(&mut redis::ScriptInvocation<'_>),
    ) -> Result<T, StoreError> {
        let mut conn = self.connection()?;
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        add_args(&mut inv);
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(self.cfg.command_timeout, inv.invoke_async(&mut conn)).await;
        self.observe(r, started)
    }

    fn observe<T>(
        &self,
        r: Result<Result<T, redis::RedisError>, tokio::time::error::Elapsed>,
        started: std::time::Instant,
    ) -> Result<T, StoreError> {
        metrics::histogram!(crate::names::M_REDIS_DURATION, "actor" => self.actor)
            .record(started.elapsed().as_secs_f64());
        match r {
            Ok(Ok(v)) => {
                self.status.set_redis_up(true);
                if self.guard.success() {
                    tracing::info!("redis guard closed: redis answers again");
                }
                Ok(v)
            }
            Ok(Err(e)) => {
                let lost = e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout();
                if lost {
                    self.status.set_redis_up(false);
                    self.guard_failure();
                } else if self.guard.success() {
                    // Redis answered (with an error of the command): it is reachable.
                    tracing::info!("redis guard closed: redis answers again");
                }
                if lost || e.code() == Some("READONLY") {
                    self.follow_master();
                }
                metrics::counter!(crate::names::M_REDIS_ERRORS).increment(1);
                Err(StoreError::Redis(e))
            }
            Err(_) => {
                metrics::counter!(crate::names::M_REDIS_ERRORS).increment(1);
                self.guard_failure();
                self.follow_master();
                Err(StoreError::Timeout)
            }
        }
    }
}

/// Object-safe wrapper so scripts can take mixed argument types.
pub trait ToRedisArgsDyn {
    /// The argument as Redis bytes.
    fn to_args(&self) -> Vec<Vec<u8>>;
}

impl<T: ToRedisArgs> ToRedisArgsDyn for T {
    fn to_args(&self) -> Vec<Vec<u8>> {
        self.to_redis_args()
    }
}

/// The Cluster clients: one for commands, one for blocking commands, one per seed for
/// Pub/Sub.
fn cluster_target(
    nodes: &[String],
    base: &ConnectionInfo,
    certs: Option<&TlsCertificates>,
    cfg: &StoreConfig,
) -> Result<Target, StoreError> {
    let seeds: Vec<ConnectionInfo> = if nodes.is_empty() {
        vec![base.clone()]
    } else {
        nodes.iter().map(|n| connect::parse(n)).collect::<Result<_, _>>()?
    };
    let commands = connect::cluster_client(&seeds, base, certs, cfg.connect_timeout, Some(cfg.command_timeout))?;
    let blocking = connect::cluster_client(&seeds, base, certs, cfg.connect_timeout, None)?;
    let seed_clients = seeds
        .iter()
        .map(|info| {
            let mut info = info.clone();
            let settings = info.redis_settings().clone();
            if settings.password().is_none() {
                let mut s = settings;
                if let Some(u) = base.redis_settings().username() {
                    s = s.set_username(u);
                }
                if let Some(p) = base.redis_settings().password() {
                    s = s.set_password(p);
                }
                info = info.set_redis_settings(s);
            }
            connect::client(info, certs)
        })
        .collect::<Result<_, _>>()?;
    Ok(Target::Cluster { commands: Box::new(commands), blocking: Box::new(blocking), seeds: seed_clients })
}
