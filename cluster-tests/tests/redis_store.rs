//! `actors::redis::Store` against real deployments: the contract of its dedicated
//! connections (`dedicated()` for blocking commands, `pubsub()` for events) on standalone
//! Redis and on a six-node Redis Cluster, and `pool_size` bounding its command connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actors::redis::{Store, Topology};
use cluster_tests::{TestRedis, TestRedisCluster};
use futures_util::StreamExt;

fn store(url: String, topology: Topology) -> Store {
    cluster_tests::test_store(url, topology, Duration::from_millis(500))
}

/// A blocking BLMOVE on a dedicated connection is woken by an LPUSH through the shared
/// connection, which stays usable meanwhile; a PUBLISH reaches a `pubsub()` subscriber.
async fn dedicated_and_pubsub_work(store: &Store) {
    store.connect().await.expect("connects");
    let mut blocking = store.dedicated().await.expect("dedicated connection");
    let waiter = actix_rt::spawn(async move {
        redis::cmd("BLMOVE")
            .arg("gw:{q:t}:ready")
            .arg("gw:{q:t}:running")
            .arg("RIGHT")
            .arg("LEFT")
            .arg(10)
            .query_async::<Option<String>>(&mut blocking)
            .await
    });
    let pushed = cluster_tests::eventually(Duration::from_secs(5), async || {
        // Shared commands keep flowing while the BLMOVE blocks.
        let _: String = store.query(&redis::cmd("PING")).await.ok()?;
        let _: i64 = store.query(redis::cmd("LPUSH").arg("gw:{q:t}:ready").arg("job-1")).await.ok()?;
        Some(())
    });
    assert!(pushed.await.is_some(), "LPUSH through the shared connection failed");
    let moved = tokio::time::timeout(Duration::from_secs(10), waiter).await;
    assert_eq!(moved.ok().and_then(|r| r.ok()).and_then(|r| r.ok()).flatten().as_deref(), Some("job-1"));

    let mut sub = store.pubsub().await.expect("pubsub connection");
    sub.subscribe("gw:test-events").await.expect("subscribes");
    let mut messages = sub.into_on_message();
    let received = cluster_tests::eventually(Duration::from_secs(5), async || {
        let _: i64 = store.query(redis::cmd("PUBLISH").arg("gw:test-events").arg("hello")).await.ok()?;
        let msg = tokio::time::timeout(Duration::from_millis(200), messages.next()).await.ok()??;
        msg.get_payload::<String>().ok()
    });
    assert_eq!(received.await.as_deref(), Some("hello"));
}

#[actix_rt::test]
async fn dedicated_connections_block_and_subscribe_on_standalone_redis() {
    let redis = TestRedis::start();
    dedicated_and_pubsub_work(&store(redis.url(), Topology::Standalone)).await;
}

#[actix_rt::test]
async fn dedicated_connections_block_and_subscribe_on_a_redis_cluster() {
    let cluster = TestRedisCluster::start();
    let s = store("redis://unused".into(), Topology::Cluster { nodes: cluster.urls() });
    assert!(s.is_cluster());
    dedicated_and_pubsub_work(&s).await;
}

/// Clients connected to `redis` (the asking connection included).
async fn connected_clients(redis: &TestRedis) -> Option<usize> {
    let mut conn = redis::Client::open(redis.url()).ok()?.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO").arg("clients").query_async(&mut conn).await.ok()?;
    info.lines().find_map(|l| l.strip_prefix("connected_clients:")).and_then(|n| n.trim().parse().ok())
}

/// `threads` threads, each on its own current-thread runtime, send commands through
/// clones of `store` until `stop` is set (their per-thread connections stay open).
fn command_threads(store: &Store, threads: usize, stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    (0..threads)
        .map(|_| {
            let (store, stop) = (store.clone(), Arc::clone(stop));
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async {
                    while !stop.load(Ordering::Acquire) {
                        let _: Result<String, _> = store.query(&redis::cmd("PING")).await;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                });
            })
        })
        .collect()
}

/// Standalone: `pool_size` is the most command connections a node opens — the shared one
/// plus one per thread that sends commands, up to `pool_size - 1` of them.
#[actix_rt::test]
async fn pool_size_bounds_the_command_connections_to_a_standalone_server() {
    // (pool_size, threads sending commands, command connections expected)
    for (pool_size, threads, expected) in [(1, 3, 1), (3, 4, 3), (16, 3, 4)] {
        let redis = TestRedis::start();
        let mut cfg = store(redis.url(), Topology::Standalone).config().clone();
        cfg.pool_size = pool_size;
        let s = Store::new(cfg, actors::status::NodeStatus::redis()).expect("valid settings");
        s.connect().await.expect("connects");
        let stop = Arc::new(AtomicBool::new(false));
        let handles = command_threads(&s, threads, &stop);
        // + 1: the connection that asks.
        let settled = cluster_tests::eventually(Duration::from_secs(5), async || {
            (connected_clients(&redis).await? == expected + 1).then_some(())
        })
        .await;
        // Stays there: no thread opens more later.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = connected_clients(&redis).await;
        stop.store(true, Ordering::Release);
        for h in handles {
            h.join().expect("command thread");
        }
        assert!(settled.is_some(), "pool_size {pool_size}, {threads} threads: never {expected} connections");
        assert_eq!(after, Some(expected + 1), "pool_size {pool_size}, {threads} threads");
    }
}
