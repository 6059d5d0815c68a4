//! L2: cached records in Redis (binary strings with a TTL), the per-URL index used for
//! invalidation and purges, and the cross-node fill lock.

use std::time::Duration;

use redis::Value;

use super::entry::Record;
use super::key::url_hash;
use crate::redis::scripts::CACHE_STORE;
use crate::redis::{Store, StoreError};

/// One record to write.
pub struct Put {
    /// Key hash.
    pub key_hash: String,
    /// Encoded record.
    pub bytes: Vec<u8>,
    /// Lifetime in Redis.
    pub ttl: Duration,
}

/// Which URLs of a service a purge removes.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Everything.
    All,
    /// URL ids starting with this client path prefix.
    Prefix(String),
    /// Exactly these URL ids.
    Urls(Vec<String>),
}

impl Scope {
    /// Whether the URL id `url` is concerned.
    pub fn matches(&self, url: &str) -> bool {
        match self {
            Self::All => true,
            Self::Prefix(p) => url.starts_with(p.as_str()),
            Self::Urls(list) => list.iter().any(|u| u == url),
        }
    }
}

/// The cache's Redis side.
#[derive(Clone)]
pub struct CacheStore {
    store: Store,
}

impl CacheStore {
    /// Records stored through `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Reads one record.
    pub async fn get(&self, service: &str, key_hash: &str) -> Result<Option<Record>, StoreError> {
        let key = self.store.keys().cache_entry(service, key_hash);
        let raw: Option<Vec<u8>> = self.store.query(redis::cmd("GET").arg(key)).await?;
        Ok(raw.and_then(|b| Record::decode(&b)))
    }

    /// Writes records of URL `url`, indexes them, releases the fill lock of `lock_hash`
    /// and publishes `notice` when given. One round trip.
    pub async fn put(
        &self,
        service: &str,
        url: &str,
        records: &[Put],
        index_ttl: Duration,
        lock_hash: &str,
        notice: Option<&str>,
    ) -> Result<(), StoreError> {
        let k = self.store.keys();
        let mut keys =
            vec![k.cache_url_set(service, &url_hash(url)), k.cache_urls(service), k.cache_lock(service, lock_hash)];
        keys.extend(records.iter().map(|r| k.cache_entry(service, &r.key_hash)));
        let index_ms = index_ttl.as_millis() as u64;
        let now = crate::now_unix_ms();
        let channel = k.cache_fills_channel();
        let notice = notice.unwrap_or("");
        let ttls: Vec<u64> = records.iter().map(|r| (r.ttl.as_millis() as u64).max(1)).collect();
        let mut args: Vec<&dyn crate::redis::ToRedisArgsDyn> = vec![&url, &index_ms, &channel, &notice, &now];
        for (r, ttl) in records.iter().zip(&ttls) {
            args.push(ttl);
            args.push(&r.bytes);
            args.push(&r.key_hash);
        }
        let _: i64 = self.store.script(&CACHE_STORE, &keys, &args).await?;
        Ok(())
    }

    /// Takes the fill lock of a key for `ttl`; answers whether this node got it.
    pub async fn try_lock(&self, service: &str, key_hash: &str, node: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = self.store.keys().cache_lock(service, key_hash);
        let ms = (ttl.as_millis() as u64).max(1);
        let v: Value = self.store.query(redis::cmd("SET").arg(key).arg(node).arg("NX").arg("PX").arg(ms)).await?;
        Ok(matches!(v, Value::Okay))
    }

    /// Gives a fill lock up without a notice (nothing was fetched).
    pub async fn unlock(&self, service: &str, key_hash: &str) -> Result<(), StoreError> {
        let key = self.store.keys().cache_lock(service, key_hash);
        self.store.query::<i64>(redis::cmd("DEL").arg(key)).await.map(drop)
    }

    /// Whether a node holds the fill lock of a key.
    pub async fn is_locked(&self, service: &str, key_hash: &str) -> Result<bool, StoreError> {
        let key = self.store.keys().cache_lock(service, key_hash);
        self.store.query::<i64>(redis::cmd("EXISTS").arg(key)).await.map(|n| n > 0)
    }

    /// Gives a fill lock up (the fill failed) and tells waiting nodes to fetch themselves.
    pub async fn release(&self, service: &str, key_hash: &str) -> Result<(), StoreError> {
        let k = self.store.keys();
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(k.cache_lock(service, key_hash)).ignore();
        pipe.cmd("PUBLISH").arg(k.cache_fills_channel()).arg(format!("{service} {key_hash} fail")).ignore();
        self.store.pipeline::<()>(&pipe).await
    }

    /// Removes the records of the URLs of `service` that `scope` selects and tells every
    /// node to drop them from L1 (a `cache_purge` event signed by `node`); answers how many
    /// URLs were purged.
    pub async fn purge(&self, service: &str, scope: &Scope, node: &str) -> Result<usize, StoreError> {
        let n = self.purge_l2(service, scope).await?;
        let (prefix, urls) = match scope {
            Scope::All => (None, None),
            Scope::Prefix(p) => (Some(p.clone()), None),
            Scope::Urls(u) => (None, Some(u.clone())),
        };
        let event = serde_json::json!({
            "kind": "cache_purge", "service": service, "prefix": prefix, "urls": urls,
            "node": node, "at": crate::now_rfc3339(),
        });
        let channel = self.store.keys().events_channel();
        self.store.query::<i64>(redis::cmd("PUBLISH").arg(channel).arg(event.to_string())).await?;
        Ok(n)
    }

    async fn purge_l2(&self, service: &str, scope: &Scope) -> Result<usize, StoreError> {
        let k = self.store.keys();
        let urls: Vec<String> =
            self.store.query(redis::cmd("ZRANGE").arg(k.cache_urls(service)).arg(0).arg(-1)).await?;
        let mut chosen: Vec<String> = urls.into_iter().filter(|u| scope.matches(u)).collect();
        if let Scope::Urls(list) = scope {
            // Unindexed URLs may still have records (index pruned): purge them too.
            for u in list {
                if !chosen.contains(u) {
                    chosen.push(u.clone());
                }
            }
        }
        if chosen.is_empty() {
            return Ok(0);
        }
        let sets: Vec<String> = chosen.iter().map(|u| k.cache_url_set(service, &url_hash(u))).collect();
        let mut pipe = redis::pipe();
        for s in &sets {
            pipe.cmd("SMEMBERS").arg(s);
        }
        let members: Vec<Vec<String>> = self.store.pipeline(&pipe).await?;
        let mut pipe = redis::pipe();
        for hash in members.iter().flatten() {
            pipe.cmd("DEL").arg(k.cache_entry(service, hash)).ignore();
        }
        for s in &sets {
            pipe.cmd("DEL").arg(s).ignore();
        }
        pipe.cmd("ZREM").arg(k.cache_urls(service)).arg(&chosen).ignore();
        self.store.pipeline::<()>(&pipe).await?;
        Ok(chosen.len())
    }
}
