//! Sentinel master discovery: ask the sentinels in turn for `master_name`'s address,
//! connect with the `[redis] url`'s credentials, database and TLS, and check that the
//! server really is a master (`ROLE`) before using it.
//!
//! Invariant: discovery never blocks a request; the `Store` runs it in the background
//! (one at a time) when a command fails in a way a failover explains.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionInfo, TlsCertificates, Value};

use super::StoreError;
use super::connect;

/// The master currently followed.
pub(crate) struct Master {
    /// `host:port` as the sentinels announce it.
    pub addr: (String, u16),
    /// Client for dedicated connections (Pub/Sub, blocking commands) to it.
    pub client: redis::Client,
}

/// What a Sentinel deployment needs: the sentinels, the master name and how to talk to
/// the master once found.
pub(crate) struct SentinelTarget {
    sentinels: Vec<redis::Client>,
    master_name: String,
    base: ConnectionInfo,
    certs: Option<TlsCertificates>,
    timeout: Duration,
    /// The master followed now (none before the first discovery).
    pub master: ArcSwapOption<Master>,
    /// Set while a background re-discovery runs (single flight).
    pub following: AtomicBool,
}

impl SentinelTarget {
    /// Sentinels are `host:port` or `redis[s]://[user:pass@]host:port`; `password` applies
    /// to those whose URL carries none.
    pub fn new(
        sentinels: &[String],
        password: Option<&str>,
        master_name: &str,
        base: ConnectionInfo,
        certs: Option<TlsCertificates>,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let mut clients = Vec::with_capacity(sentinels.len());
        for s in sentinels {
            let mut info = connect::parse(s)?;
            if let (Some(pw), None) = (password, info.redis_settings().password()) {
                let settings = info.redis_settings().clone().set_password(pw);
                info = info.set_redis_settings(settings);
            }
            // A sentinel has no databases: SELECT would fail the handshake.
            let settings = info.redis_settings().clone().set_db(0);
            info = info.set_redis_settings(settings);
            clients.push(connect::client(info, certs.as_ref())?);
        }
        if clients.is_empty() {
            return Err(StoreError::Config("mode = \"sentinel\" needs at least one sentinel".into()));
        }
        Ok(Self {
            sentinels: clients,
            master_name: master_name.to_string(),
            base,
            certs,
            timeout,
            master: ArcSwapOption::empty(),
            following: AtomicBool::new(false),
        })
    }

    /// The master's address as the first sentinel that knows it says.
    pub async fn discover(&self) -> Result<(String, u16), StoreError> {
        let mut last = StoreError::Unavailable;
        for s in &self.sentinels {
            let ask = async {
                let mut c = s.get_multiplexed_async_connection().await?;
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(&self.master_name)
                    .query_async::<Option<(String, u16)>>(&mut c)
                    .await
            };
            match tokio::time::timeout(self.timeout * 2, ask).await {
                Ok(Ok(Some(addr))) => return Ok(addr),
                Ok(Ok(None)) => last = StoreError::Reply(format!("no sentinel knows master {:?}", self.master_name)),
                Ok(Err(e)) => last = StoreError::Redis(e),
                Err(_) => last = StoreError::Timeout,
            }
        }
        Err(last)
    }

    /// Discovers the master, connects a manager to it and checks its role; the master is
    /// then the one followed. Returns the manager and whether the master changed.
    pub async fn connect(&self, config: ConnectionManagerConfig) -> Result<(ConnectionManager, bool), StoreError> {
        let addr = self.discover().await?;
        let client = connect::client(connect::retarget(&self.base, &addr.0, addr.1), self.certs.as_ref())?;
        let mut conn =
            tokio::time::timeout(self.timeout * 4, ConnectionManager::new_with_config(client.clone(), config))
                .await
                .map_err(|_| StoreError::Timeout)??;
        if !is_master(&mut conn, self.timeout * 2).await {
            return Err(StoreError::Reply(format!("{}:{} does not answer as master yet", addr.0, addr.1)));
        }
        let changed = self.master.load().as_ref().is_none_or(|m| m.addr != addr);
        self.master.store(Some(Arc::new(Master { addr, client })));
        Ok((conn, changed))
    }

    /// Address of the master followed now.
    pub fn current(&self) -> Option<(String, u16)> {
        self.master.load().as_ref().map(|m| m.addr.clone())
    }
}

/// Whether the server behind `conn` answers `ROLE` with `master`.
pub(crate) async fn is_master(conn: &mut ConnectionManager, within: Duration) -> bool {
    let role = tokio::time::timeout(within, redis::cmd("ROLE").query_async::<Vec<Value>>(conn)).await;
    match role {
        Ok(Ok(v)) => {
            matches!(v.first(), Some(Value::BulkString(b)) if b == b"master")
                || matches!(v.first(), Some(Value::SimpleString(s)) if s == "master")
        }
        _ => false,
    }
}
