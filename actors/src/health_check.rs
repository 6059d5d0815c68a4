//! `HealthChecker`: active health checks (`[services.health_check]`). Each endpoint is
//! probed with `GET <path>` every `interval`; `unhealthy_after` consecutive failures
//! mark it down and `healthy_after` successes mark it up again, through the registry
//! (so every node sees the same health). In Redis mode only the leader probes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::registry::{RoutesView, ServiceRegistry, SetHealth};
use crate::spec::Scheme;
use crate::status::NodeStatus;

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
}

impl HealthChecker {
    /// Checks the endpoints of every service in `routes` that asks for it.
    pub fn new(routes: RoutesView, registry: Addr<ServiceRegistry>, status: NodeStatus) -> Self {
        Self { routes, registry, status, probes: HashMap::new() }
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
                let target = (ep.url.scheme(), ep.url.authority().to_string(), ep.url.host().to_string());
                let path = format!("{}{}", ep.url.base_path(), hc.path);
                let timeout = hc.timeout.get();
                let (up_after, down_after) = (hc.healthy_after, hc.unhealthy_after);
                ctx.spawn(probe_once(target, path, timeout).into_actor(self).map(move |ok, act, _| {
                    let Some(p) = act.probes.get_mut(&key) else { return };
                    p.in_flight = false;
                    if ok {
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
                        tracing::info!(service = %key.0, endpoint = %key.1, healthy, "endpoint health changed");
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

/// One `GET` over plain HTTP/1.1: 2xx/3xx within `timeout` is healthy. HTTPS endpoints
/// are reported healthy (no TLS client in this crate yet) so they are never dropped.
async fn probe_once(target: (Scheme, String, String), path: String, timeout: Duration) -> bool {
    let (scheme, authority, host) = target;
    if scheme == Scheme::Https {
        return true;
    }
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(authority.as_str()).await?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: gateway-health-check\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(buf)) => buf.starts_with(b"HTTP/1.") && matches!(buf[9], b'2' | b'3'),
        _ => false,
    }
}
