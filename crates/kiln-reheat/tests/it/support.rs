//! Test harness: backends, a library config for the test site, an in-process worker, and
//! bounded polling.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_core::backoff::Backoff;
use kiln_core::catalog::{Catalog, RunState};
use kiln_core::ids::RunId;
use kiln_core::queue::JobQueue;
use kiln_core::render_cache::RenderCache;
use kiln_reheat::config::{LibraryConfig, PruneConfig, RendererConfig, SourceConfig};
use kiln_reheat::metrics::Metrics;
use kiln_reheat::{Libraries, Reheat, RunStatus, Worker, WorkerOptions};
use kiln_sqlite::{SqliteCatalog, SqliteQueue, SqliteRenderCache};
use tokio::task::JoinHandle;

use crate::mem::{MemCache, MemCatalog, MemQueue};
use crate::site::Site;

/// The three backends.
pub(crate) struct Backends {
    pub(crate) catalog: Arc<dyn Catalog>,
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) cache: Arc<dyn RenderCache>,
    _dir: Option<tempfile::TempDir>,
}

impl Backends {
    pub(crate) fn from_parts(
        catalog: Arc<dyn Catalog>,
        queue: Arc<dyn JobQueue>,
        cache: Arc<dyn RenderCache>,
    ) -> Backends {
        Backends {
            catalog,
            queue,
            cache,
            _dir: None,
        }
    }

    /// The SQLite backends, each in its own file of a fresh directory.
    pub(crate) async fn sqlite() -> Backends {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        Backends {
            catalog: Arc::new(SqliteCatalog::open(&p.join("catalog.db")).await.unwrap()),
            queue: Arc::new(SqliteQueue::open(&p.join("queue.db")).await.unwrap()),
            cache: Arc::new(SqliteRenderCache::open(&p.join("cache.db")).await.unwrap()),
            _dir: Some(dir),
        }
    }

    pub(crate) fn mem() -> Backends {
        Backends {
            catalog: Arc::new(MemCatalog::default()),
            queue: Arc::new(MemQueue::default()),
            cache: Arc::new(MemCache::default()),
            _dir: None,
        }
    }
}

/// A declarative library over the test site.
pub(crate) fn http_lib(name: &str, site: &Site) -> LibraryConfig {
    LibraryConfig {
        name: name.into(),
        source: SourceConfig::Http(site.listing_url()),
        renderer: RendererConfig::Http(site.render_url()),
        page_size: 10,
        prune: PruneConfig::OnComplete,
        max_attempts: 3,
        render_through: false,
        timeout: "5s".into(),
        content_type: None,
        max_pages: 100_000,
        max_render_bytes: 8 * 1024 * 1024,
    }
}

/// Fast retries, so dead letters come quickly.
pub(crate) fn test_worker_options() -> WorkerOptions {
    WorkerOptions {
        concurrency: 16,
        producer_concurrency: 2,
        batch: 64,
        lanes: 2,
        visibility: Duration::from_secs(5),
        backoff: Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_millis(20),
        },
        shutdown_grace: Duration::from_secs(2),
        purge_interval: Duration::from_millis(200),
        liveness: Duration::from_secs(2),
        put_budget: 64 * 1024 * 1024,
    }
}

/// A reheat service with one in-process worker.
pub(crate) struct Harness {
    pub(crate) reheat: Reheat,
    pub(crate) metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<kiln_core::Result<()>>>,
    pub(crate) backends: Backends,
}

impl Harness {
    pub(crate) fn new(backends: Backends, configs: &[LibraryConfig]) -> Harness {
        let libs = Libraries::from_configs(configs, backends.catalog.clone()).unwrap();
        Self::with_libraries(backends, libs)
    }

    pub(crate) fn with_libraries(backends: Backends, libs: Libraries) -> Harness {
        Self::with_options(backends, libs, test_worker_options())
    }

    pub(crate) fn with_options(
        backends: Backends,
        libs: Libraries,
        opts: WorkerOptions,
    ) -> Harness {
        let reheat = Reheat::new(
            backends.catalog.clone(),
            backends.queue.clone(),
            backends.cache.clone(),
            libs,
        );
        let worker = Worker::new(reheat.clone(), opts);
        let metrics = worker.metrics();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            worker
                .run(async {
                    let _ = rx.await;
                })
                .await
        });
        Harness {
            reheat,
            metrics,
            stop: Some(tx),
            task: Some(task),
            backends,
        }
    }

    /// Waits (at most 30 s) until the run is no longer running.
    pub(crate) async fn wait(&self, run: RunId) -> RunStatus {
        let reheat = self.reheat.clone();
        poll_until("run to finish", Duration::from_secs(30), || {
            let reheat = reheat.clone();
            async move {
                let s = reheat.status(run).await.unwrap();
                (s.run.state != RunState::Running).then_some(s)
            }
        })
        .await
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// Polls `f` every 10 ms until it yields a value; panics naming `what` after `limit`.
pub(crate) async fn poll_until<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
