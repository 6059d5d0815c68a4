//! `JwksFetcher`: keeps the JWT verifier's JWKS keys fresh. It fetches `auth.jwt.jwks_url`
//! at start and every `jwks_refresh`, and on demand when a token names an unknown `kid`
//! (at most once per `MIN_REFETCH`), so a key rotated at the identity provider is
//! accepted at once instead of after the next scheduled refresh.

use std::time::{Duration, Instant};

use ::actors::auth::{AuthGuard, SetJwks, parse_jwks};
use ::actors::status::NodeStatus;
use actix::prelude::*;

/// Fetches closer together than this are skipped (unknown-kid storms cost one fetch).
pub const MIN_REFETCH: Duration = Duration::from_secs(5);
/// Bound on one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest accepted JWKS document.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Fetch now; answers when done. An on-demand fetch (unknown `kid`) is skipped when
/// another on-demand fetch happened within `MIN_REFETCH`.
#[derive(Message)]
#[rtype(result = "()")]
pub enum RefreshJwks {
    /// Start-up and the periodic refresh.
    Scheduled,
    /// A token named a `kid` nobody knows.
    UnknownKid,
}

/// The fetcher actor (lives on the system arbiter; owns its HTTP client).
pub struct JwksFetcher {
    url: String,
    refresh: Duration,
    guard: Addr<AuthGuard>,
    client: Option<crate::proxy::Fetcher>,
    last_on_demand: Option<Instant>,
    status: NodeStatus,
}

impl JwksFetcher {
    /// A fetcher of `url` every `refresh`, feeding `guard`.
    /// The node is not ready until the first fetch has been attempted (success or not),
    /// so valid tokens are not refused in the first moments after start.
    pub fn new(url: String, refresh: Duration, guard: Addr<AuthGuard>, status: NodeStatus) -> Self {
        status.set_jwks_pending(true);
        Self { url, refresh, guard, client: None, last_on_demand: None, status }
    }
}

impl Actor for JwksFetcher {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.client = Some(crate::proxy::Fetcher::new(FETCH_TIMEOUT, true));
        ctx.notify(RefreshJwks::Scheduled);
        ctx.run_interval(self.refresh, |_, ctx| ctx.notify(RefreshJwks::Scheduled));
    }
}

impl Handler<RefreshJwks> for JwksFetcher {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: RefreshJwks, _: &mut Context<Self>) -> Self::Result {
        let allowed = match msg {
            RefreshJwks::Scheduled => true,
            RefreshJwks::UnknownKid => self.last_on_demand.is_none_or(|t| t.elapsed() >= MIN_REFETCH),
        };
        let (Some(client), true) = (self.client.clone(), allowed) else {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        };
        if matches!(msg, RefreshJwks::UnknownKid) {
            self.last_on_demand = Some(Instant::now());
        }
        let url = self.url.clone();
        let guard = self.guard.clone();
        let status = self.status.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let fetched = async {
                    let body = client.get(&url, MAX_JWKS_BYTES).await.map_err(|e| e.to_string())?;
                    parse_jwks(&body)
                };
                match fetched.await {
                    Ok(keys) => {
                        tracing::info!(keys = keys.len(), "JWKS refreshed");
                        let _ = guard.send(SetJwks(keys)).await;
                    }
                    // Keep the last good keys: a flapping identity provider must not lock users out.
                    Err(error) => tracing::warn!(%error, url = %url, "JWKS fetch failed; keeping the last keys"),
                }
                status.set_jwks_pending(false);
            }
            .into_actor(self),
        ))
    }
}
