//! The Redis connection layer: one multiplexed, self-reconnecting connection for
//! commands and scripts (`Store`), every call bounded by `command_timeout`, plus the key
//! schema (`keys`), the scripts (`scripts`) and the Pub/Sub subscriber (`events`).
//!
//! A node may start while Redis is down: `Store` then answers `Unavailable` at once until
//! the background connector succeeds, and callers use their fallback.

pub mod events;
pub mod keys;
pub mod scripts;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, ToRedisArgs};

pub use keys::Keys;

use crate::status::NodeStatus;

/// How to reach Redis.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// `redis://` / `rediss://` URL (may carry credentials: never log it).
    pub url: String,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Bound on every command.
    pub command_timeout: Duration,
    /// Key prefix.
    pub key_prefix: String,
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
}

/// Shared handle to Redis (cheap to clone).
#[derive(Clone)]
pub struct Store {
    client: redis::Client,
    conn: Arc<ArcSwapOption<ConnectionManager>>,
    cfg: Arc<StoreConfig>,
    keys: Keys,
    status: NodeStatus,
    /// Actor label for `gateway_redis_command_duration_seconds`.
    actor: &'static str,
}

impl Store {
    /// A store for `cfg`; does not connect yet (see `connect_in_background`).
    pub fn new(cfg: StoreConfig, status: NodeStatus) -> Result<Self, StoreError> {
        let client = redis::Client::open(cfg.url.as_str())?;
        let keys = Keys::new(&cfg.key_prefix);
        Ok(Self { client, conn: Arc::new(ArcSwapOption::empty()), cfg: Arc::new(cfg), keys, status, actor: "gateway" })
    }

    /// The same store, with commands timed under `actor` in the metrics.
    pub fn for_actor(&self, actor: &'static str) -> Self {
        Self { actor, ..self.clone() }
    }

    /// The key schema.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The client, for dedicated connections (Pub/Sub, blocking commands).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Settings.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Node status board (Redis up/down is recorded here).
    pub fn status(&self) -> &NodeStatus {
        &self.status
    }

    /// Tries to connect once.
    pub async fn connect(&self) -> Result<(), StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.cfg.connect_timeout))
            .set_response_timeout(Some(self.cfg.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let attempt = ConnectionManager::new_with_config(self.client.clone(), config);
        let conn =
            tokio::time::timeout(self.cfg.connect_timeout * 4, attempt).await.map_err(|_| StoreError::Timeout)??;
        self.conn.store(Some(Arc::new(conn)));
        Ok(())
    }

    /// Connects, retrying with backoff (up to 5 s between tries) until it succeeds.
    pub async fn connect_with_retry(&self) {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.connect().await {
                Ok(()) => return,
                Err(e) => {
                    self.status.set_redis_up(false);
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "redis connect failed");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn connection(&self) -> Result<ConnectionManager, StoreError> {
        self.conn.load().as_deref().cloned().ok_or(StoreError::Unavailable)
    }

    /// Runs one command with the command timeout.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.connection()?;
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(self.cfg.command_timeout, cmd.query_async(&mut conn)).await;
        self.observe(r, started)
    }

    /// Runs a pipeline with the command timeout.
    pub async fn pipeline<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, StoreError> {
        let mut conn = self.connection()?;
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(self.cfg.command_timeout, pipe.query_async(&mut conn)).await;
        self.observe(r, started)
    }

    /// Runs a script (EVALSHA, loading it on NOSCRIPT) with the command timeout.
    pub async fn script<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[&dyn ToRedisArgsDyn],
    ) -> Result<T, StoreError> {
        let mut conn = self.connection()?;
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        for a in args {
            inv.arg(a.to_args());
        }
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
                Ok(v)
            }
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
                    self.status.set_redis_up(false);
                }
                metrics::counter!(crate::names::M_REDIS_ERRORS).increment(1);
                Err(StoreError::Redis(e))
            }
            Err(_) => {
                metrics::counter!(crate::names::M_REDIS_ERRORS).increment(1);
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
