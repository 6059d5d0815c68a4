//! Per-thread connections to a single Redis server. The shared connection's driver task
//! runs on the thread that connected it (the System arbiter), so every command from an
//! actix-web worker would cross threads twice (send, then wake for the answer). Each
//! thread that issues commands gets its own multiplexed connection, opened lazily in the
//! background on that thread; until it is ready, the shared connection serves.
//!
//! Invariant: at most `limit` threads hold (or are opening) a connection of one store at
//! a time (`[redis] pool_size` less the shared connection); a thread refused one keeps
//! using the shared connection and asks again on its next command.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use redis::aio::ConnectionManager;

/// How many threads hold a connection of one store (shared by every clone of the store).
#[derive(Debug, Default)]
pub(super) struct Budget(AtomicUsize);

impl Budget {
    /// Threads holding (or opening) a connection now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// One thread's share of a `Budget`, given back when the thread's slot is dropped (the
/// thread ends).
struct Claim(Arc<Budget>);

impl Claim {
    fn take(budget: &Arc<Budget>, limit: usize) -> Option<Self> {
        budget
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| Self(Arc::clone(budget)))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Slot {
    store: usize,
    generation: u64,
    conn: Option<ConnectionManager>,
    connecting: bool,
    _claim: Claim,
}

thread_local! {
    static SLOTS: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// This thread's connection for `store` at `generation` (bumped when Redis moves).
pub(super) fn get(store: usize, generation: u64) -> Option<ConnectionManager> {
    SLOTS.with(|s| {
        s.borrow().iter().find(|x| x.store == store && x.generation == generation).and_then(|x| x.conn.clone())
    })
}

/// Whether the caller should open this thread's connection now: nobody on this thread is
/// doing it, and the thread already holds a share of `budget` or gets one (fewer than
/// `limit` threads hold one).
pub(super) fn begin(store: usize, generation: u64, budget: &Arc<Budget>, limit: usize) -> bool {
    SLOTS.with(|s| {
        let mut slots = s.borrow_mut();
        match slots.iter_mut().find(|x| x.store == store) {
            Some(x) if x.generation == generation && (x.connecting || x.conn.is_some()) => false,
            Some(x) => {
                (x.generation, x.conn, x.connecting) = (generation, None, true);
                true
            }
            None => match Claim::take(budget, limit) {
                Some(claim) => {
                    slots.push(Slot { store, generation, conn: None, connecting: true, _claim: claim });
                    true
                }
                None => false,
            },
        }
    })
}

/// Stores the opened connection (`None`: it failed; a later call tries again).
pub(super) fn put(store: usize, generation: u64, conn: Option<ConnectionManager>) {
    SLOTS.with(|s| {
        if let Some(x) = s.borrow_mut().iter_mut().find(|x| x.store == store && x.generation == generation) {
            x.conn = conn;
            x.connecting = false;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_beyond_the_limit_get_no_connection_and_an_ended_thread_gives_its_share_back() {
        let budget = Arc::new(Budget::default());
        let (b, store) = (Arc::clone(&budget), 7);
        assert!(std::thread::spawn(move || begin(store, 0, &b, 1)).join().unwrap_or(false));
        // That thread ended: its share is back.
        assert_eq!(budget.held(), 0);
        assert!(begin(store, 0, &budget, 1), "this thread takes the one share");
        assert!(!begin(store, 0, &budget, 1), "already opening on this thread");
        let b = Arc::clone(&budget);
        assert!(!std::thread::spawn(move || begin(store, 0, &b, 1)).join().unwrap_or(true), "over the limit");
        put(store, 0, None);
        assert!(begin(store, 0, &budget, 1), "a failed attempt is retried with the same share");
        assert!(begin(store, 1, &budget, 1), "a new generation reuses the share");
        assert_eq!(budget.held(), 1);
        assert!(!begin(store + 1, 0, &budget, 0), "limit 0: no per-thread connections");
    }
}
