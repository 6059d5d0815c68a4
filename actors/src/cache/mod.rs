//! `CacheManager` and the request path's `Cache` handle (SPEC §7): an L1 per node (moka,
//! bounded by bytes, short TTL) in front of L2 in Redis (binary records with a TTL,
//! compressed above `compress_above`), the cross-node fill lock with fill notices over
//! Pub/Sub, and purges that reach every node's L1 through `cache_purge` events.
//!
//! Without Redis (memory mode, or Redis lost) L1 keeps entries for their whole storage
//! lifetime and the cache runs node-local; nothing fails for clients.
//! HTTP semantics (what to store, what to serve) live in `policy`; the gateway's
//! `pipeline/cache.rs` drives them. `policy`, `entry` and `key` are pure and live in the
//! `domain` crate (re-exported here).
//!
//! `CacheManager` owns no cache state: it is the admin and event front of the `Cache`
//! handle (purges from the admin API, `cache_purge` events from other nodes). The request
//! path uses `Cache` directly, without a mailbox hop.

pub use domain::cache::{entry, key, policy};
pub mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::broadcast;

pub use entry::{CachedResponse, Record};
pub use store::{CacheStore, Put, Scope};

use crate::redis::events::BusMessage;
use crate::status::NodeStatus;

/// `[cache]` settings.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// L1 capacity in bytes.
    pub l1_capacity: u64,
    /// L1 lifetime of an entry while Redis is reachable.
    pub l1_ttl: Duration,
    /// Upper bound on how long any record is kept.
    pub default_ttl: Duration,
    /// Largest cacheable body.
    pub max_object: u64,
    /// Bodies above this are compressed in L2.
    pub compress_above: usize,
}

#[derive(Clone)]
enum L1Value {
    Response(Arc<CachedResponse>),
    Vary(Arc<[String]>),
}

impl L1Value {
    fn weight(&self) -> usize {
        match self {
            Self::Response(r) => r.weight(),
            Self::Vary(names) => entry::vary_weight(names),
        }
    }

    fn encode(&self, compress_above: usize) -> Vec<u8> {
        match self {
            Self::Response(r) => entry::encode_response(r, compress_above),
            Self::Vary(names) => entry::encode_vary(names),
        }
    }
}

struct L1Item {
    service: Arc<str>,
    url: Arc<str>,
    value: L1Value,
    ttl: Duration,
    weight: u32,
}

struct PerEntryTtl;

impl moka::Expiry<String, Arc<L1Item>> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, v: &Arc<L1Item>, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

struct Inner {
    l1: moka::sync::Cache<String, Arc<L1Item>, foldhash::quality::RandomState>,
    store: Option<CacheStore>,
    settings: CacheSettings,
    fills: broadcast::Sender<Arc<str>>,
    status: NodeStatus,
    node: Arc<str>,
}

/// The cache as the request path uses it (cheap to clone, shared by every worker).
#[derive(Clone)]
pub struct Cache(Arc<Inner>);

/// A response found in the cache, with the key hash it was found under.
pub struct Hit {
    /// The stored response.
    pub response: Arc<CachedResponse>,
    /// Its key hash.
    pub key_hash: String,
}

impl Cache {
    /// A cache with `settings`, sharing L2 through `store` when there is one.
    pub fn new(settings: CacheSettings, store: Option<CacheStore>, status: NodeStatus, node: Arc<str>) -> Self {
        let l1 = moka::sync::Cache::builder()
            .max_capacity(settings.l1_capacity.max(1))
            .weigher(|_: &String, v: &Arc<L1Item>| v.weight)
            .expire_after(PerEntryTtl)
            .support_invalidation_closures()
            // Keys are SHA-256 hex (no client-chosen collisions): a fast seeded hash.
            .build_with_hasher(foldhash::quality::RandomState::default());
        Self(Arc::new(Inner { l1, store, settings, fills: broadcast::channel(1024).0, status, node }))
    }

    /// The settings.
    pub fn settings(&self) -> &CacheSettings {
        &self.0.settings
    }

    /// Where the Pub/Sub subscriber delivers fill notices.
    pub fn fills(&self) -> broadcast::Sender<Arc<str>> {
        self.0.fills.clone()
    }

    /// Whether L2 is in use right now (Redis configured and reachable).
    fn shared(&self) -> bool {
        self.0.store.is_some() && self.0.status.redis_state() == crate::status::RedisState::Up
    }

    fn l1_key(service: &str, key_hash: &str) -> String {
        let mut k = String::with_capacity(service.len() + key_hash.len() + 1);
        k.push_str(service);
        k.push('/');
        k.push_str(key_hash);
        k
    }

    fn remember(&self, service: &Arc<str>, url: &Arc<str>, key_hash: &str, value: L1Value, ttl: Duration) {
        if self.0.settings.l1_capacity == 0 {
            // `l1_capacity = 0` turns L1 off: every lookup goes to L2.
            return;
        }
        let weight = value.weight();
        let item = L1Item {
            service: Arc::clone(service),
            url: Arc::clone(url),
            value,
            ttl,
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
        };
        self.0.l1.insert(Self::l1_key(service, key_hash), Arc::new(item));
    }

    async fn get(&self, service: &Arc<str>, url: &Arc<str>, key_hash: &str) -> Option<L1Value> {
        if let Some(item) = self.0.l1.get(&Self::l1_key(service, key_hash)) {
            return Some(item.value.clone());
        }
        let store = self.0.store.as_ref()?;
        match store.get(service, key_hash).await {
            Ok(record) => {
                self.0.status.set_degraded("cache", false);
                let value = match record? {
                    Record::Response(r) => L1Value::Response(Arc::new(r)),
                    Record::Vary(names) => L1Value::Vary(names.into()),
                };
                self.remember(service, url, key_hash, value.clone(), self.0.settings.l1_ttl);
                Some(value)
            }
            Err(e) => {
                self.0.status.set_degraded("cache", true);
                tracing::debug!(error = %e, "cache L2 read failed; L1 only");
                None
            }
        }
    }

    /// Finds the stored response for a request: the primary key, then (when the URL's
    /// responses vary) the variant for the request's values of the named headers, which
    /// `values_of` reads.
    pub async fn lookup(
        &self,
        service: &Arc<str>,
        url: &Arc<str>,
        primary: &str,
        values_of: impl FnOnce(&[String]) -> Vec<(String, Option<Bytes>)>,
    ) -> Option<Hit> {
        match self.get(service, url, primary).await? {
            L1Value::Response(r) if r.vary.is_empty() => Some(Hit { response: r, key_hash: primary.to_string() }),
            L1Value::Response(_) => None,
            L1Value::Vary(names) => {
                let values = values_of(&names);
                let key_hash = key::variant(primary, &values);
                match self.get(service, url, &key_hash).await? {
                    L1Value::Response(r) if r.vary == values => Some(Hit { response: r, key_hash }),
                    _ => None,
                }
            }
        }
    }

    /// Stores `response` for URL `url` under `primary` (and its variant when it varies),
    /// for `ttl`. L1 is filled at once; the returned future writes L2 and announces the
    /// fill to waiting nodes (spawn it).
    pub fn save(
        &self,
        service: &Arc<str>,
        url: &Arc<str>,
        primary: &str,
        response: CachedResponse,
        ttl: Duration,
    ) -> (Arc<CachedResponse>, impl Future<Output = ()> + 'static) {
        let ttl = ttl.min(self.0.settings.default_ttl).max(Duration::from_secs(1));
        let l1_ttl = if self.shared() { ttl.min(self.0.settings.l1_ttl) } else { ttl };
        let response = Arc::new(response);
        // A response that varies: a marker naming the headers at the primary key, the
        // response itself at its variant's key.
        let mut records = Vec::with_capacity(2);
        let key_hash = if response.vary.is_empty() {
            primary.to_string()
        } else {
            let names: Arc<[String]> = response.vary.iter().map(|(n, _)| n.clone()).collect();
            records.push((primary.to_string(), L1Value::Vary(names)));
            key::variant(primary, &response.vary)
        };
        records.push((key_hash, L1Value::Response(Arc::clone(&response))));
        for (k, v) in &records {
            self.remember(service, url, k, v.clone(), l1_ttl);
        }
        let this = self.clone();
        let (service, url, primary) = (Arc::clone(service), Arc::clone(url), primary.to_string());
        let write = async move {
            let Some(store) = this.0.store.clone() else { return };
            let compress = this.0.settings.compress_above;
            let puts: Vec<Put> =
                records.iter().map(|(k, v)| Put { key_hash: k.clone(), bytes: v.encode(compress), ttl }).collect();
            let notice = format!("{service} {primary} ok");
            let index_ttl = this.0.settings.default_ttl;
            match store.put(&service, &url, &puts, index_ttl, &primary, Some(&notice)).await {
                Ok(()) => this.0.status.set_degraded("cache", false),
                Err(e) => {
                    this.0.status.set_degraded("cache", true);
                    tracing::debug!(error = %e, "cache L2 write failed; keeping the entry in L1");
                    // L1-only operation: keep the entry for its whole lifetime here.
                    for (k, v) in records {
                        this.remember(&service, &url, &k, v, ttl);
                    }
                }
            }
        };
        (response, write)
    }

    /// Takes the cross-node fill lock of `key_hash`: `Some(true)` this node fills,
    /// `Some(false)` another node is filling, `None` no shared cache right now.
    pub async fn try_lock(&self, service: &str, key_hash: &str, ttl: Duration) -> Option<bool> {
        if !self.shared() {
            return None;
        }
        let store = self.0.store.as_ref()?;
        store.try_lock(service, key_hash, &self.0.node, ttl).await.ok()
    }

    /// Gives up a fill lock (the fill failed or was not cacheable).
    pub async fn release(&self, service: &str, key_hash: &str) {
        if let Some(store) = &self.0.store {
            let _ = store.release(service, key_hash).await;
        }
    }

    /// Gives up a fill lock without a failure notice (nothing was fetched).
    pub async fn release_quietly(&self, service: &str, key_hash: &str) {
        if let Some(store) = &self.0.store {
            let _ = store.unlock(service, key_hash).await;
        }
    }

    /// Waits up to `within` for another node to fill `key_hash`; answers whether it did.
    pub async fn wait_fill(&self, service: &str, key_hash: &str, within: Duration) -> bool {
        let mut rx = self.0.fills.subscribe();
        let ok = format!("{service} {key_hash} ok");
        let fail = format!("{service} {key_hash} fail");
        // The fill may have landed before we subscribed: the lock is gone then.
        if let Some(store) = &self.0.store
            && matches!(store.is_locked(service, key_hash).await, Ok(false))
        {
            return true;
        }
        let wait = async {
            loop {
                match rx.recv().await {
                    Ok(msg) if *msg == *ok => return true,
                    Ok(msg) if *msg == *fail => return false,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return false,
                }
            }
        };
        tokio::time::timeout(within, wait).await.unwrap_or(false)
    }

    /// Drops this node's L1 entries of `service` (all services when `None`) that `scope`
    /// selects.
    pub fn purge_local(&self, service: Option<&str>, scope: &Scope) {
        let service: Option<Arc<str>> = service.map(Into::into);
        let scope = scope.clone();
        let _ = self.0.l1.invalidate_entries_if(move |_, v| {
            service.as_deref().is_none_or(|s| *v.service == *s) && scope.matches(&v.url)
        });
    }

    /// Purges `scope` of `service` everywhere: this node's L1, L2, and (through a
    /// `cache_purge` event) every other node's L1. Answers how many URLs L2 dropped.
    pub async fn purge(&self, service: &str, scope: &Scope) -> Result<usize, crate::redis::StoreError> {
        self.purge_local(Some(service), scope);
        let Some(store) = &self.0.store else { return Ok(0) };
        store.purge(service, scope, &self.0.node).await
    }

    /// Drops one key from this node's L1 (before reading what another node filled).
    pub fn forget(&self, service: &str, key_hash: &str) {
        self.0.l1.invalidate(&Self::l1_key(service, key_hash));
    }

    /// Forgets every L1 entry (after a reconnect: purges may have been missed).
    pub fn clear_local(&self) {
        self.0.l1.invalidate_all();
    }
}

/// The admin and event front of the `Cache` handle (it owns no cache state): applies
/// `cache_purge` events from other nodes and runs admin purges.
pub struct CacheManager {
    cache: Cache,
}

impl CacheManager {
    /// Manages `cache`.
    pub fn new(cache: Cache) -> Self {
        Self { cache }
    }
}

impl Actor for CacheManager {
    type Context = Context<Self>;
}

/// Nothing to repair after a panic: the state is in the `Cache` handle.
impl Supervised for CacheManager {}

/// A `cache_purge` event.
#[derive(serde::Deserialize)]
struct PurgeEvent {
    service: String,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    urls: Option<Vec<String>>,
}

impl Handler<BusMessage> for CacheManager {
    type Result = ();
    fn handle(&mut self, msg: BusMessage, _: &mut Context<Self>) {
        match msg {
            BusMessage::Connected => self.cache.clear_local(),
            BusMessage::Disconnected => {}
            BusMessage::Event(ev) if ev.kind == "cache_purge" => {
                let Ok(p) = serde_json::from_str::<PurgeEvent>(&ev.raw) else { return };
                let scope = match (p.prefix, p.urls) {
                    (_, Some(urls)) => Scope::Urls(urls),
                    (Some(prefix), None) => Scope::Prefix(prefix),
                    (None, None) => Scope::All,
                };
                self.cache.purge_local(Some(&p.service), &scope);
            }
            BusMessage::Event(_) => {}
        }
    }
}

/// Purges `scope` of each of `services`; answers the URLs dropped from L2.
#[derive(Message)]
#[rtype(result = "Result<usize, crate::redis::StoreError>")]
pub struct Purge {
    /// Services to purge.
    pub services: Vec<String>,
    /// What to purge in each.
    pub scope: Scope,
}

impl Handler<Purge> for CacheManager {
    type Result = ResponseFuture<Result<usize, crate::redis::StoreError>>;
    fn handle(&mut self, msg: Purge, _: &mut Context<Self>) -> Self::Result {
        let cache = self.cache.clone();
        Box::pin(async move {
            let mut total = 0;
            for s in &msg.services {
                total += cache.purge(s, &msg.scope).await?;
            }
            Ok(total)
        })
    }
}
