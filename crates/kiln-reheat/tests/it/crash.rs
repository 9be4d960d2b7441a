//! kill -9 of a worker mid-run: the run still completes, every item is rendered at least
//! once and none is lost. The worker is this test binary run again as a child process
//! (`worker_process_entry`), over SQLite files that both processes open.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kiln_core::catalog::RunState;
use kiln_core::ids::LibraryName;
use kiln_reheat::{Libraries, Reheat, StartOptions, Worker, WorkerOptions};
use kiln_sqlite::{SqliteCatalog, SqliteQueue, SqliteRenderCache};

use crate::site::{Site, items};
use crate::support::{Backends, Harness, poll_until};

const CHILD_DIR: &str = "KILN_REHEAT_TEST_CHILD_DIR";
const CHILD_SITE: &str = "KILN_REHEAT_TEST_CHILD_SITE";

fn library_config(listing: &str, render: &str) -> kiln_reheat::LibraryConfig {
    kiln_reheat::LibraryConfig {
        name: "guides".into(),
        source: kiln_reheat::config::SourceConfig::Http(listing.into()),
        renderer: kiln_reheat::config::RendererConfig::Http(render.into()),
        page_size: 25,
        prune: kiln_reheat::config::PruneConfig::OnComplete,
        max_attempts: 10,
        render_through: false,
        timeout: "30s".into(),
        content_type: None,
    }
}

async fn sqlite_backends(dir: &Path) -> Backends {
    Backends::from_parts(
        Arc::new(SqliteCatalog::open(&dir.join("catalog.db")).await.unwrap()),
        Arc::new(SqliteQueue::open(&dir.join("queue.db")).await.unwrap()),
        Arc::new(
            SqliteRenderCache::open(&dir.join("cache.db"))
                .await
                .unwrap(),
        ),
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
    let reheat = Reheat::new(b.catalog.clone(), b.queue.clone(), b.cache.clone(), libs);
    let worker = Worker::new(
        reheat,
        WorkerOptions {
            visibility: Duration::from_secs(2),
            ..crate::support::test_worker_options()
        },
    );
    worker.run(std::future::pending()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_nothing() {
    let n = 300;
    let site = Site::start(items(n, "g")).await;
    site.with(|s| s.hold_after = Some(60));
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://{}", site.addr);
    // The parent starts the run; it runs no worker until the child is dead.
    let b = sqlite_backends(dir.path()).await;
    let cfg = library_config(&site.listing_url(), &site.render_url());
    let libs = Libraries::from_configs(std::slice::from_ref(&cfg), b.catalog.clone()).unwrap();
    let starter = Reheat::new(b.catalog.clone(), b.queue.clone(), b.cache.clone(), libs);
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
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Midway: 60 renders answered and more held at the gate, leased by the child.
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
    let mid = starter.status(run.id).await.unwrap();
    assert_eq!(mid.run.state, RunState::Running);
    assert!(mid.tally.pending() > 0, "{:?}", mid.tally);

    // Another worker takes over: the dead one's leases expire and its jobs come back.
    site.with(|s| s.hold_after = None);
    site.gate.send_replace(true);
    let h = Harness::new(b, &[cfg]);
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
