//! Starting a node: actors, the main (proxy) listener, the admin listener, and graceful
//! shutdown on SIGTERM/SIGINT: stop accepting (actix-server's graceful stop also closes
//! idle keep-alive connections), stop taking jobs, finish in-flight requests and jobs up to `node.shutdown_grace` (jobs still
//! running then go back to the queue), leave the membership, write out the access log, exit 0 — and `run` returns
//! only after all of it, so nothing is cut off when the System stops.

use std::sync::Arc;

use actix::Actor;
use actix_web::http::KeepAlive;
use actix_web::http::header::HeaderName;
use actix_web::{App, HttpServer, web};
use actors::analytics::{Analytics, AnalyticsActor, AnalyticsSettings, AnalyticsStore, Backend as AnalyticsBackend};
use actors::auth::{AuthGuard, AuthStore, AuthView, JwtVerifier};
use actors::cache::{Cache, CacheManager, CacheSettings, CacheStore};
use actors::circuit::{Breakers, CircuitBreaker, CircuitStore};
use actors::health_check::HealthChecker;
use actors::membership::{Leave, Membership};
use actors::redis::Store;
use actors::redis::events::{event_stream, spawn_subscriber};
use actors::registry::{Backend, RegistryStore, RoutesView, ServiceRegistry};
use actors::status::NodeStatus;

use crate::access_log::{self, AccessLog};
use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::health::{self, Health};
use crate::jwks::JwksFetcher;
use crate::pipeline::cache::{CacheLayer, Coalescer};
use crate::pipeline::limits::Limits;
use crate::pipeline::ratelimit::RateLimits;
use crate::pipeline::{self, Pipeline};
use crate::{proxy, telemetry};
use actors::queue::{QueueSupervisor, Queues, ReturnLeased};
use actors::ratelimit::{Limiter, PolicyRegistry, RateLimiter};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The initial service set is invalid (should have been caught by validation).
    #[error("{0}")]
    Registry(#[from] actors::registry::RegistryError),
    /// The upstream TLS settings cannot be used.
    #[error("upstream TLS: {0}")]
    Tls(String),
    /// The auth settings cannot be used.
    #[error("auth: {0}")]
    Auth(String),
    /// The Redis settings cannot be used.
    #[error("redis: {0}")]
    Redis(String),
    /// A setting the config check should have refused.
    #[error("config: {0}")]
    Config(String),
    /// The server failed while running.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Longest wait at shutdown for the access log's writer to write out what it holds.
const ACCESS_LOG_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs a node until it is told to stop; `on_ready` runs once both listeners are bound.
/// Must be called inside an actix `System`.
pub async fn run(config: Config, on_ready: impl FnOnce()) -> Result<(), StartError> {
    let node_id = config.node_id();
    let node: Arc<str> = Arc::from(node_id.as_str());
    let metrics = telemetry::init_metrics();

    // Shared state: Redis when configured, memory otherwise.
    let (status, store) = match &config.redis {
        Some(r) => {
            let status = NodeStatus::redis();
            let store = Store::new(r.store_config(), status.clone()).map_err(|e| StartError::Redis(e.to_string()))?;
            (status, Some(store))
        }
        None => (NodeStatus::memory(), None),
    };

    let routes = RoutesView::default();
    let events = event_stream();
    let registry_store = store.as_ref().map(|s| RegistryStore::new(s.for_actor("registry"), Arc::clone(&node)));
    let backend = match &registry_store {
        Some(s) => Backend::Redis(Box::new(s.clone())),
        None => Backend::Memory,
    };
    // The one policy registry: routes resolve their `rate_limit` names against it, the
    // limiter actor and the admin API read it.
    let policies = PolicyRegistry::new(config.rate_limit.policies.clone());
    let registry =
        ServiceRegistry::new(config.services.clone(), routes.clone(), backend, status.clone(), policies.clone())?
            .with_local_events(events.clone(), Arc::clone(&node))
            .start();
    let breakers = Breakers::start(CircuitBreaker::new(
        routes.clone(),
        store.as_ref().map(|s| CircuitStore::new(s.for_actor("circuit"), Arc::clone(&node))),
        status.clone(),
    ));
    let membership = Membership::new(&node_id, config.node.listen.to_string(), store.clone(), status.clone()).start();

    let health = web::Data::new(Health { node: Arc::clone(&node), status: status.clone() });
    let n = &config.node;
    let limits = Limits {
        max_body: n.max_body.bytes(),
        max_header_bytes: n.max_header_bytes.as_usize(),
        max_headers: n.max_headers,
        request_timeout: n.request_timeout.get(),
    };
    let auth_view = AuthView::default();
    let jwt = match &config.auth.jwt {
        Some(j) => Some(
            JwtVerifier::new(&j.settings()).map_err(|(i, m)| StartError::Auth(format!("auth.jwt.keys[{i}]: {m}")))?,
        ),
        None => None,
    };
    let cache_settings = CacheSettings {
        l1_capacity: config.cache.l1_capacity.bytes(),
        l1_ttl: config.cache.l1_ttl.get(),
        default_ttl: config.cache.default_ttl.get(),
        max_object: config.cache.max_object.bytes(),
        compress_above: config.cache.compress_above.as_usize(),
    };
    let cache = Cache::new(
        cache_settings,
        store.as_ref().map(|s| CacheStore::new(s.for_actor("cache"))),
        status.clone(),
        Arc::clone(&node),
    );
    let cache_manager = actors::supervise::start("cache", CacheManager::new(cache.clone()));
    let auth_store = store.as_ref().map(|s| AuthStore::new(s.for_actor("auth"), Arc::clone(&node)));
    let auth_guard = AuthGuard::new(jwt, auth_store, auth_view.clone(), status.clone()).start();
    if let Some(store) = &store {
        let store = store.clone();
        let recipients = vec![
            registry.clone().recipient(),
            auth_guard.clone().recipient(),
            breakers.addr().clone().recipient(),
            cache_manager.clone().recipient(),
        ];
        let stream = events.clone();
        let fills = cache.fills();
        actix_rt::spawn(async move {
            store.connect_with_retry().await;
            spawn_subscriber(store, recipients, stream, Some(fills));
        });
    }
    let api_key_header = HeaderName::from_bytes(config.auth.api_key.header.as_bytes()).map_err(|_| {
        StartError::Auth(format!("auth.api_key.header {:?} is not a header name", config.auth.api_key.header))
    })?;
    let jwks = config.auth.jwt.as_ref().and_then(|j| {
        let url = j.jwks_url.clone()?;
        Some(JwksFetcher::new(url, j.jwks_refresh.get(), auth_guard.clone(), status.clone()).start())
    });
    let access_log = AccessLog::start(&config.log, &node_id)
        .map_err(|e| StartError::Config(format!("log.access_log_file: cannot open {e}")))?;
    access_log::reopen_on_sigusr1(access_log.clone());
    let mut pipeline = Pipeline::new(
        &node_id,
        routes.clone(),
        limits,
        n.trusted_proxies.clone(),
        access_log.clone(),
        auth_view,
        api_key_header,
    );
    pipeline.jwks = jwks;
    pipeline.breakers = Some(breakers.clone());
    pipeline.cache = Some(CacheLayer { cache, coalescer: Coalescer::default() });
    let rate_limiter = RateLimiter::new(
        Limiter::new(store.as_ref().map(|s| s.for_actor("ratelimit")), status.clone()),
        policies.clone(),
    );
    pipeline.rate_limits = Some(
        RateLimits::new(rate_limiter.handle(), &policies, config.rate_limit.tiers.clone().into_iter().collect())
            .map_err(StartError::Config)?,
    );
    let queues = Queues::new(store.as_ref().map(|s| s.for_actor("queue")), routes.clone(), status.clone());
    pipeline.queues = Some(queues.clone());
    let analytics = start_analytics(&config, &node, store.as_ref(), &status);
    pipeline.analytics = analytics.clone();
    pipeline.otlp = config
        .telemetry
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| crate::otlp::Exporter::start(endpoint, &config.telemetry.service_name, &node_id));
    let pipeline = web::Data::new(pipeline);
    let workers = if n.workers == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { n.workers };
    let grace = n.shutdown_grace.get().as_secs().max(1);

    let extra_ca = match &n.upstream_ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|e| StartError::Tls(format!("{path}: {e}")))?),
        None => None,
    };
    let tls = proxy::tls_config(extra_ca.as_deref()).map_err(StartError::Tls)?;
    // Health checks go through the traffic's clients (TLS included), on this thread.
    let health_probe = std::rc::Rc::new(proxy::UpstreamProbe::new(proxy::Upstream::new(&tls)));
    HealthChecker::new(routes.clone(), registry.clone(), status.clone(), health_probe).start();
    // Queue workers run on this (the System) thread, with their own upstream client.
    let runner = pipeline::queue::runner::HttpRunner::new(
        proxy::Upstream::new(&tls),
        n.max_body.bytes(),
        Some(breakers.clone()),
    );
    let permits = Limiter::new(store.as_ref().map(|s| s.for_actor("queue")), status.clone());
    let queue_supervisor =
        QueueSupervisor::new(queues.clone(), std::rc::Rc::new(runner), permits, Arc::clone(&node)).start();
    let guard_data = web::Data::new(auth_guard.clone());
    let main = {
        let app_pipeline = pipeline.clone();
        let guard_data = guard_data.clone();
        let health = health.clone();
        let app = move || {
            App::new()
                .app_data(app_pipeline.clone())
                .app_data(health.clone())
                .app_data(guard_data.clone())
                .app_data(web::Data::new(proxy::Upstream::new(&tls)))
                .route("/health", web::get().to(health::health))
                .route("/ready", web::get().to(health::ready))
                .route("/auth/logout", web::post().to(pipeline::logout::logout))
                // A static scope first: a dynamic app-level pattern would run its regex on
                // every proxied request.
                .service(
                    web::scope("/jobs")
                        .route("/{id}", web::get().to(pipeline::queue::status))
                        .default_service(web::to(pipeline::entry)),
                )
                .default_service(web::to(pipeline::entry))
        };
        main_listener(app, pipeline.clone(), n, workers, grace)?
    };

    let admin_state = web::Data::new(AdminState {
        token: config.admin.token.clone(),
        listen: n.admin_listen,
        metrics,
        registry,
        membership: membership.clone(),
        policies,
        rate_limiter: actors::supervise::start("ratelimit", rate_limiter),
        jwt_configured: config.auth.jwt.is_some(),
        jwt_issuer: config.auth.jwt.as_ref().and_then(|j| j.issuer.clone()),
        events,
        registry_store,
        auth: auth_guard,
        auth_view: pipeline.auth.clone(),
        circuits: breakers.addr().clone(),
        cache: cache_manager,
        routes: pipeline.routes.clone(),
        queues,
        analytics,
    });
    let admin = {
        let health = health.clone();
        HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(admin::host_check))
                // Outermost: every answer, the host check's refusals included, gets an id.
                .wrap(actix_web::middleware::from_fn(admin::stamp))
                .app_data(admin_state.clone())
                .app_data(health.clone())
                .route("/health", web::get().to(health::health))
                .route("/ready", web::get().to(health::ready))
                .configure(admin::routes)
        })
        .workers(1)
        .shutdown_timeout(grace)
        .disable_signals()
        .bind(n.admin_listen)
        .map_err(|source| StartError::Bind { addr: n.admin_listen, source })?
        .run()
    };

    tracing::info!(node = %node_id, listen = %n.listen, admin = %n.admin_listen, workers, "gateway node started");
    on_ready();
    let (main_handle, admin_handle) = (main.handle(), admin.handle());
    let job_grace = n.shutdown_grace.get();
    let signalled = std::rc::Rc::new(std::cell::Cell::new(false));
    let shutdown = {
        let (signalled, supervisor, membership) = (signalled.clone(), queue_supervisor.clone(), membership.clone());
        actix_rt::spawn(async move {
            wait_for_signal().await;
            signalled.set(true);
            tracing::info!(
                grace_secs = grace,
                "shutting down: no new connections, finishing in-flight requests and jobs"
            );
            // Workers stop taking jobs; running ones get the grace period, the rest go
            // back to the queue for other nodes. In parallel, both listeners stop
            // accepting and their in-flight requests get up to `grace`.
            let jobs = supervisor.send(ReturnLeased { grace: job_grace });
            let (_, _, jobs) = futures_util::future::join3(main_handle.stop(true), admin_handle.stop(true), jobs).await;
            log_jobs(jobs);
            // Leave the membership last: until the listeners are drained we are still serving.
            let _ = membership.send(Leave).await;
        })
    };
    let (a, b) = futures_util::future::join(serve_outside_system(main), admin).await;
    // The listeners end early when there is nothing in flight: `run` must not return (and
    // the System must not stop, dropping the queue workers mid-return) before the whole
    // shutdown sequence has run.
    if signalled.get() {
        let _ = shutdown.await;
    } else {
        // A listener failed: no signal, but held jobs still go back at once.
        shutdown.abort();
        log_jobs(queue_supervisor.send(ReturnLeased { grace: std::time::Duration::ZERO }).await);
        let _ = membership.send(Leave).await;
    }
    // Every request is answered (or was cut off at the grace period): the access log's
    // last lines go out before the process ends.
    if let Some(log) = &access_log
        && !log.close(ACCESS_LOG_DRAIN).await
    {
        tracing::warn!("the access log was not drained within {ACCESS_LOG_DRAIN:?}; its last lines may be lost");
    }
    a?;
    b?;
    tracing::info!(node = %node_id, "gateway node stopped");
    Ok(())
}

/// The proxy listener: what actix-web's `HttpServer` builds (same settings, graceful
/// shutdown of idle keep-alive connections included), plus an expect service
/// (`pipeline::expect`), so `100 Continue` is only sent to requests that passed the
/// checks their head decides.
fn main_listener<F, A>(
    app: F,
    pipeline: web::Data<Pipeline>,
    n: &crate::config::NodeConfig,
    workers: usize,
    grace: u64,
) -> Result<actix_web::dev::Server, StartError>
where
    F: Fn() -> App<A> + Send + Clone + 'static,
    A: actix_service::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
{
    use actix_service::{IntoServiceFactory, ServiceFactoryExt, map_config};
    let (request_timeout, keep_alive, addr) = (n.request_timeout.get(), n.keep_alive.get(), n.listen);
    let builder =
        actix_server::Server::build().workers(workers).backlog(4096).shutdown_timeout(grace).disable_signals();
    let shutdown = builder.graceful_shutdown_signal();
    let builder = builder
        .bind("gateway-proxy", addr, move || {
            let shutdown = shutdown.clone();
            let app = app().into_factory().map_err(|e: actix_web::Error| e.error_response());
            actix_http::HttpService::build()
                .graceful_shutdown_signal(move || {
                    let shutdown = shutdown.clone();
                    async move { shutdown.notified().await }
                })
                .keep_alive(KeepAlive::Timeout(keep_alive))
                .client_request_timeout(request_timeout)
                .client_disconnect_timeout(std::time::Duration::from_secs(1))
                .local_addr(addr)
                .expect(pipeline::expect::gate(pipeline.clone()))
                .finish(map_config(app, |_| actix_web::dev::AppConfig::default()))
                .tcp()
        })
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok(builder.run())
}

/// The log line with what became of the queue jobs this node held at shutdown.
fn log_jobs(jobs: Result<actors::queue::ShutdownCounts, actix::MailboxError>) {
    match jobs {
        Ok(c) => tracing::info!(
            finished = c.finished,
            returned = c.returned,
            stranded = c.stranded,
            "queue jobs at shutdown: {} finished, {} returned to the queue, {} left to lease expiry",
            c.finished,
            c.returned,
            c.stranded
        ),
        Err(e) => tracing::warn!(error = %e, "queue jobs at shutdown: the queue supervisor did not answer"),
    }
}

/// Starts the analytics actor (Redis-backed when Redis is configured); a no-op handle
/// when `[analytics] enabled = false`.
fn start_analytics(config: &Config, node: &Arc<str>, store: Option<&Store>, status: &NodeStatus) -> Analytics {
    let a = &config.analytics;
    if !a.enabled {
        return Analytics::default();
    }
    let settings = AnalyticsSettings {
        stream_max_len: a.stream_max_len,
        retention: a.retention.get(),
        batch: a.batch,
        flush_interval: a.flush_interval.get(),
    };
    let backend = match store {
        Some(s) => AnalyticsBackend::Redis(Box::new(AnalyticsStore::new(
            s.for_actor("analytics"),
            settings.stream_max_len,
            settings.retention,
        ))),
        None => AnalyticsBackend::Memory,
    };
    Analytics::start(Some(AnalyticsActor::new(Arc::clone(node), settings, backend, status.clone())))
}

/// Drives the proxy listener on a thread of its own with a plain Tokio runtime.
///
/// actix-server gives each worker a Tokio `LocalRuntime` when it is started outside an actix
/// `System`, and a `LocalSet` inside one. Under a `LocalSet` every I/O wake-up of a request
/// task also wakes the runtime through its eventfd (a `write` system call per event-loop
/// turn, then an extra `epoll_wait`); a `LocalRuntime` queues the task directly. Actors stay on
/// the System thread: handlers reach them by message, which works from any thread.
async fn serve_outside_system(server: actix_web::dev::Server) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("gateway-listener".into()).spawn(move || {
        let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(server),
            Err(e) => Err(e),
        };
        let _ = tx.send(result);
    })?;
    rx.await.unwrap_or_else(|_| Err(std::io::Error::other("the listener thread ended without a result")))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
