//! The job-queue conformance suite on [`MemQueue`].

use std::sync::Arc;

use kiln_core::queue::JobQueue;
use kiln_core::time::SharedClock;
use kiln_testkit::mem::queue::MemQueue;

async fn setup(clock: SharedClock) -> Arc<dyn JobQueue> {
    Arc::new(MemQueue::new().with_clock(clock))
}

mod suite {
    kiln_testkit::job_queue_tests!(clock => super::setup(clock));
}

#[tokio::test]
async fn names_itself() {
    assert_eq!(MemQueue::default().to_string(), "MemQueue");
}
