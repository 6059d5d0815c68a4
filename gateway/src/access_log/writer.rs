//! The writer thread: writes full batches as they come, takes the workers' partial batches
//! and flushes once a second, reopens the file when asked, drains everything on close.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::{Batch, FLUSH_EVERY, Shared, lock};

/// How often the writer looks at the close and reopen flags while idle.
const POLL: Duration = Duration::from_millis(100);

/// Where lines go.
pub(super) enum Sink {
    /// The process's stdout (shared with the diagnostic log; each batch is one locked
    /// write of whole lines, so lines never interleave).
    Stdout,
    /// A file opened for appending, reopened by path on request.
    File {
        /// The configured path.
        path: PathBuf,
        /// The open file.
        file: File,
    },
}

impl Sink {
    /// Stdout for an empty path, else the file at `path` (created if missing).
    pub(super) fn open(path: &str) -> std::io::Result<Sink> {
        if path.is_empty() {
            return Ok(Sink::Stdout);
        }
        let path = PathBuf::from(path);
        let file = append(&path).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Sink::File { path, file })
    }

    fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout => std::io::stdout().lock().write_all(buf),
            Sink::File { file, .. } => file.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Stdout => std::io::stdout().lock().flush(),
            Sink::File { .. } => Ok(()),
        }
    }

    /// Opens the path again (the old file was moved away); keeps the old file on failure.
    fn reopen(&mut self) -> std::io::Result<()> {
        if let Sink::File { path, file } = self {
            *file = append(path)?;
        }
        Ok(())
    }
}

fn append(path: &std::path::Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The writer's loop; returns once everything was written after `closing`.
pub(super) fn run(shared: &Arc<Shared>, rx: &Receiver<Batch>, sink: Sink) {
    let mut out = Output { sink, failing: false };
    let mut next = Instant::now() + FLUSH_EVERY;
    let mut pending = Vec::new();
    loop {
        let closing = shared.closing.load(Ordering::Acquire);
        if !closing {
            let wait = next.saturating_duration_since(Instant::now()).min(POLL);
            match rx.recv_timeout(wait) {
                Ok(batch) => {
                    out.write(shared, &batch);
                    shared.recycle(batch.buf);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
        }
        if shared.reopen.swap(false, Ordering::AcqRel)
            && let Err(e) = out.sink.reopen()
        {
            tracing::warn!(error = %e, "cannot reopen the access log; still writing to the old file");
        }
        if closing || Instant::now() >= next {
            collect(shared, rx, &mut pending);
            for batch in pending.drain(..) {
                out.write(shared, &batch);
                shared.recycle(batch.buf);
            }
            if let Err(e) = out.sink.flush() {
                out.failed(&e);
            }
            next = Instant::now() + FLUSH_EVERY;
        }
        if closing {
            if let Some(done) = lock(&shared.done).take() {
                let _ = done.send(());
            }
            return;
        }
    }
}

/// The sink and whether its last write failed (one warning per failing stretch).
struct Output {
    sink: Sink,
    failing: bool,
}

impl Output {
    fn write(&mut self, shared: &Shared, batch: &Batch) {
        match self.sink.write(&batch.buf) {
            Ok(()) => self.failing = false,
            Err(e) => {
                shared.lose(batch.lines);
                self.failed(&e);
            }
        }
    }

    fn failed(&mut self, e: &std::io::Error) {
        if !std::mem::replace(&mut self.failing, true) {
            tracing::warn!(error = %e, "cannot write the access log; lines are dropped and counted");
        }
    }
}

/// Takes every worker's partial batch, each after the full batches already queued (so a
/// worker's lines stay in order), and forgets the batches of workers that ended.
fn collect(shared: &Shared, rx: &Receiver<Batch>, pending: &mut Vec<Batch>) {
    let mut workers = lock(&shared.workers);
    workers.retain(|worker| {
        let mut batch = worker.lock().unwrap_or_else(PoisonError::into_inner);
        pending.extend(rx.try_iter());
        if batch.lines > 0 {
            pending.push(std::mem::replace(&mut *batch, shared.fresh()));
        }
        // Only the list holds it: the worker's thread ended.
        Arc::strong_count(worker) > 1
    });
    pending.extend(rx.try_iter());
}
