//! `HttpRunner`: the gateway's `JobRunner` — queued jobs go upstream through the proxy's
//! balancer, header rules and timeouts (`proxy::send_job`) on this thread's `Upstream`.

use std::sync::Arc;

use actors::queue::{JobRequest, JobRunner, RunOutcome};
use actors::registry::Route;
use futures_util::future::LocalBoxFuture;

/// Runs jobs over one `Upstream` (created on the thread the queue workers run on).
pub struct HttpRunner {
    client: crate::proxy::Upstream,
    max_body: u64,
    breakers: Option<actors::circuit::Breakers>,
}

impl HttpRunner {
    /// A runner sending with `client`, keeping result bodies up to `max_body` bytes.
    pub fn new(client: crate::proxy::Upstream, max_body: u64, breakers: Option<actors::circuit::Breakers>) -> Self {
        Self { client, max_body, breakers }
    }
}

impl JobRunner for HttpRunner {
    fn run(&self, job: Arc<JobRequest>, route: Arc<Route>) -> LocalBoxFuture<'static, RunOutcome> {
        let (client, max_body, breakers) = (self.client.clone(), self.max_body, self.breakers.clone());
        Box::pin(async move { crate::proxy::send_job(&client, &route, &job, max_body, breakers.as_ref()).await })
    }
}
