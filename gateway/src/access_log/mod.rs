//! The access log: one line per request, formatted straight into a per-worker batch
//! (`format`, no tracing machinery) and written by a thread of its own (`writer`).
//!
//! A worker appends to its batch under a lock no one else takes except the writer, once a
//! second. A full batch (64 KiB) goes to the writer over a bounded channel; when the
//! channel is full the batch is dropped and its lines counted in
//! `gateway_access_log_dropped_total`, so a slow disk or a blocked stdout never slows
//! requests. Every second the writer also takes what the workers hold (idle workers and
//! workers that ended included) and flushes, and `close` drains everything on shutdown.
//! A file output is reopened on `SIGUSR1` (logrotate).

mod format;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use format::{Line, Settings};

use crate::config::LogConfig;
use crate::names;

/// A batch is handed to the writer once it holds this much.
const BATCH_BYTES: usize = 64 * 1024;
/// Full batches waiting for the writer, at most (4 MiB); more are dropped and counted.
const QUEUED_BATCHES: usize = 64;
/// Lines reach the output at most this long after they were logged.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Lines of one worker not yet handed to the writer.
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    lines: u64,
}

impl Batch {
    fn empty() -> Self {
        Batch { buf: Vec::with_capacity(BATCH_BYTES + 4096), lines: 0 }
    }
}

/// Buffers the writer has written, kept for the workers' next batches (fresh 64 KiB
/// buffers would cost page faults; a few are enough to go round).
const SPARE_BUFFERS: usize = 8;

/// What workers and the writer share.
struct Shared {
    /// Tells logs apart in a worker's thread-local (tests start several in one process).
    id: u64,
    settings: Settings,
    tx: SyncSender<Batch>,
    /// Every worker's batch, for the writer's once-a-second pass.
    workers: Mutex<Vec<Arc<Mutex<Batch>>>>,
    closing: AtomicBool,
    reopen: AtomicBool,
    /// Told when the writer has written everything after `closing`.
    done: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    dropped: AtomicU64,
    dropped_metric: metrics::Counter,
    /// Written buffers, cleared, for reuse.
    spare: Mutex<Vec<Vec<u8>>>,
}

impl Shared {
    /// An empty batch, on a written buffer when one is spare.
    fn fresh(&self) -> Batch {
        match lock(&self.spare).pop() {
            Some(buf) => Batch { buf, lines: 0 },
            None => Batch::empty(),
        }
    }

    /// Keeps a written buffer for reuse.
    fn recycle(&self, mut buf: Vec<u8>) {
        let mut spare = lock(&self.spare);
        if spare.len() < SPARE_BUFFERS && buf.capacity() <= 2 * BATCH_BYTES {
            buf.clear();
            spare.push(buf);
        }
    }

    /// Counts lines that will never be written.
    fn lose(&self, lines: u64) {
        self.dropped.fetch_add(lines, Ordering::Relaxed);
        self.dropped_metric.increment(lines);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// This thread's batch, and the id of the log it belongs to.
    static LOCAL: std::cell::RefCell<Option<(u64, Arc<Mutex<Batch>>)>> = const { std::cell::RefCell::new(None) };
}

/// Handle to a running access log (cheap to clone).
#[derive(Clone)]
pub struct AccessLog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").field("settings", &self.shared.settings).finish_non_exhaustive()
    }
}

impl AccessLog {
    /// Opens the output and starts the writer thread; `None` when `[log] access_log = false`.
    pub fn start(cfg: &LogConfig, node: &str) -> std::io::Result<Option<Self>> {
        if !cfg.access_log {
            return Ok(None);
        }
        let sink = writer::Sink::open(&cfg.access_log_file)?;
        Self::with_sink(Settings::new(cfg.access_log_format, cfg.access_log_query, node), sink).map(Some)
    }

    fn with_sink(settings: Settings, sink: writer::Sink) -> std::io::Result<Self> {
        static IDS: AtomicU64 = AtomicU64::new(1);
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUED_BATCHES);
        let dropped_metric = metrics::counter!(names::M_ACCESS_LOG_DROPPED);
        // Shown at 0 from the start, not only after the first loss.
        dropped_metric.increment(0);
        let shared = Arc::new(Shared {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            settings,
            tx,
            workers: Mutex::default(),
            closing: AtomicBool::new(false),
            reopen: AtomicBool::new(false),
            done: Mutex::default(),
            dropped: AtomicU64::new(0),
            dropped_metric,
            spare: Mutex::default(),
        });
        let for_writer = Arc::clone(&shared);
        std::thread::Builder::new().name("access-log".into()).spawn(move || writer::run(&for_writer, &rx, sink))?;
        Ok(AccessLog { shared })
    }

    /// The line settings (format, query).
    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// Appends one line to this thread's batch; hands the batch over when full.
    pub fn log(&self, line: &Line<'_>) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let shared = &*self.shared;
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            if !matches!(&*local, Some((id, _)) if *id == shared.id) {
                let batch = Arc::new(Mutex::new(Batch::empty()));
                lock(&shared.workers).push(Arc::clone(&batch));
                *local = Some((shared.id, batch));
            }
            let Some((_, batch)) = &*local else { return };
            let mut b = lock(batch);
            shared.settings.write(&mut b.buf, line, now);
            b.lines += 1;
            if b.buf.len() >= BATCH_BYTES {
                // Sent while the batch is locked: the writer's pass, which takes the lock,
                // then finds every older batch of this worker in the channel (lines stay
                // in order).
                let full = std::mem::replace(&mut *b, shared.fresh());
                if let Err(TrySendError::Full(lost) | TrySendError::Disconnected(lost)) = shared.tx.try_send(full) {
                    shared.lose(lost.lines);
                }
            }
        });
    }

    /// Asks the writer to reopen its file (after logrotate moved it); no-op on stdout.
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
    }

    /// Lines dropped so far (writer behind, or the output failing).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Writes out everything logged so far and stops the writer; waits at most `within`.
    /// Returns whether the writer finished in time.
    pub async fn close(&self, within: Duration) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        *lock(&self.shared.done) = Some(tx);
        self.shared.closing.store(true, Ordering::Release);
        matches!(actix_rt::time::timeout(within, rx).await, Ok(Ok(())))
    }
}

/// Reopens the access log's file on each `SIGUSR1` (a task on the current actix runtime).
/// Installed even without an access log, so that logrotate's signal never kills the node.
pub fn reopen_on_sigusr1(log: Option<AccessLog>) {
    #[cfg(unix)]
    actix_rt::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut usr1 = match signal(SignalKind::user_defined1()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGUSR1: the access log will not be reopened");
                return;
            }
        };
        while usr1.recv().await.is_some() {
            if let Some(log) = &log {
                tracing::info!("SIGUSR1: reopening the access log");
                log.reopen();
            }
        }
    });
    #[cfg(not(unix))]
    drop(log);
}

#[cfg(test)]
mod tests;
