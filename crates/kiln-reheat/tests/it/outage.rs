//! Backends that fail for a while (a database restarting, a network cut): a waiter keeps
//! waiting through refusals, a batch that could not be settled gives its jobs and their
//! throttle slots back at once rather than after the visibility timeout (also after a
//! real cut of PostgreSQL, through a proxy), and a stats write that failed is written
//! again, so the run's counts are exact.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kiln_core::ledger::RunState;
use kiln_reheat::config::LimitsConfig;
use kiln_reheat::{Libraries, StartOptions, WaitEvent, WaitOptions, WorkerOptions};

use kiln_testkit::proxy::Proxy;

use crate::faulty::{Faults, wrap};
use crate::site::{Site, items};
use crate::support::{Backends, Harness, http_lib, poll_until, test_worker_options};

each_backend!(a_waiter_rides_out_a_backend_that_refuses_for_a_while);
async fn a_waiter_rides_out_a_backend_that_refuses_for_a_while(b: Backends) {
    let faults = Arc::new(Faults::default());
    let site = Site::start(items(30, "g")).await;
    // Renders wait at the gate, so the run is under way when the backends go away.
    site.gate.send_replace(false);
    let h = Harness::new(wrap(b, &faults), &[http_lib("guides", &site)]);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    poll_until("renders at the gate", Duration::from_secs(30), || async {
        (site.with(|s| s.waiting) > 0).then_some(())
    })
    .await;
    faults.refuse(true);
    let retries = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let waiter = tokio::spawn({
        let (reheat, retries) = (h.reheat.clone(), retries.clone());
        async move {
            reheat
                .wait(run.id, &WaitOptions::default(), |e| {
                    if let WaitEvent::Retrying { error, .. } = e {
                        assert!(error.is_transient(), "{error}");
                        retries.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .await
        }
    });
    // The waiter has met refusals and tried again, more than once, and still waits.
    poll_until(
        "the waiter to try again",
        Duration::from_secs(30),
        || async { (retries.load(Ordering::SeqCst) >= 3 || waiter.is_finished()).then_some(()) },
    )
    .await;
    assert!(
        !waiter.is_finished(),
        "the waiter gave up during the outage"
    );
    faults.refuse(false);
    site.gate.send_replace(true);
    let s = tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .expect("the waiter ended")
        .unwrap()
        .unwrap_or_else(|e| panic!("the waiter gave up on a backend that came back: {e}"));
    assert_eq!(s.run.state, RunState::Complete, "{:?}", s.tally);
    // new-build, three pages, 30 renders.
    assert_eq!((s.tally.enqueued, s.tally.done), (34, 34), "{:?}", s.tally);
    h.stop().await;
}

each_backend!(a_batch_that_fails_to_settle_gives_its_jobs_back_at_once);
async fn a_batch_that_fails_to_settle_gives_its_jobs_back_at_once(b: Backends) {
    let faults = Arc::new(Faults::default());
    let site = Site::start(items(20, "g")).await;
    let mut cfg = http_lib("guides", &site);
    // Four renders at once: a failed batch that kept its slots would hold the rest back.
    cfg.limits = LimitsConfig {
        concurrency: std::num::NonZeroU32::new(4),
        ..LimitsConfig::default()
    };
    let b = wrap(b, &faults);
    let libs = Libraries::from_configs(&[cfg], b.catalog.clone()).unwrap();
    // Leases that nobody gives back come back after two minutes; the run must end long
    // before that.
    let visibility = Duration::from_secs(120);
    let opts = WorkerOptions {
        visibility,
        ..test_worker_options()
    };
    let h = Harness::with_options(b, libs, opts);
    faults.fail_next("ack", 1);
    let started = Instant::now();
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let reheat = h.reheat.clone();
    let s = poll_until(
        "the run to end before the failed batch's leases expire",
        visibility / 2,
        || {
            let reheat = reheat.clone();
            async move {
                let s = reheat.status(run.id).await.unwrap();
                (s.run.state != RunState::Running).then_some(s)
            }
        },
    )
    .await;
    eprintln!(
        "a run whose first ack failed ended after {:?} (visibility {visibility:?})",
        started.elapsed()
    );
    assert_eq!(faults.refused(), 1, "the one ack failed");
    assert_eq!(s.run.state, RunState::Complete, "{:?}", s.tally);
    assert_eq!((s.tally.enqueued, s.tally.done), (23, 23), "{:?}", s.tally);
    // The failed batch's renders were given back and rendered again, once.
    assert!(site.with(|s| s.renders.len() == 20 && s.renders.values().all(|n| *n <= 2)));
    h.stop().await;
}

each_backend!(a_stats_write_that_fails_once_is_still_counted);
async fn a_stats_write_that_fails_once_is_still_counted(b: Backends) {
    let faults = Arc::new(Faults::default());
    let site = Site::start(items(40, "g")).await;
    let h = Harness::new(wrap(b, &faults), &[http_lib("guides", &site)]);
    faults.fail_next("add_run_stats", 1);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    let s = h.wait(run.id).await;
    assert_eq!(s.run.state, RunState::Complete, "{:?}", s.tally);
    assert_eq!(faults.refused(), 1, "one stats write failed");
    assert_eq!(site.total_renders(), 40);
    assert_eq!(s.stats.renders(), 40, "{:?}", s.stats);
    h.stop().await;
}

/// `postgres://user@host:port/db` -> (host:port, the same URL through `via`).
fn through(url: &str, via: Option<std::net::SocketAddr>) -> (std::net::SocketAddr, String) {
    let (head, rest) = url
        .split_once('@')
        .expect("a TEST_POSTGRES_URL with user@host");
    let (hostport, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let target: std::net::SocketAddr = hostport
        .parse()
        .expect("TEST_POSTGRES_URL with an IP:port host");
    (target, format!("{head}@{}/{tail}", via.unwrap_or(target)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_postgres_cut_a_failed_batchs_jobs_come_back_within_seconds() {
    let Some(url) = kiln_testkit::services::service_env("TEST_POSTGRES_URL") else {
        return;
    };
    let (target, _) = through(&url, None);
    let proxy = Proxy::start(target).unwrap();
    let (_, proxied) = through(&url, Some(proxy.addr()));
    let b = Backends::postgres_at(&proxied).await;
    let site = Site::start(items(20, "g")).await;
    site.gate.send_replace(false);
    let libs = Libraries::from_configs(&[http_lib("guides", &site)], b.catalog.clone()).unwrap();
    // Nothing but the visibility timeout (a minute) would bring the batch's jobs back: one
    // worker, whose liveness outlasts the cut.
    let visibility = Duration::from_secs(60);
    let opts = WorkerOptions {
        visibility,
        liveness: visibility,
        ..test_worker_options()
    };
    let h = Harness::with_options(b, libs, opts);
    let run = h
        .reheat
        .start("guides", StartOptions::default())
        .await
        .unwrap();
    poll_until("renders at the gate", Duration::from_secs(30), || async {
        (site.with(|s| s.waiting) >= 10).then_some(())
    })
    .await;
    // PostgreSQL goes away while the batch renders; its results cannot be stored.
    proxy.cut();
    let held = site.with(|s| s.waiting);
    site.gate.send_replace(true);
    poll_until("the held renders", Duration::from_secs(30), || async {
        (site.total_renders() >= held).then_some(())
    })
    .await;
    // The outage goes on a while after the batch failed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.restore();
    let back = Instant::now();
    let reheat = h.reheat.clone();
    let s = poll_until(
        "the run to end well before the failed batch's leases expire",
        visibility / 2,
        || {
            let reheat = reheat.clone();
            async move {
                let s = reheat.status(run.id).await.ok()?;
                (s.run.state != RunState::Running).then_some(s)
            }
        },
    )
    .await;
    eprintln!(
        "after the cut ended, the run ended in {:?} (visibility {visibility:?})",
        back.elapsed()
    );
    assert_eq!(s.run.state, RunState::Complete, "{:?}", s.tally);
    assert_eq!((s.tally.enqueued, s.tally.done), (23, 23), "{:?}", s.tally);
    h.stop().await;
}
