//! Per-thread connections to a single Redis server. The shared connection's driver task
//! runs on the thread that connected it (the System arbiter), so every command from an
//! actix-web worker would cross threads twice (send, then wake for the answer). Each
//! thread that issues commands gets its own multiplexed connection, opened lazily in the
//! background on that thread; until it is ready, the shared connection serves.

use std::cell::RefCell;

use redis::aio::ConnectionManager;

struct Slot {
    store: usize,
    generation: u64,
    conn: Option<ConnectionManager>,
    connecting: bool,
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

/// Whether the caller should open this thread's connection now (nobody is doing it).
pub(super) fn begin(store: usize, generation: u64) -> bool {
    SLOTS.with(|s| {
        let mut slots = s.borrow_mut();
        match slots.iter_mut().find(|x| x.store == store) {
            Some(x) if x.generation == generation && (x.connecting || x.conn.is_some()) => false,
            Some(x) => {
                *x = Slot { store, generation, conn: None, connecting: true };
                true
            }
            None => {
                slots.push(Slot { store, generation, conn: None, connecting: true });
                true
            }
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
