//! `HttpRunner`: the gateway's `JobRunner` — queued jobs go upstream through the proxy's
//! balancer, header rules and timeouts (`proxy::send_job`) on this thread's awc client.

use std::sync::Arc;

use actors::queue::{JobRequest, JobRunner, RunOutcome};
use actors::registry::Route;
use futures_util::future::LocalBoxFuture;

/// Runs jobs over one awc client (created on the thread the queue workers run on).
pub struct HttpRunner {
    client: awc::Client,
    max_body: u64,
}

impl HttpRunner {
    /// A runner sending with `client`, keeping result bodies up to `max_body` bytes.
    pub fn new(client: awc::Client, max_body: u64) -> Self {
        Self { client, max_body }
    }
}

impl JobRunner for HttpRunner {
    fn run(&self, job: Arc<JobRequest>, route: Arc<Route>) -> LocalBoxFuture<'static, RunOutcome> {
        let (client, max_body) = (self.client.clone(), self.max_body);
        Box::pin(async move { crate::proxy::send_job(&client, &route, &job, max_body).await })
    }
}
