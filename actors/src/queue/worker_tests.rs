//! Shutdown of `QueueWorker`s on the memory backend: a run longer than the grace period
//! goes back uncounted, a shorter one finishes before `ReturnLeased` answers.

use std::cell::Cell;

use super::*;
use crate::queue::{JobResult, JobStatus, NewJob};
use crate::registry::{Route, RouteTable, RoutesView};
use crate::spec::ServiceSpec;
use crate::status::NodeStatus;

/// Answers 200 after `delay`; counts runs started.
struct Slow {
    delay: Duration,
    runs: Rc<Cell<u32>>,
}

impl JobRunner for Slow {
    fn run(&self, _: Arc<JobRequest>, _: Arc<Route>) -> futures_util::future::LocalBoxFuture<'static, RunOutcome> {
        let (delay, runs) = (self.delay, Rc::clone(&self.runs));
        Box::pin(async move {
            runs.set(runs.get() + 1);
            tokio::time::sleep(delay).await;
            RunOutcome::Answered(JobResult { status: 200, headers: Vec::new(), body: Vec::new() })
        })
    }
}

/// A node with one queued service `s` (one worker), one job enqueued and running;
/// answers the supervisor, the queues and the job id.
async fn running(delay: Duration) -> (Addr<QueueSupervisor>, Queues, String) {
    let spec: ServiceSpec = serde_json::from_value(serde_json::json!({
        "name": "s", "endpoints": ["http://127.0.0.1:1"],
        "queue": {"match": ["POST /x"], "concurrency": 1, "rate": "100/1s", "lease": "60s"}
    }))
    .expect("json");
    let spec = Arc::new(spec.validate().expect("valid"));
    let routes = RoutesView::default();
    routes.publish(RouteTable::build(1, [Arc::clone(&spec)], None, &Default::default()).expect("table"));
    let status = NodeStatus::memory();
    let queues = Queues::new(None, routes, status.clone());
    let queue = spec.queue.clone().expect("queue spec");
    let job = NewJob { method: "POST".into(), path: "/x".into(), ..NewJob::default() };
    let id = match queues.enqueue("s", &queue, &job).await.expect("enqueued") {
        super::super::Enqueued::New { id, .. } => id,
        other => panic!("not enqueued: {other:?}"),
    };
    let runs = Rc::new(Cell::new(0));
    let runner = Rc::new(Slow { delay, runs: Rc::clone(&runs) });
    let sup = QueueSupervisor::new(queues.clone(), runner, Limiter::new(None, status), Arc::from("n1")).start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while runs.get() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (sup, queues, id)
}

#[actix_rt::test]
async fn a_run_longer_than_the_grace_period_goes_back_to_the_queue_uncounted() {
    let (sup, queues, id) = running(Duration::from_secs(30)).await;
    let counts = sup.send(ReturnLeased { grace: Duration::from_millis(50) }).await.expect("answered");
    assert_eq!(counts, ShutdownCounts { finished: 0, returned: 1, stranded: 0 });
    let rec = queues.get(&id).await.expect("read").expect("job");
    assert_eq!((rec.status, rec.attempts), (JobStatus::Queued, 0));
}

#[actix_rt::test]
async fn a_run_shorter_than_the_grace_period_finishes_before_the_answer() {
    let (sup, queues, id) = running(Duration::from_millis(100)).await;
    let counts = sup.send(ReturnLeased { grace: Duration::from_secs(20) }).await.expect("answered");
    assert_eq!(counts, ShutdownCounts { finished: 1, returned: 0, stranded: 0 });
    let rec = queues.get(&id).await.expect("read").expect("job");
    assert_eq!((rec.status, rec.attempts), (JobStatus::Succeeded, 1));
}
