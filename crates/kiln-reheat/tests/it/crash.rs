//! kill -9 of a worker mid-run: the run still completes, every item is rendered at least
//! once and none is lost; a producer job redelivered after the kill creates nothing twice,
//! so the run's counters are exact; and the dead worker's leases come back within seconds
//! (its liveness lapses), not after the visibility timeout. The worker is this test binary
//! run again as a child process (`worker_process_entry`), over SQLite files that both
//! processes open.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_core::ids::LibraryName;
use kiln_core::ledger::RunState;
use kiln_core::time::SystemClock;
use kiln_reheat::{Libraries, Reheat, StartOptions, Worker, WorkerOptions};
use kiln_sqlite::DataDir;

use crate::site::{Site, items};
use crate::support::{Backends, Harness, poll_until};

const CHILD_DIR: &str = "KILN_REHEAT_TEST_CHILD_DIR";
const CHILD_SITE: &str = "KILN_REHEAT_TEST_CHILD_SITE";
const CHILD_VISIBILITY: &str = "KILN_REHEAT_TEST_CHILD_VISIBILITY_S";

fn library_config(listing: &str, render: &str) -> kiln_reheat::LibraryConfig {
    kiln_reheat::LibraryConfig {
        name: "guides".into(),
        source: kiln_reheat::config::SourceConfig::Http(listing.into()),
        renderer: kiln_reheat::config::RendererConfig::Http(render.into()),
        page_size: std::num::NonZeroU32::new(25).unwrap(),
        prune: kiln_reheat::config::PruneConfig::OnComplete,
        max_attempts: std::num::NonZeroU32::new(10).unwrap(),
        render_through: false,
        timeout: "30s".into(),
        content_type: None,
        max_pages: None,
        max_idle_pages: std::num::NonZeroU64::new(100).unwrap(),
        max_render_bytes: std::num::NonZeroU64::new(8 * 1024 * 1024).unwrap(),
        first_page: 0,
        failure_ttl: "30s".into(),
        webhook: None,
        schedule: None,
        limits: Default::default(),
    }
}

async fn sqlite_backends(dir: &Path) -> Backends {
    let catalog = DataDir::new(dir).catalog().await.unwrap();
    Backends::from_parts(
        Arc::new(catalog.ledger()),
        Arc::new(catalog),
        Arc::new(DataDir::new(dir).queue().await.unwrap()),
        Arc::new(DataDir::new(dir).render_cache().await.unwrap()),
    )
}

/// The reheat service over `b`, on the wall clock (both processes share the SQLite files).
fn service(b: &Backends, libs: Libraries) -> Reheat {
    Reheat::new(
        b.ledger.clone(),
        b.queue.clone(),
        b.cache.clone(),
        libs,
        SystemClock::shared(),
    )
}

/// The child worker: runs only when the crash test spawns this binary with its variables
/// set (otherwise it returns at once), and works until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_process_entry() {
    let (Ok(dir), Ok(site)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_SITE)) else {
        return;
    };
    let b = sqlite_backends(Path::new(&dir)).await;
    let cfg = library_config(&format!("{site}/items"), &format!("{site}/render"));
    let libs = Libraries::from_configs(&[cfg], b.catalog.clone()).unwrap();
    let reheat = service(&b, libs);
    let visibility = std::env::var(CHILD_VISIBILITY)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let worker = Worker::new(
        reheat,
        WorkerOptions {
            visibility: Duration::from_secs(visibility),
            liveness: Duration::from_secs(1),
            // One lane: each batch leases the next page's producer with the renders of the
            // page before it (a page's renders are enqueued just before its next producer,
            // so a second, idle lane could take them alone), and the batch held at the gate
            // when the child is killed holds a producer that has enqueued its jobs.
            lanes: std::num::NonZeroUsize::new(1).unwrap(),
            ..crate::support::test_worker_options()
        },
    );
    worker.run(std::future::pending()).await.unwrap();
}

/// Starts a run of `n` items (25 per page) and a child worker with `visibility`, and
/// kills the child (SIGKILL) midway: 60 renders answered and more held at the gate, so
/// its batches hold renders and the producers leased with them, unacked.
async fn kill_a_worker_midway(n: usize, visibility: u64) -> Killed {
    let site = Site::start(items(n, "g")).await;
    site.with(|s| s.hold_after = Some(60));
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://{}", site.addr);
    // The parent starts the run; it runs no worker until the child is dead.
    let b = sqlite_backends(dir.path()).await;
    let cfg = library_config(&site.listing_url(), &site.render_url());
    let libs = Libraries::from_configs(std::slice::from_ref(&cfg), b.catalog.clone()).unwrap();
    let starter = service(&b, libs);
    let run = starter
        .start("guides", StartOptions::default())
        .await
        .unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash::worker_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .env(CHILD_SITE, &base)
        .env(CHILD_VISIBILITY, visibility.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let s2 = site.clone();
    poll_until("the child to be midway", Duration::from_secs(60), || {
        let s2 = s2.clone();
        async move {
            s2.with(|s| (s.renders.values().sum::<u32>() >= 60 && s.waiting > 0).then_some(()))
        }
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_at = Instant::now();
    let mid = starter.status(run.id).await.unwrap();
    assert_eq!(mid.run.state, RunState::Running);
    assert!(mid.tally.pending() > 0, "{:?}", mid.tally);
    site.with(|s| s.hold_after = None);
    site.gate.send_replace(true);
    Killed {
        site,
        backends: b,
        cfg,
        run,
        killed_at,
        _dir: dir,
    }
}

struct Killed {
    site: Site,
    backends: Backends,
    cfg: kiln_reheat::LibraryConfig,
    run: kiln_core::ledger::Run,
    killed_at: Instant,
    _dir: tempfile::TempDir,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_nothing() {
    let n = 300;
    let k = kill_a_worker_midway(n, 2).await;
    let (site, run) = (k.site.clone(), k.run.clone());
    // Another worker takes over and the dead one's jobs come back.
    let h = Harness::new(k.backends, &[k.cfg]);
    let s = h.wait(run.id).await;
    assert_eq!(s.run.state, RunState::Complete, "{:?}", s.tally);
    assert_eq!((s.tally.pending(), s.tally.dead), (0, 0), "{:?}", s.tally);
    let keys = h
        .reheat
        .cache()
        .keys(&LibraryName::new("guides").unwrap())
        .await
        .unwrap();
    assert_eq!(keys.len(), n);
    assert!(keys.iter().all(|k| k.1 == run.generation));
    let renders = site.with(|s| s.renders.clone());
    for i in items(n, "g") {
        assert!(
            renders.get(&i.key).copied().unwrap_or(0) >= 1,
            "{} never rendered",
            i.key
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_producer_creates_nothing_twice_and_its_leases_come_back_in_seconds() {
    // 12 pages of 25: exactly 1 new-build + 12 producers + 300 renders, however often a
    // producer runs. The child's visibility timeout is 120 s: only its lapsed liveness can
    // bring its jobs back within the bound below.
    let (n, pages) = (300, 12);
    let k = kill_a_worker_midway(n, 120).await;
    let (site, run, killed_at) = (k.site.clone(), k.run.clone(), k.killed_at);
    let h = Harness::new(k.backends, &[k.cfg]);
    let s = h.wait(run.id).await;
    let took = killed_at.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "the dead worker's leases came back after {took:?}: the visibility timeout, not liveness"
    );
    assert_eq!(s.run.state, RunState::Complete, "{:?}", s.tally);
    let jobs = 1 + pages + n as u64;
    assert_eq!(
        (
            s.tally.enqueued,
            s.tally.done,
            s.tally.dead,
            s.tally.dropped
        ),
        (jobs, jobs, 0, 0),
        "{:?}",
        s.tally
    );
    // The scenario happened: a page was listed again by a redelivered producer.
    let listed = site.with(|s| s.pages.clone());
    let mut distinct = listed.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len() as u64, pages, "{listed:?}");
    assert!(
        listed.len() > distinct.len(),
        "no producer was redelivered: {listed:?}"
    );
    let keys = h
        .reheat
        .cache()
        .keys(&LibraryName::new("guides").unwrap())
        .await
        .unwrap();
    assert_eq!(keys.len(), n);
    h.stop().await;
}
