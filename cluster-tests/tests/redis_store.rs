//! `actors::redis::Store` against real deployments: the contract of its dedicated
//! connections (`dedicated()` for blocking commands, `pubsub()` for events) on standalone
//! Redis and on a six-node Redis Cluster.

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
