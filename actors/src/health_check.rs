//! `HealthChecker`: active health checks (`[services.health_check]`). Each endpoint is
//! probed with `GET <path>` every `interval`; `unhealthy_after` consecutive failures
//! mark it down and `healthy_after` successes mark it up again, through the registry
//! (so every node sees the same health). In Redis mode only the leader probes. The
//! request itself is the gateway's (`HealthProbe`): it goes through the same clients as
//! traffic, TLS included; this crate has no HTTP client.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;

use crate::balancer::Endpoint;
use crate::registry::{RoutesView, ServiceRegistry, SetHealth};
use crate::status::NodeStatus;

/// Sends one health-check request (implemented by the gateway's proxy).
pub trait HealthProbe {
    /// `GET path` (under the endpoint's base path) on `endpoint`, answered within
    /// `timeout`: the status code, or why there was none.
    fn check(
        &self,
        endpoint: Arc<Endpoint>,
        path: String,
        timeout: Duration,
    ) -> LocalBoxFuture<'static, Result<u16, String>>;
}

/// Whether a check's result means healthy: a 2xx or 3xx answer.
pub fn is_healthy(result: &Result<u16, String>) -> bool {
    matches!(result, Ok(200..=399))
}

/// Scheduler resolution.
const TICK: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Probe {
    next: Option<Instant>,
    in_flight: bool,
    successes: u32,
    failures: u32,
    healthy: Option<bool>,
}

/// The health checker actor.
pub struct HealthChecker {
    routes: RoutesView,
    registry: Addr<ServiceRegistry>,
    status: NodeStatus,
    probes: HashMap<(String, String), Probe>,
    client: Rc<dyn HealthProbe>,
}

impl HealthChecker {
    /// Checks the endpoints of every service in `routes` that asks for it, sending each
    /// check through `client`.
    pub fn new(
        routes: RoutesView,
        registry: Addr<ServiceRegistry>,
        status: NodeStatus,
        client: Rc<dyn HealthProbe>,
    ) -> Self {
        Self { routes, registry, status, probes: HashMap::new(), client }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if !self.status.is_leader() {
            self.probes.clear();
            return;
        }
        let now = Instant::now();
        let table = self.routes.load_full();
        let mut live = Vec::new();
        for route in table.routes() {
            let Some(hc) = route.spec.health_check.clone() else { continue };
            for ep in route.pool.endpoints() {
                let key = (route.name.to_string(), ep.id.to_string());
                live.push(key.clone());
                let probe = self.probes.entry(key.clone()).or_default();
                if probe.in_flight || probe.next.is_some_and(|t| t > now) {
                    continue;
                }
                probe.in_flight = true;
                probe.next = Some(crate::units::deadline_after(now, hc.interval.get()));
                let timeout = hc.timeout.get();
                // Bounded here too, whatever the client does.
                let check = tokio::time::timeout(timeout, self.client.check(Arc::clone(ep), hc.path.clone(), timeout));
                let check = async move {
                    check
                        .await
                        .unwrap_or_else(|_| Err(format!("no answer within {}", humantime::format_duration(timeout))))
                };
                let (up_after, down_after) = (hc.healthy_after, hc.unhealthy_after);
                ctx.spawn(check.into_actor(self).map(move |result, act, _| {
                    let Some(p) = act.probes.get_mut(&key) else { return };
                    p.in_flight = false;
                    if is_healthy(&result) {
                        p.successes += 1;
                        p.failures = 0;
                    } else {
                        p.failures += 1;
                        p.successes = 0;
                    }
                    let verdict = if p.failures >= down_after {
                        Some(false)
                    } else if p.successes >= up_after {
                        Some(true)
                    } else {
                        None
                    };
                    if let Some(healthy) = verdict
                        && p.healthy != Some(healthy)
                    {
                        let last = match &result {
                            Ok(status) => format!("status {status}"),
                            Err(e) => e.clone(),
                        };
                        tracing::info!(service = %key.0, endpoint = %key.1, healthy, last, "endpoint health changed");
                        p.healthy = Some(healthy);
                        act.registry.do_send(SetHealth { service: key.0.clone(), id: key.1.clone(), healthy });
                    }
                }));
            }
        }
        self.probes.retain(|k, _| live.contains(k));
    }
}

impl Actor for HealthChecker {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
    }
}

#[cfg(test)]
mod tests {
    use super::is_healthy;

    #[test]
    fn only_2xx_and_3xx_answers_are_healthy() {
        assert!(is_healthy(&Ok(200)) && is_healthy(&Ok(204)) && is_healthy(&Ok(302)));
        assert!(!is_healthy(&Ok(500)) && !is_healthy(&Ok(404)) && !is_healthy(&Ok(101)));
        assert!(!is_healthy(&Err("certificate not trusted".into())));
    }
}
