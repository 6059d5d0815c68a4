//! Decisions made on one thread in the same event-loop turn share one script call.
//!
//! The first decision of a turn spawns a flush that waits for the turn to end (one
//! `yield_now`), then sends every decision gathered meanwhile for the same Redis and slot
//! group as one EVALSHA, and hands each waiter its part of the answer. Each decision still
//! costs at most one round trip (usually a shared one), and Redis decides the gathered
//! requests one after another inside the script, so limits stay exact. A waiter that gives
//! up (its client left) does not cancel the call: the others still get their answers.

use std::cell::RefCell;
use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::redis::Store;

/// At most this many requests go into one script call; a larger turn is split.
const MAX_BATCH: usize = 128;

/// One request's part of a script call.
pub(super) struct Encoded {
    /// Its counters, then its sequence hashes.
    pub keys: Vec<String>,
    /// Its policy count, then four arguments per policy.
    pub args: Vec<Vec<u8>>,
    /// Its policy count.
    pub policies: usize,
}

struct Waiter {
    request: Encoded,
    answer: oneshot::Sender<Option<Vec<i64>>>,
}

/// Store identity and slot group (the key value on Redis Cluster, empty elsewhere).
type Group = (usize, String);

thread_local! {
    static PENDING: RefCell<HashMap<Group, Vec<Waiter>>> = RefCell::new(HashMap::new());
}

/// Decides `request` in this turn's shared script call for `group`: the script's reply
/// for this request (allowed, then three numbers per policy), `None` when Redis failed.
pub(super) async fn decide(store: &Store, group: String, request: Encoded) -> Option<Vec<i64>> {
    let (answer, reply) = oneshot::channel();
    // The flush must run on this thread to find this thread's queue: only a current-thread
    // runtime (every actix-web worker and actix arbiter) guarantees that. Elsewhere each
    // decision makes its own call.
    let current_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
    if !current_thread {
        run(store, vec![Waiter { request, answer }]).await;
        return reply.await.ok().flatten();
    }
    let id = (store.id(), group);
    let first = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let queue = p.entry(id.clone()).or_default();
        queue.push(Waiter { request, answer });
        queue.len() == 1
    });
    if first {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            let mut waiters = PENDING.with(|p| p.borrow_mut().remove(&id)).unwrap_or_default();
            let mut calls = Vec::new();
            while !waiters.is_empty() {
                let rest = waiters.split_off(waiters.len().min(MAX_BATCH));
                calls.push(run(&store, std::mem::replace(&mut waiters, rest)));
            }
            futures_util::future::join_all(calls).await;
        });
    }
    reply.await.ok().flatten()
}

/// One script call for `waiters`, each answered with its slice of the reply.
async fn run(store: &Store, waiters: Vec<Waiter>) {
    let mut keys = Vec::new();
    let mut args: Vec<Vec<u8>> = vec![b"decide".to_vec(), waiters.len().to_string().into_bytes()];
    let mut answers = Vec::with_capacity(waiters.len());
    for w in waiters {
        keys.extend(w.request.keys);
        args.extend(w.request.args);
        answers.push((w.request.policies, w.answer));
    }
    let reply = store.script_bytes::<Vec<i64>>(&super::SCRIPT, &keys, &args).await.ok();
    let expected: usize = answers.iter().map(|(n, _)| 1 + 3 * n).sum();
    let mut rest = match reply {
        Some(r) if r.len() == expected => r.into_iter(),
        _ => {
            for (_, answer) in answers {
                let _ = answer.send(None);
            }
            return;
        }
    };
    for (n, answer) in answers {
        let _ = answer.send(Some(rest.by_ref().take(1 + 3 * n).collect()));
    }
}
