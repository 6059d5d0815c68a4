//! `MockUpstream`: a real HTTP server (actix-web on its own thread and runtime) whose
//! answers are scripted per test or per request, and which records what it received.
//!
//! Per-request controls (request headers, passed through the gateway):
//! `x-mock-status: 503`, `x-mock-delay-ms: 1500`, `x-mock-set-header: name: value`.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path as received.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Headers, names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// When the request head arrived (before any scripted delay).
    pub received_at: std::time::Instant,
}

impl Recorded {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// Every value of a header.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }
}

/// Default answer of an upstream.
#[derive(Debug, Clone)]
pub struct Behavior {
    /// Status.
    pub status: u16,
    /// Delay before answering.
    pub delay: Duration,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// A fixed JSON body instead of the echo (e.g. a JWKS document).
    pub body: Option<String>,
}

impl Default for Behavior {
    fn default() -> Self {
        Self { status: 200, delay: Duration::ZERO, headers: Vec::new(), body: None }
    }
}

struct State {
    name: String,
    record: bool,
    recorded: Mutex<Vec<Recorded>>,
    behavior: Mutex<Behavior>,
}

/// A running mock upstream.
pub struct MockUpstream {
    /// Name, returned in `x-upstream` and the JSON body.
    pub name: String,
    /// Port on 127.0.0.1.
    pub port: u16,
    state: Arc<State>,
    system: Option<(actix_rt::System, actix_web::dev::ServerHandle)>,
    thread: Option<JoinHandle<()>>,
}

impl MockUpstream {
    /// Starts an upstream that records every request.
    pub fn start(name: &str) -> Self {
        Self::start_with(name, true, 1, TcpListener::bind("127.0.0.1:0").expect("bind"))
    }

    /// Starts an upstream on a given listener; `record = false` for load tests.
    pub fn start_with(name: &str, record: bool, workers: usize, listener: TcpListener) -> Self {
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(State {
            name: name.to_string(),
            record,
            recorded: Mutex::new(Vec::new()),
            behavior: Mutex::new(Behavior::default()),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let sys = actix_rt::System::new();
            let _ = sys.block_on(async move {
                let data = web::Data::from(shared);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::PayloadConfig::new(64 << 20))
                        .default_service(web::to(handle))
                })
                .workers(workers)
                .disable_signals()
                .shutdown_timeout(0)
                .listen(listener)
                .expect("listen")
                .run();
                let _ = tx.send((actix_rt::System::current(), server.handle()));
                server.await
            });
        });
        let system = rx.recv().expect("mock upstream thread started");
        Self { name: name.to_string(), port, state, system: Some(system), thread: Some(thread) }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets the default answer.
    pub fn set_behavior(&self, b: Behavior) {
        *self.state.behavior.lock().unwrap_or_else(|e| e.into_inner()) = b;
    }

    /// Requests received so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.state.recorded.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Number of requests received so far.
    pub fn count(&self) -> usize {
        self.state.recorded.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Stops the server (the port then refuses connections).
    pub fn stop(&mut self) {
        if let Some((sys, handle)) = self.system.take() {
            sys.arbiter().spawn(async move { handle.stop(false).await });
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn handle(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let received_at = std::time::Instant::now();
    let behavior = state.behavior.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    let status = header("x-mock-status").and_then(|s| s.parse().ok()).unwrap_or(behavior.status);
    let delay =
        header("x-mock-delay-ms").and_then(|s| s.parse().ok()).map(Duration::from_millis).unwrap_or(behavior.delay);
    if state.record {
        let rec = Recorded {
            method: req.method().to_string(),
            path: req.path().to_string(),
            query: req.query_string().to_string(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect(),
            body: body.to_vec(),
            received_at,
        };
        state.recorded.lock().unwrap_or_else(|e| e.into_inner()).push(rec);
    }
    if !delay.is_zero() {
        actix_rt::time::sleep(delay).await;
    }
    let mut res = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    res.insert_header(("x-upstream", state.name.as_str()));
    for (k, v) in &behavior.headers {
        res.append_header((k.as_str(), v.as_str()));
    }
    if let Some((k, v)) = header("x-mock-set-header").and_then(|h| h.split_once(':')) {
        res.append_header((k.trim(), v.trim()));
    }
    if let Some(body) = behavior.body {
        return res.content_type("application/json").body(body);
    }
    if !state.record {
        return res.body("ok");
    }
    res.json(serde_json::json!({
        "upstream": state.name,
        "method": req.method().as_str(),
        "path": req.path(),
        "query": req.query_string(),
        "body_len": body.len(),
    }))
}
