//! A panic inside the breaker actor (docs/decisions/actor-supervision.md): the actor is
//! restarted in place, an open breaker stays open, a closed one still opens on failures
//! and closes after good probes — in memory mode and against a real redis-server.

use std::time::Duration;

use super::*;
use crate::registry::RouteTable;
use crate::spec::ServiceSpec;
use crate::test_redis::TestRedis;

/// Test-only: panics in a handler, or (`later`) in a future the handler spawned.
#[derive(Message)]
#[rtype(result = "()")]
struct Crash {
    later: bool,
}

impl Handler<Crash> for CircuitBreaker {
    type Result = ();
    fn handle(&mut self, msg: Crash, ctx: &mut Context<Self>) {
        if !msg.later {
            panic!("injected panic in a breaker handler");
        }
        ctx.spawn(fut::ready(()).map(|(), _: &mut Self, _| panic!("injected panic in a breaker future")));
    }
}

const OPEN_FOR_MS: u64 = 300;

/// Routes with service `s`: one endpoint, opened by 3 consecutive failures, closed by
/// one good probe after 300 ms.
fn routes() -> RoutesView {
    let spec: ServiceSpec = serde_json::from_value(serde_json::json!({
        "name": "s", "endpoints": ["http://127.0.0.1:1"],
        "circuit_breaker": {"consecutive_failures": 3, "min_requests": 1000, "open_for": "300ms", "half_open_probes": 1}
    }))
    .expect("json");
    let routes = RoutesView::default();
    routes.publish(
        RouteTable::build(1, [Arc::new(spec.validate().expect("valid"))], None, &Default::default()).expect("table"),
    );
    routes
}

fn endpoint(routes: &RoutesView) -> Arc<Endpoint> {
    Arc::clone(&routes.load().get("s").expect("route").pool.endpoints()[0])
}

/// Waits up to 5 s for the endpoint's cell to show `state`.
async fn until_state(ep: &Endpoint, state: CircuitState) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while ep.circuit().state() != state {
        assert!(Instant::now() < deadline, "the breaker never became {}", state.as_str());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The actor answers `ListCircuits` with `s`'s breaker in `state`.
async fn listed(breakers: &Breakers, state: CircuitState) {
    let list = breakers.addr().send(ListCircuits).await.expect("the actor answers after a restart");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].state, state);
}

/// The breaker of `s` works across two panics: it opens on failures after the first,
/// stays open through the second, and closes after a good probe. Answers the endpoint.
async fn survives_panics(store: Option<CircuitStore>) -> Arc<Endpoint> {
    let routes = routes();
    let ep = endpoint(&routes);
    let service: Arc<str> = Arc::from("s");
    let breakers = Breakers::start(CircuitBreaker::new(routes, store, NodeStatus::memory()));
    listed(&breakers, CircuitState::Closed).await;

    assert!(breakers.addr().send(Crash { later: false }).await.is_err(), "the panicking message is lost");
    for _ in 0..3 {
        breakers.record(&service, &ep, CallOutcome::Failure, false);
    }
    until_state(&ep, CircuitState::Open).await;
    listed(&breakers, CircuitState::Open).await;

    breakers.addr().do_send(Crash { later: true });
    listed(&breakers, CircuitState::Open).await;
    assert_eq!(ep.circuit().state(), CircuitState::Open, "a restart does not close an open breaker");

    tokio::time::sleep(Duration::from_millis(OPEN_FOR_MS + 50)).await;
    assert!(breakers.probe(&service, &ep).await, "after open_for one probe is granted");
    breakers.record(&service, &ep, CallOutcome::Success, true);
    until_state(&ep, CircuitState::Closed).await;
    ep
}

#[actix_rt::test]
async fn a_panicking_handler_does_not_leave_the_breaker_closed_in_memory_mode() {
    survives_panics(None).await;
}

#[actix_rt::test]
async fn a_panicking_handler_does_not_leave_the_breaker_closed_with_redis() {
    let redis = TestRedis::start();
    let store = CircuitStore::new(redis.store(NodeStatus::redis()).await, Arc::from("n1"));
    let ep = survives_panics(Some(store.clone())).await;
    let shared = store.all().await.expect("redis answers");
    assert_eq!(shared.get(&store::field("s", &ep.id)).map(|m| m.state), Some(CircuitState::Closed));
}

#[actix_rt::test]
async fn a_restart_takes_the_state_another_node_stored_in_redis() {
    let redis = TestRedis::start();
    let store = CircuitStore::new(redis.store(NodeStatus::redis()).await, Arc::from("n1"));
    let routes = routes();
    let ep = endpoint(&routes);
    let spec = routes.load().get("s").and_then(|r| r.spec.circuit_breaker.clone()).expect("breaker spec");
    let breakers = Breakers::start(CircuitBreaker::new(routes, Some(store.clone()), NodeStatus::redis()));
    listed(&breakers, CircuitState::Closed).await;

    // Another node opens the breaker; its event never arrives here (no subscriber).
    let other = CircuitStore::new(redis.store(NodeStatus::redis()).await, Arc::from("n2"));
    other.apply(store::Op::Trip, "s", &ep.id, &spec).await.expect("trip stored");
    assert_eq!(ep.circuit().state(), CircuitState::Closed);

    assert!(breakers.addr().send(Crash { later: false }).await.is_err());
    until_state(&ep, CircuitState::Open).await;
}

#[actix_rt::test]
async fn a_breaker_opened_in_the_year_ten_thousand_is_listed_without_a_panic() {
    let routes = routes();
    let ep = endpoint(&routes);
    let breakers = Breakers::start(CircuitBreaker::new(routes, None, NodeStatus::memory()));
    listed(&breakers, CircuitState::Closed).await;
    let raw = format!(
        r#"{{"kind":"circuit","service":"s","instance":"{}","state":"open","until_ms":{},"opened_ms":{}}}"#,
        ep.id,
        u64::MAX,
        u64::MAX
    );
    let event = crate::redis::events::ClusterEvent::parse(&raw).expect("event");
    breakers.addr().do_send(BusMessage::Event(Arc::new(event)));
    let list = breakers.addr().send(ListCircuits).await.expect("the listing does not panic");
    assert_eq!((list[0].state, list[0].opened_at.as_deref()), (CircuitState::Open, None));
    assert_eq!(rfc3339_ms(0).as_deref(), Some("1970-01-01T00:00:00.000Z"));
}
