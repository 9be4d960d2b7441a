//! The job-queue conformance suite on SQLite files and in memory, and file handling.

use std::sync::Arc;
use std::time::Duration;

use kiln_core::queue::{JobQueue, LeaseOptions};
use kiln_core::time::SharedClock;
use kiln_sqlite::SqliteQueue;
use kiln_testkit::queue::job;

/// A fresh queue on `clock` in its own temporary directory (kept for the test's duration
/// by leaking the guard: the OS temp cleaner removes it).
async fn setup(clock: SharedClock) -> Arc<dyn JobQueue> {
    let dir = tempfile::tempdir().unwrap().keep();
    let q = SqliteQueue::open(&dir.join("queue.sqlite")).await.unwrap();
    Arc::new(q.with_clock(clock))
}

mod file {
    kiln_testkit::job_queue_tests!(clock => super::setup(clock));
}

mod memory {
    use super::*;

    async fn setup(clock: SharedClock) -> Arc<dyn JobQueue> {
        let q = SqliteQueue::open_in_memory().await.unwrap();
        Arc::new(q.with_clock(clock))
    }

    kiln_testkit::job_queue_tests!(clock => setup(clock));
}

#[tokio::test]
async fn jobs_survive_reopening_and_two_handles_share_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.sqlite");
    let q = SqliteQueue::open(&path).await.unwrap();
    assert_eq!(q.to_string(), format!("Sqlite({})", path.display()));
    let ids = q.enqueue(vec![job("a"), job("b")]).await.unwrap();
    drop(q);
    let (q1, q2) = (
        SqliteQueue::open(&path).await.unwrap(),
        SqliteQueue::open(&path).await.unwrap(),
    );
    let opts = LeaseOptions {
        max_jobs: std::num::NonZeroUsize::new(1).unwrap(),
        visibility: Duration::from_secs(60),
        worker: None,
        throttles: Vec::new(),
    };
    let a = q1.lease(&opts).await.unwrap().jobs;
    let b = q2.lease(&opts).await.unwrap().jobs;
    assert_eq!((a[0].id, b[0].id), (ids[0].id, ids[1].id));
    assert_eq!(
        q2.ack(&[a[0].lease]).await.unwrap(),
        1,
        "a lease is valid in any process"
    );
    assert_eq!(q1.pending().await.unwrap(), 1);
}

#[tokio::test]
async fn a_fence_generation_beyond_i64_is_a_clear_error() {
    let q = SqliteQueue::open_in_memory().await.unwrap();
    let err = q.fence("lib", u64::MAX).await.unwrap_err();
    assert!(err.to_string().contains("fence generation"), "{err}");
    let mut j = job("a");
    j.fence = Some(("lib".into(), u64::MAX));
    let err = q.enqueue(vec![j]).await.unwrap_err();
    assert!(err.to_string().contains("job 0 of the batch"), "{err}");
}
