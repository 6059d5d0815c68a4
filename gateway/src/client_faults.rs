//! Log lines a client can cause at will, folded into a counter and one summary line.
//!
//! actix-http logs every malformed request (bad header, bad request line, a connection
//! dropped mid-body) at ERROR from inside its dispatcher — one line per request, so any
//! client could flood the log and bury real errors. Those events (`actix_http::*` at WARN
//! and ERROR whose message is one of `CLIENT_FAULTS`) are disabled for every layer: each
//! one counts in `gateway_client_protocol_errors_total`, and a background thread writes
//! at most one WARN line per `SUMMARY_EVERY` with the count and the last message. Other
//! actix-http errors (a failing response body, i.e. an upstream fault) are logged as
//! before.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::names;

/// How often the summary line may be written.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(5);

/// Events counted since the last summary.
static PENDING: AtomicU64 = AtomicU64::new(0);
/// The last such event's message (kept short).
static LAST: Mutex<String> = Mutex::new(String::new());

/// Beginnings of the actix-http messages a client causes at will (`h1/dispatcher.rs`,
/// `h1/decoder.rs` of actix-http 3).
const CLIENT_FAULTS: [&str; 4] = [
    "stream error:",
    "MAX_BUFFER_SIZE unprocessed data reached",
    "Internal server error: unexpected",
    "write zero; closing",
];

/// Whether an event may be one a client triggers per request (cheap, metadata only).
fn may_be_client_fault(meta: &Metadata<'_>) -> bool {
    *meta.level() <= Level::WARN && meta.target().starts_with("actix_http")
}

/// The layer that takes client-fault events out of the log, counting them and keeping
/// the last message.
pub struct ClientFaults;

impl<S: Subscriber> Layer<S> for ClientFaults {
    fn event_enabled(&self, event: &Event<'_>, _cx: Context<'_, S>) -> bool {
        if !may_be_client_fault(event.metadata()) {
            return true;
        }
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        if !CLIENT_FAULTS.iter().any(|p| message.starts_with(p)) {
            return true;
        }
        PENDING.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::M_CLIENT_PROTOCOL_ERRORS).increment(1);
        // Never wait: under a flood another thread is already writing the same news.
        if let Ok(mut last) = LAST.try_lock() {
            *last = message;
        }
        false
    }
}

struct Message<'a>(&'a mut String);

impl Visit for Message<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && self.0.len() < 200 {
            let _ = write!(self.0, "{value:?}");
            // `truncate` panics off a char boundary, and the message may quote client bytes.
            let mut end = self.0.len().min(200);
            while !self.0.is_char_boundary(end) {
                end -= 1;
            }
            self.0.truncate(end);
        }
    }
}

/// Starts the thread writing the summary line (once per process).
pub fn start_summaries() {
    let spawned = std::thread::Builder::new().name("client-faults".into()).spawn(|| {
        loop {
            std::thread::sleep(SUMMARY_EVERY);
            let count = PENDING.swap(0, Ordering::Relaxed);
            if count > 0 {
                let last = LAST.lock().map(|l| l.clone()).unwrap_or_default();
                tracing::warn!(
                    count,
                    last = %last,
                    "connections closed on malformed client requests (counted in {}; summarised every {}s)",
                    names::M_CLIENT_PROTOCOL_ERRORS,
                    SUMMARY_EVERY.as_secs()
                );
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the client-fault summary thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::subscriber::with_default;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn actix_http_errors_are_counted_with_their_message_and_others_are_not() {
        let subscriber = tracing_subscriber::registry().with(ClientFaults);
        with_default(subscriber, || {
            let before = PENDING.load(Ordering::Relaxed);
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: request parse error: invalid Header provided");
            tracing::error!(target: "gateway::server", "a real error");
            tracing::error!(target: "actix_http::h1::dispatcher", "Response payload stream error: upstream");
            tracing::info!(target: "actix_http::h1::dispatcher", "not a fault");
            assert_eq!(PENDING.load(Ordering::Relaxed) - before, 1);
            assert!(LAST.lock().map(|l| l.contains("invalid Header")).unwrap_or(false));
            let long = format!("stream error: {}", "é".repeat(150));
            tracing::error!(target: "actix_http::h1::dispatcher", "{long}");
            assert!(LAST.lock().map(|l| l.len() <= 200 && l.starts_with("stream error: é")).unwrap_or(false));
        });
    }
}
