//! Per-worker keep-alive pool of upstream connections. Each actix worker is one thread
//! with its own runtime, so the pool is thread-local: no locks, no atomics, and a
//! connection is only ever used on the runtime it was registered with.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;

/// Idle time after which a pooled connection is closed. Below Node's default
/// `keepAliveTimeout` (5 s) so we never reuse a connection the upstream is closing.
pub const IDLE: Duration = Duration::from_secs(4);
/// Age after which a connection is not reused (spreads load after upstream changes).
const LIFETIME: Duration = Duration::from_secs(300);
/// Most idle connections kept per upstream origin and worker.
const MAX_IDLE: usize = 256;
/// How often idle connections of every origin are checked for expiry.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// One upstream connection with its read buffer.
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read and not consumed yet.
    pub buf: BytesMut,
    /// Pool key (`http://host:port`).
    origin: Arc<str>,
    created: Instant,
    /// Whether this connection served an earlier request (it may have been closed since).
    pub reused: bool,
    /// Set when the request went out incomplete (the upstream answered mid-body): the
    /// connection's framing is broken and it must never be pooled.
    pub spoiled: bool,
}

impl Conn {
    /// A fresh connection to `origin`.
    pub fn new(stream: TcpStream, origin: Arc<str>) -> Self {
        Self { stream, buf: BytesMut::new(), origin, created: Instant::now(), reused: false, spoiled: false }
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

#[derive(Default)]
struct Pool {
    idle: HashMap<Arc<str>, VecDeque<Idle>, foldhash::fast::RandomState>,
    last_sweep: Option<Instant>,
}

impl Pool {
    /// Closes expired idle connections of every origin, at most every `SWEEP_EVERY`
    /// (connections to origins no longer used do not linger past the next request).
    fn sweep(&mut self, now: Instant) {
        if self.last_sweep.is_some_and(|t| now.duration_since(t) < SWEEP_EVERY) {
            return;
        }
        self.last_sweep = Some(now);
        self.idle.retain(|_, list| {
            list.retain(|i| usable(i, now));
            !list.is_empty()
        });
    }
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

fn usable(idle: &Idle, now: Instant) -> bool {
    now.duration_since(idle.since) < IDLE && now.duration_since(idle.conn.created) < LIFETIME
}

/// The most recently used live idle connection to `origin`, if any.
pub fn checkout(origin: &str) -> Option<Conn> {
    POOL.with(|p| {
        let mut pool = p.borrow_mut();
        let now = Instant::now();
        pool.sweep(now);
        let list = pool.idle.get_mut(origin)?;
        while let Some(idle) = list.pop_back() {
            if usable(&idle, now) {
                let mut conn = idle.conn;
                conn.reused = true;
                return Some(conn);
            }
            // Older ones below have waited even longer.
            if now.duration_since(idle.since) >= IDLE {
                list.clear();
            }
        }
        None
    })
}

/// Returns a connection whose exchange completed cleanly to the pool.
pub fn release(conn: Conn) {
    if !conn.buf.is_empty() || conn.spoiled {
        return;
    }
    // A thread without a pool (exiting) just closes the connection.
    let _ = POOL.try_with(|p| {
        let Ok(mut pool) = p.try_borrow_mut() else { return };
        let now = Instant::now();
        pool.sweep(now);
        let list = match pool.idle.get_mut(&*conn.origin) {
            Some(list) => list,
            None => pool.idle.entry(Arc::clone(&conn.origin)).or_default(),
        };
        if list.len() >= MAX_IDLE {
            list.pop_front();
        }
        list.push_back(Idle { conn, since: now });
    });
}

/// Idle connections held by this thread (tests).
#[cfg(test)]
pub fn idle_count(origin: &str) -> usize {
    POOL.with(|p| p.borrow().idle.get(origin).map_or(0, VecDeque::len))
}
