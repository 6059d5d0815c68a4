//! `GET /admin/events`: cluster events as Server-Sent Events. Each event is one
//! `data: <event JSON>` line with `id: <version>`; `Last-Event-ID` (header or
//! `last_event_id` query) replays missed registry events from the Redis event log first.
//! Filters: `kind` (comma-separated) and `service`. A comment line every 15 s keeps idle
//! connections open through proxies.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use actors::redis::events::ClusterEvent;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::{AdminError, AdminState};

/// Keep-alive comment period.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Mounts the events route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(events));
}

#[derive(Deserialize)]
struct Filter {
    kind: Option<String>,
    service: Option<String>,
    last_event_id: Option<u64>,
}

impl Filter {
    fn accepts(&self, ev: &ClusterEvent) -> bool {
        let kind_ok = self.kind.as_deref().is_none_or(|k| k.split(',').any(|k| k.trim() == ev.kind));
        let service_ok = self.service.as_deref().is_none_or(|s| ev.service.as_deref() == Some(s));
        kind_ok && service_ok
    }
}

fn frame(ev: &ClusterEvent) -> Bytes {
    match ev.version {
        Some(v) => Bytes::from(format!("id: {v}\ndata: {}\n\n", ev.raw)),
        None => Bytes::from(format!("data: {}\n\n", ev.raw)),
    }
}

async fn events(
    req: HttpRequest,
    state: web::Data<AdminState>,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, AdminError> {
    let filter = Arc::new(filter.into_inner());
    // Subscribe before reading the log so nothing falls between the two.
    let live = state.events.subscribe();
    let last_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(filter.last_event_id);
    let mut backlog = Vec::new();
    if let (Some(after), Some(store)) = (last_id, &state.registry_store) {
        let raw = store.events_after(after).await.map_err(|e| AdminError::unavailable(format!("event log: {e}")))?;
        backlog = raw.iter().filter_map(|r| ClusterEvent::parse(r)).filter(|e| filter.accepts(e)).collect();
    }
    let sent = backlog.last().and_then(|e| e.version).or(last_id).unwrap_or(0);
    let first = Bytes::from_static(b": connected\n\n");
    let replay = stream::iter(
        std::iter::once(first).chain(backlog.iter().map(frame)).map(Ok::<_, actix_web::Error>).collect::<Vec<_>>(),
    );
    let tail = stream::unfold((live, sent), move |(mut rx, mut sent)| {
        let filter = Arc::clone(&filter);
        async move {
            loop {
                match tokio::time::timeout(KEEP_ALIVE, rx.recv()).await {
                    Err(_) => return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), (rx, sent))),
                    Ok(Ok(ev)) => {
                        if ev.version.is_some_and(|v| v <= sent) || !filter.accepts(&ev) {
                            continue;
                        }
                        sent = ev.version.unwrap_or(sent);
                        return Some((Ok(frame(&ev)), (rx, sent)));
                    }
                    // A slow reader skipped events: say so; it can resume by Last-Event-ID.
                    Ok(Err(RecvError::Lagged(n))) => {
                        let note = Bytes::from(format!(": skipped {n} events, reconnect to resume\n\n"));
                        return Some((Ok(note), (rx, sent)));
                    }
                    Ok(Err(RecvError::Closed)) => return None,
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(replay.chain(tail)))
}
