//! Decisions made on one thread in the same event-loop turn share one script call.
//!
//! The first decision of a turn spawns a flush task. Spawned tasks run after the ones
//! already queued, so the flush runs once the requests the same I/O poll woke have
//! reached their decision; it sends every decision gathered meanwhile for the same Redis
//! and slot group as one EVALSHA, and hands each waiter its part of the answer. (An extra
//! `yield_now` before sending, which also waits for the next I/O poll, made calls larger
//! but slower to come back: measured worse once the calls got cheap.) Each decision still
//! costs at most one round trip (usually a shared one), and Redis decides the gathered
//! requests one after another inside the script, so limits stay exact. A waiter that gives
//! up (its client left) does not cancel the call: the others still get their answers.
//!
//! The call is compact because a turn's requests mostly share their counters and
//! policies: each counter name and each policy goes over the wire once, requests refer
//! to them by index, and both the references and the reply are packed binary numbers
//! (`ratelimit.lua` documents the layout).

use std::cell::RefCell;
use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::redis::Store;

/// At most this many requests go into one script call; a larger turn is split.
const MAX_BATCH: usize = 128;

/// A policy as the script sees it: algorithm, limit, window (ms), burst.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct PolicyDef {
    /// The algorithm's name in the script.
    pub algorithm: &'static str,
    /// Requests per window.
    pub limit: u64,
    /// Window in milliseconds (at least 1).
    pub window_ms: u64,
    /// Bucket capacity (token_bucket, gcra; 0 = the limit).
    pub burst: u64,
}

/// One policy of one request: its definition, its counter and (sliding_log only) its
/// sequence hash.
pub(super) struct Part {
    /// The policy.
    pub def: PolicyDef,
    /// Its counter's key.
    pub counter: String,
    /// The sliding_log sequence hash's key.
    pub seq: Option<String>,
}

/// One request's part of a script call: its policies, decided all-or-nothing.
pub(super) type Encoded = Vec<Part>;

struct Waiter {
    request: Encoded,
    answer: oneshot::Sender<Option<Vec<i64>>>,
}

/// Store identity and slot group (the key value on Redis Cluster, empty elsewhere).
type Group = (usize, String);

thread_local! {
    static PENDING: RefCell<HashMap<Group, Vec<Waiter>, foldhash::fast::RandomState>> = RefCell::default();
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
    let (requests, answers): (Vec<Encoded>, Vec<_>) = waiters.into_iter().map(|w| (w.request, w.answer)).unzip();
    let replies = call(store, "decide", &requests).await;
    match replies {
        Some(replies) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = answer.send(Some(reply));
            }
        }
        None => {
            for answer in answers {
                let _ = answer.send(None);
            }
        }
    }
}

/// Runs `ratelimit.lua` in `mode` over `requests`: per request, allowed (1/0) then three
/// numbers per policy; `None` when Redis failed or answered something else.
pub(super) async fn call(store: &Store, mode: &str, requests: &[Encoded]) -> Option<Vec<Vec<i64>>> {
    let mut keys: Vec<String> = Vec::new();
    let mut key_index: HashMap<&str, usize> = HashMap::new();
    let mut defs: Vec<PolicyDef> = Vec::new();
    let mut refs: Vec<u8> = Vec::with_capacity(requests.len() * 16);
    for request in requests {
        push_u32(&mut refs, request.len());
        for part in request {
            let def = match defs.iter().position(|d| *d == part.def) {
                Some(i) => i,
                None => {
                    defs.push(part.def);
                    defs.len() - 1
                }
            };
            let counter = key_number(&mut keys, &mut key_index, &part.counter);
            let seq = part.seq.as_deref().map_or(counter, |seq| key_number(&mut keys, &mut key_index, seq));
            push_u32(&mut refs, def + 1);
            push_u32(&mut refs, counter);
            push_u32(&mut refs, seq);
        }
    }
    let mut number = itoa::Buffer::new();
    let mut args: Vec<Vec<u8>> = Vec::with_capacity(4 + 4 * defs.len());
    args.push(mode.as_bytes().to_vec());
    args.push(number.format(requests.len()).as_bytes().to_vec());
    args.push(number.format(defs.len()).as_bytes().to_vec());
    for d in &defs {
        args.push(d.algorithm.as_bytes().to_vec());
        args.push(number.format(d.limit).as_bytes().to_vec());
        args.push(number.format(d.window_ms).as_bytes().to_vec());
        args.push(number.format(d.burst).as_bytes().to_vec());
    }
    args.push(refs);
    let reply = store.script_bytes::<Vec<u8>>(&super::SCRIPT, &keys, &args).await.ok()?;
    split_reply(&reply, requests)
}

/// `name`'s 1-based position in KEYS, appending it the first time.
fn key_number<'a>(keys: &mut Vec<String>, index: &mut HashMap<&'a str, usize>, name: &'a str) -> usize {
    *index.entry(name).or_insert_with(|| {
        keys.push(name.to_owned());
        keys.len()
    })
}

/// Appends `n` as a little-endian u32 (indexes and policy counts are small).
fn push_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

/// The reply cut into each request's numbers (`None` if it does not fit exactly).
fn split_reply(reply: &[u8], requests: &[Encoded]) -> Option<Vec<Vec<i64>>> {
    let expected: usize = requests.iter().map(|r| 1 + 3 * r.len()).sum();
    if reply.len() != 8 * expected {
        return None;
    }
    let mut numbers =
        reply.chunks_exact(8).map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
    Some(requests.iter().map(|r| numbers.by_ref().take(1 + 3 * r.len()).collect()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part() -> Part {
        Part { def: PolicyDef { algorithm: "gcra", limit: 1, window_ms: 1, burst: 0 }, counter: "c".into(), seq: None }
    }

    #[test]
    fn the_reply_is_cut_per_request_and_must_fit_exactly() {
        let requests = vec![vec![part()], vec![part(), part()]];
        let packed = |ns: &[i64]| ns.iter().flat_map(|n| n.to_le_bytes()).collect::<Vec<u8>>();
        let reply = packed(&[1, 5, 100, 0, 0, 3, 10, 0, 0, 1_000_000_000_000_000, 7]);
        let parts = split_reply(&reply, &requests).expect("fits");
        assert_eq!(parts, vec![vec![1, 5, 100, 0], vec![0, 3, 10, 0, 0, 1_000_000_000_000_000, 7]]);
        assert!(split_reply(&packed(&[1, 5, 100]), &requests).is_none(), "too short");
        assert!(split_reply(&packed(&[1; 12]), &requests).is_none(), "too long");
        assert!(split_reply(&reply[..reply.len() - 1], &requests).is_none(), "a cut number");
    }
}
