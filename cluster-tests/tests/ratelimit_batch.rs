//! The limiter's shared script calls (`actors/src/ratelimit/batch.rs`) against real Redis:
//! decisions made concurrently on one thread share EVALSHA calls, yet every limit stays
//! exact, all-or-nothing still holds inside a shared call, a waiter that gives up does not
//! take the others' answers with it, and on Redis Cluster each slot gets its own call.

use std::time::Duration;

use actors::ratelimit::{Check, Limiter};
use actors::redis::{Store, Topology};
use actors::spec::{Algorithm, FailureMode, KeySpec, PolicySpec};
use actors::status::NodeStatus;
use actors::units::HumanDuration;
use cluster_tests::{TestRedis, TestRedisCluster};
use futures_util::future::join_all;

fn store(url: String, topology: Topology) -> Store {
    cluster_tests::test_store(url, topology, Duration::from_millis(2000))
}

fn policy(algorithm: Algorithm, limit: u64) -> PolicySpec {
    PolicySpec {
        algorithm,
        limit,
        window: HumanDuration::millis(3_600_000),
        burst: 0,
        key: KeySpec::default(),
        // A Redis failure must fail the test, not be absorbed by a fallback.
        failure_mode: FailureMode::Closed,
    }
}

/// Script calls Redis ran so far (EVALSHA + EVAL), from `INFO commandstats`.
async fn script_calls(store: &Store) -> u64 {
    let info: String = store.query(redis::cmd("INFO").arg("commandstats")).await.expect("INFO");
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

#[actix_rt::test]
async fn concurrent_decisions_share_script_calls_and_stay_exact() {
    let redis = TestRedis::start();
    let store = store(redis.url(), Topology::Standalone);
    store.connect().await.expect("connects");
    let limiter = Limiter::new(Some(store.clone()), NodeStatus::redis());
    for algorithm in [
        Algorithm::FixedWindow,
        Algorithm::SlidingWindow,
        Algorithm::SlidingLog,
        Algorithm::TokenBucket,
        Algorithm::Gcra,
    ] {
        let spec = policy(algorithm, 50);
        let name = format!("{algorithm:?}");
        let before = script_calls(&store).await;
        let decisions = (0..200).map(|_| {
            let limiter = limiter.clone();
            let (spec, name) = (&spec, &name);
            async move { limiter.check(&[Check { policy: name, spec, key: "alice" }]).await.expect("decided") }
        });
        let outcomes = join_all(decisions).await;
        let calls = script_calls(&store).await - before;
        let admitted: Vec<u64> = outcomes.iter().filter(|o| o.allowed).map(|o| o.verdicts[0].remaining).collect();
        assert_eq!(admitted.len(), 50, "{algorithm:?}: exactly the limit is admitted");
        // Every admitted request saw its own place in the window: remaining 49, 48, ... 0.
        let mut seen = admitted.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>(), "{algorithm:?}");
        assert!(outcomes.iter().filter(|o| !o.allowed).all(|o| o.verdicts[0].retry_ms > 0));
        // One turn's 200 decisions: two calls of at most 128 (plus a script load at first).
        assert!((1..=6).contains(&calls), "{algorithm:?}: 200 decisions took {calls} script calls");
        // The shared calls wrote their counters back with an expiry: a later decision
        // continues from them, and nothing outlives its window by much.
        let later = limiter.check(&[Check { policy: &name, spec: &spec, key: "alice" }]).await.expect("decided");
        assert!(!later.allowed, "{algorithm:?}: the stored counter still refuses");
        let key = store.keys().rate_limit(&name, "alice");
        let ttl: i64 = store.query(redis::cmd("PTTL").arg(&key)).await.expect("PTTL");
        assert!(ttl > 0 && ttl <= 7_200_000, "{algorithm:?}: counter {key} expires in {ttl} ms");
    }
}

#[actix_rt::test]
async fn a_shared_call_keeps_all_or_nothing_per_request() {
    let redis = TestRedis::start();
    let store = store(redis.url(), Topology::Standalone);
    store.connect().await.expect("connects");
    let limiter = Limiter::new(Some(store.clone()), NodeStatus::redis());
    let (tight, wide) = (policy(Algorithm::FixedWindow, 5), policy(Algorithm::SlidingWindow, 100));
    let decisions = (0..30).map(|_| {
        let limiter = limiter.clone();
        let (tight, wide) = (&tight, &wide);
        async move {
            let checks =
                [Check { policy: "tight", spec: tight, key: "bob" }, Check { policy: "wide", spec: wide, key: "bob" }];
            limiter.check(&checks).await.expect("decided")
        }
    });
    let outcomes = join_all(decisions).await;
    assert_eq!(outcomes.iter().filter(|o| o.allowed).count(), 5);
    // The 25 refused requests took nothing from the wide policy.
    let wide_left = limiter.peek("wide", &wide, "bob").await.expect("peek");
    assert_eq!(wide_left.remaining, 95);
}

#[actix_rt::test]
async fn a_waiter_that_gives_up_does_not_cancel_the_others() {
    let redis = TestRedis::start();
    let store = store(redis.url(), Topology::Standalone);
    store.connect().await.expect("connects");
    let limiter = Limiter::new(Some(store.clone()), NodeStatus::redis());
    let spec = policy(Algorithm::FixedWindow, 1000);
    let (spec, limiter) = (&spec, &limiter);
    let decide = move || async move { limiter.check(&[Check { policy: "p", spec, key: "carol" }]).await };
    // Ten decisions join one turn's call; five of them are abandoned right after joining.
    let keep = (0..5).map(|_| decide());
    let drop_early = (0..5).map(|_| async move {
        let _ = tokio::time::timeout(Duration::ZERO, decide()).await;
    });
    let (kept, _) = futures_util::future::join(join_all(keep), join_all(drop_early)).await;
    assert!(kept.iter().all(|o| o.as_ref().is_ok_and(|o| o.allowed)), "{kept:?}");
    // The abandoned decisions were still made once each: nothing lost, nothing doubled.
    let left = cluster_tests::eventually(Duration::from_secs(5), async || {
        let v = limiter.peek("p", spec, "carol").await.ok()?;
        (v.remaining == 990).then_some(v)
    });
    assert!(left.await.is_some(), "the abandoned decisions were not each counted once");
}

#[actix_rt::test]
async fn on_redis_cluster_each_slot_gets_its_own_call_and_limits_stay_exact() {
    let cluster = TestRedisCluster::start();
    let store = store("redis://unused".into(), Topology::Cluster { nodes: cluster.urls() });
    store.connect().await.expect("connects");
    let limiter = Limiter::new(Some(store.clone()), NodeStatus::redis());
    let spec = policy(Algorithm::SlidingLog, 20);
    let keys = ["k1", "k2", "k3", "k4"];
    let decisions = (0..120).map(|i| {
        let limiter = limiter.clone();
        let (spec, key) = (&spec, keys[i % keys.len()]);
        async move { (key, limiter.check(&[Check { policy: "p", spec, key }]).await.expect("decided").allowed) }
    });
    let outcomes = join_all(decisions).await;
    for key in keys {
        let admitted = outcomes.iter().filter(|(k, ok)| *k == key && *ok).count();
        assert_eq!(admitted, 20, "key {key}");
    }
}
