//! The cluster event bus: one dedicated Pub/Sub connection per node on `gw:events`,
//! fanned out to actors by message and to local streaming subscribers (SSE).
//!
//! Pub/Sub is at-most-once: actors treat `Connected` as "you may have missed events"
//! and resync from Redis; version gaps do the same. The connection comes from
//! `Store::pubsub` (the master under Sentinel, any node under Cluster, where `PUBLISH`
//! reaches every node); when the store follows a new Sentinel master, the subscriber
//! moves with it.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::Store;

/// One event as published on `gw:events` (SPEC §10), plus its raw JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterEvent {
    /// Registry version after the change (registry events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// `service_created`, `instance_health`, `revocation`, ...
    pub kind: String,
    /// Service concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Instance concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Node that made the change.
    #[serde(default)]
    pub node: String,
    /// RFC 3339 time of the change.
    #[serde(default)]
    pub at: String,
    /// The event exactly as published.
    #[serde(skip)]
    pub raw: Arc<str>,
}

impl ClusterEvent {
    /// Parses a published payload.
    pub fn parse(raw: &str) -> Option<Self> {
        let mut ev: ClusterEvent = serde_json::from_str(raw).ok()?;
        ev.raw = raw.into();
        Some(ev)
    }
}

/// What the bus tells actors.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub enum BusMessage {
    /// (Re)subscribed: events may have been missed, resync.
    Connected,
    /// Subscription lost: serve the last snapshot, mark degraded.
    Disconnected,
    /// An event.
    Event(Arc<ClusterEvent>),
}

/// Local fan-out of events to streaming subscribers (SSE). Lagging receivers skip.
pub type EventStream = broadcast::Sender<Arc<ClusterEvent>>;

/// Creates the local fan-out channel.
pub fn event_stream() -> EventStream {
    broadcast::channel(1024).0
}

/// Runs the subscriber until the system stops: subscribe, dispatch, reconnect with
/// backoff.
/// `fills`, when given, receives the payloads of the cache fill channel.
pub fn spawn_subscriber(
    store: Store,
    recipients: Vec<Recipient<BusMessage>>,
    stream: EventStream,
    fills: Option<broadcast::Sender<Arc<str>>>,
) {
    actix::spawn(async move {
        let channel = store.keys().events_channel();
        let fills_channel = store.keys().cache_fills_channel();
        let mut delay = Duration::from_millis(100);
        let mut moved = store.moved();
        loop {
            moved.mark_unchanged();
            let connect = async {
                let mut ps = store.pubsub().await?;
                ps.subscribe(&channel).await?;
                if fills.is_some() {
                    ps.subscribe(&fills_channel).await?;
                }
                Ok::<_, super::StoreError>(ps)
            };
            match tokio::time::timeout(store.config().connect_timeout * 4, connect).await {
                Ok(Ok(pubsub)) => {
                    delay = Duration::from_millis(100);
                    tracing::info!(channel = %channel, "subscribed to cluster events");
                    store.status().set_redis_up(true);
                    recipients.iter().for_each(|r| r.do_send(BusMessage::Connected));
                    let mut messages = pubsub.into_on_message();
                    loop {
                        let msg = tokio::select! {
                            msg = messages.next() => msg,
                            _ = moved.changed() => {
                                tracing::info!("redis master moved: resubscribing");
                                None
                            }
                        };
                        let Some(msg) = msg else { break };
                        let Ok(payload) = msg.get_payload::<String>() else { continue };
                        if let Some(f) = fills.as_ref().filter(|_| msg.get_channel_name() == fills_channel) {
                            let _ = f.send(payload.into());
                            continue;
                        }
                        match ClusterEvent::parse(&payload) {
                            Some(ev) => {
                                let ev = Arc::new(ev);
                                recipients.iter().for_each(|r| r.do_send(BusMessage::Event(Arc::clone(&ev))));
                                let _ = stream.send(ev);
                            }
                            None => tracing::warn!(payload = %payload, "ignoring malformed cluster event"),
                        }
                    }
                    tracing::warn!("cluster event subscription lost");
                    store.status().set_redis_up(false);
                    recipients.iter().for_each(|r| r.do_send(BusMessage::Disconnected));
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot subscribe to cluster events"),
                Err(_) => tracing::warn!("timed out subscribing to cluster events"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    });
}
