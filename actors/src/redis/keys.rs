//! Every Redis key and channel name, in one place. Keys that one script touches together
//! share a hash tag (`{registry}`), so every script also runs on Redis Cluster.

use std::sync::Arc;

/// Builds keys under the configured prefix (default `gw:`).
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: Arc<str>,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.into() }
    }

    /// The configured prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Pub/Sub channel carrying every cluster event (`gw:events`).
    pub fn events_channel(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// Registry version counter (string, INCR).
    pub fn registry_version(&self) -> String {
        format!("{}{{registry}}:version", self.prefix)
    }

    /// Random id written when a node seeds an empty registry; when it changes or
    /// disappears, Redis has lost (or replaced) its data and file services are rewritten.
    pub fn registry_epoch(&self) -> String {
        format!("{}{{registry}}:epoch", self.prefix)
    }

    /// Set of service names.
    pub fn registry_services(&self) -> String {
        format!("{}{{registry}}:services", self.prefix)
    }

    /// Prefix of the per-service hashes (`spec`, `source`, `updated_at`).
    pub fn registry_service_prefix(&self) -> String {
        format!("{}{{registry}}:service:", self.prefix)
    }

    /// One service's hash.
    pub fn registry_service(&self, name: &str) -> String {
        format!("{}{name}", self.registry_service_prefix())
    }

    /// Prefix of the per-service instance hashes (instance id → JSON).
    pub fn registry_instances_prefix(&self) -> String {
        format!("{}{{registry}}:instances:", self.prefix)
    }

    /// One service's instances hash.
    pub fn registry_instances(&self, name: &str) -> String {
        format!("{}{name}", self.registry_instances_prefix())
    }

    /// Prefix of the per-service health hashes (endpoint id → "1"/"0").
    pub fn registry_health_prefix(&self) -> String {
        format!("{}{{registry}}:health:", self.prefix)
    }

    /// One service's health hash.
    pub fn registry_health(&self, name: &str) -> String {
        format!("{}{name}", self.registry_health_prefix())
    }

    /// Capped list of recent registry events (newest first), for SSE resume.
    pub fn registry_log(&self) -> String {
        format!("{}{{registry}}:log", self.prefix)
    }

    /// Consumers: id → consumer JSON.
    pub fn auth_consumers(&self) -> String {
        format!("{}{{auth}}:consumers", self.prefix)
    }

    /// API keys: SHA-256 (hex) of the key → `{"key_id","consumer","name","created_at"}`.
    pub fn auth_keys(&self) -> String {
        format!("{}{{auth}}:keys", self.prefix)
    }

    /// Revoked token ids (or token hashes), scored by the token's expiry (unix s).
    pub fn auth_revoked(&self) -> String {
        format!("{}{{auth}}:revoked", self.prefix)
    }

    /// Subject cutoffs: sub → unix seconds; tokens of sub issued before are revoked.
    pub fn auth_cutoffs(&self) -> String {
        format!("{}{{auth}}:cutoffs", self.prefix)
    }

    /// Rate-limit counter of `policy` for key value `key`; the hash tag is the key value,
    /// so the policies of one request share a slot when they share a key.
    pub fn rate_limit(&self, policy: &str, key: &str) -> String {
        format!("{}{{rl:{key}}}:{policy}", self.prefix)
    }

    /// Sequence hash of a sliding-log counter (member ids); same slot as the counter.
    pub fn rate_limit_seq(&self, policy: &str, key: &str) -> String {
        format!("{}:seq", self.rate_limit(policy, key))
    }

    /// Circuit breakers: `<service>/<instance>` → breaker JSON (`domain/src/circuit/machine.rs`).
    pub fn circuits(&self) -> String {
        format!("{}{{circuit}}:breakers", self.prefix)
    }

    /// Prefix of one service's cache keys; everything one cache script touches shares
    /// the service's hash tag.
    pub fn cache_prefix(&self, service: &str) -> String {
        format!("{}{{cache:{service}}}:", self.prefix)
    }

    /// One cached record (response or Vary marker) by key hash.
    pub fn cache_entry(&self, service: &str, key_hash: &str) -> String {
        format!("{}e:{key_hash}", self.cache_prefix(service))
    }

    /// The key hashes stored for one URL (every consumer and variant), for invalidation.
    pub fn cache_url_set(&self, service: &str, url_hash: &str) -> String {
        format!("{}u:{url_hash}", self.cache_prefix(service))
    }

    /// The service's cached URLs scored by last store time (purge by prefix).
    pub fn cache_urls(&self, service: &str) -> String {
        format!("{}urls", self.cache_prefix(service))
    }

    /// Cross-node fill lock of one key.
    pub fn cache_lock(&self, service: &str, key_hash: &str) -> String {
        format!("{}lock:{key_hash}", self.cache_prefix(service))
    }

    /// Pub/Sub channel of cache fill notices (`<service> <key hash> ok|fail`).
    pub fn cache_fills_channel(&self) -> String {
        format!("{}cache:fills", self.prefix)
    }

    /// Everything of one service's queue shares the hash tag `{q:<service>}`: every queue
    /// script touches one slot. This is the common start, `gw:{q:<service>}:`.
    pub fn queue_base(&self, service: &str) -> String {
        format!("{}{{q:{service}}}:", self.prefix)
    }

    /// Waiting job ids (list: pushed left, taken right).
    pub fn queue_pending(&self, service: &str) -> String {
        format!("{}pending", self.queue_base(service))
    }

    /// Job ids held by workers (list; `BLMOVE` target).
    pub fn queue_processing(&self, service: &str) -> String {
        format!("{}processing", self.queue_base(service))
    }

    /// Dead-letter job ids (list, newest left).
    pub fn queue_dead(&self, service: &str) -> String {
        format!("{}dead", self.queue_base(service))
    }

    /// Prefix of the job hashes.
    pub fn queue_job_prefix(&self, service: &str) -> String {
        format!("{}job:", self.queue_base(service))
    }

    /// One job's hash.
    pub fn queue_job(&self, service: &str, id: &str) -> String {
        format!("{}{id}", self.queue_job_prefix(service))
    }

    /// Prefix of the lease keys.
    pub fn queue_lease_prefix(&self, service: &str) -> String {
        format!("{}lease:", self.queue_base(service))
    }

    /// One job's lease (string, PX = `lease`, value = the holder's token).
    pub fn queue_lease(&self, service: &str, id: &str) -> String {
        format!("{}{id}", self.queue_lease_prefix(service))
    }

    /// Idempotency key → job id; `digest` is the SHA-256 of consumer and key.
    pub fn queue_idempotency(&self, service: &str, digest: &str) -> String {
        format!("{}idem:{digest}", self.queue_base(service))
    }

    /// Capped stream of request records (`XADD ... MAXLEN ~ stream_max_len`).
    pub fn analytics_stream(&self) -> String {
        format!("{}{{an}}:stream", self.prefix)
    }

    /// Per-minute aggregate hash (`minute` = unix seconds / 60); each minute has its own
    /// hash tag, reads fetch a range of minutes with one pipeline.
    pub fn analytics_minute(&self, minute: u64) -> String {
        format!("{}{{an:{minute}}}", self.prefix)
    }

    /// Cluster membership: sorted set of node ids scored by last heartbeat (ms).
    pub fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    /// One node's description (JSON, expires with the node).
    pub fn node(&self, id: &str) -> String {
        format!("{}node:{id}", self.prefix)
    }

    /// Leader lease for cluster-wide chores.
    pub fn leader(&self) -> String {
        format!("{}leader", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_keys_share_one_hash_tag() {
        let k = Keys::new("gw:");
        for key in [k.registry_version(), k.registry_services(), k.registry_service("a"), k.registry_log()] {
            assert!(key.starts_with("gw:{registry}:"), "{key}");
        }
        assert_eq!(k.events_channel(), "gw:events");
        assert_eq!(k.nodes(), "gw:nodes");
    }

    #[test]
    fn queue_keys_share_the_service_hash_tag() {
        let k = Keys::new("gw:");
        assert_eq!(k.queue_pending("reports"), "gw:{q:reports}:pending");
        assert_eq!(k.queue_job("reports", "j1"), "gw:{q:reports}:job:j1");
        for key in [k.queue_processing("r"), k.queue_dead("r"), k.queue_lease("r", "j"), k.queue_idempotency("r", "d")]
        {
            assert!(key.starts_with("gw:{q:r}:"), "{key}");
        }
    }
}
