//! The worker runtime: heartbeats keep a long render's lease, and a graceful shutdown gives
//! unfinished leases back without spending an attempt.

use std::time::Duration;

use kiln_core::ledger::RunState;
use kiln_core::queue::LeaseOptions;
use kiln_reheat::{Libraries, StartOptions, WorkerOptions};

use crate::site::{Site, items};
use crate::support::{Backends, Harness, http_lib, poll_until, test_worker_options};

#[tokio::test]
async fn heartbeats_keep_a_render_longer_than_the_visibility_timeout_leased() {
    let site = Site::start(items(3, "g")).await;
    let b = Backends::mem();
    let libs = Libraries::from_configs(&[http_lib("guides", &site)], b.catalog.clone()).unwrap();
    let opts = WorkerOptions {
        visibility: Duration::from_millis(300),
        ..test_worker_options()
    };
    let h = Harness::with_options(b, libs, opts);
    site.gate.send_replace(false);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let s2 = site.clone();
    poll_until("renders held at the gate", Duration::from_secs(10), || {
        let s2 = s2.clone();
        async move { s2.with(|s| (s.waiting >= 3).then_some(())) }
    })
    .await;
    // Hold the renders for several visibility timeouts, checking that no job comes back.
    let q = h.reheat.queue().clone();
    // Render jobs are throttled by their library: a lease must name it to see them.
    let throttles = h.reheat.libraries().throttles();
    let deadline = std::time::Instant::now() + Duration::from_millis(1200);
    while std::time::Instant::now() < deadline {
        let stolen = q
            .lease(&LeaseOptions {
                max_jobs: std::num::NonZeroUsize::new(10).unwrap(),
                visibility: Duration::from_secs(60),
                worker: None,
                throttles: throttles.clone(),
            })
            .await
            .unwrap()
            .jobs;
        assert!(
            stolen.is_empty(),
            "a held job was delivered again: {stolen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    site.gate.send_replace(true);
    let s = h.wait(run.id).await;
    assert_eq!(s.run.state, RunState::Complete);
    assert_eq!(s.tally.done, 5);
    assert_eq!(h.metrics.snapshot().leases_lost, 0);
    assert!(site.with(|s| s.renders.values().all(|n| *n == 1)));
    h.stop().await;
}

#[tokio::test]
async fn shutdown_gives_unfinished_leases_back_without_spending_an_attempt() {
    let site = Site::start(items(4, "g")).await;
    let b = Backends::mem();
    let libs = Libraries::from_configs(&[http_lib("guides", &site)], b.catalog.clone()).unwrap();
    let opts = WorkerOptions {
        shutdown_grace: Duration::from_millis(100),
        visibility: Duration::from_secs(60),
        ..test_worker_options()
    };
    let h = Harness::with_options(b, libs, opts);
    site.gate.send_replace(false);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let s2 = site.clone();
    poll_until("renders held at the gate", Duration::from_secs(10), || {
        let s2 = s2.clone();
        async move { s2.with(|s| (s.waiting >= 4).then_some(())) }
    })
    .await;
    let q = h.reheat.queue().clone();
    let throttles = h.reheat.libraries().throttles();
    h.stop().await;
    // With a 60 s visibility, only a release makes the jobs ready again now.
    let back = q
        .lease(&LeaseOptions {
            max_jobs: std::num::NonZeroUsize::new(10).unwrap(),
            visibility: Duration::from_secs(60),
            worker: None,
            throttles,
        })
        .await
        .unwrap()
        .jobs;
    assert_eq!(back.len(), 4);
    assert!(back.iter().all(|j| j.attempt == 1), "{back:?}");
    assert_eq!(q.tally(run.id).await.unwrap().failed, 0);
}
