//! Test harness: backends, a library config for the test site, an in-process worker, and
//! bounded polling.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kiln_core::backoff::Backoff;
use kiln_core::catalog::Catalog;
use kiln_core::ids::RunId;
use kiln_core::ledger::{RunLedger, RunState};
use kiln_core::queue::JobQueue;
use kiln_core::render_cache::RenderCache;
use kiln_core::time::{SharedClock, SystemClock};
use kiln_reheat::config::{LibraryConfig, PruneConfig, RendererConfig, SourceConfig};
use kiln_reheat::metrics::Metrics;
use kiln_reheat::{Libraries, Reheat, RunStatus, Worker, WorkerOptions};
use kiln_sqlite::DataDir;
use kiln_testkit::mem::queue::MemQueue;
use kiln_testkit::mem::render_cache::MemCache;
use tokio::task::JoinHandle;

use kiln_testkit::mem::catalog::MemCatalog;
use kiln_testkit::mem::ledger::MemLedger;

use crate::site::Site;

/// The backends: the catalog (for course sources), the runs ledger, the queue and the cache.
pub(crate) struct Backends {
    pub(crate) ledger: Arc<dyn RunLedger>,
    pub(crate) catalog: Arc<dyn Catalog>,
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) cache: Arc<dyn RenderCache>,
    _dir: Option<tempfile::TempDir>,
}

impl Backends {
    pub(crate) fn from_parts(
        ledger: Arc<dyn RunLedger>,
        catalog: Arc<dyn Catalog>,
        queue: Arc<dyn JobQueue>,
        cache: Arc<dyn RenderCache>,
    ) -> Backends {
        Backends {
            ledger,
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
        let catalog = DataDir::new(p).catalog().await.unwrap();
        Backends {
            ledger: Arc::new(catalog.ledger()),
            catalog: Arc::new(catalog),
            queue: Arc::new(DataDir::new(p).queue().await.unwrap()),
            cache: Arc::new(DataDir::new(p).render_cache().await.unwrap()),
            _dir: Some(dir),
        }
    }

    /// The PostgreSQL backends, on a fresh schema of the server at `TEST_POSTGRES_URL`, or
    /// `None` (the test is skipped, saying so) without it.
    pub(crate) async fn postgres() -> Option<Backends> {
        let url = kiln_testkit::services::service_env("TEST_POSTGRES_URL")?;
        Some(Self::postgres_at(&url).await)
    }

    /// The PostgreSQL backends, on a fresh schema of the server at `url`.
    pub(crate) async fn postgres_at(url: &str) -> Backends {
        let schema = format!("kiln_test_{:016x}", rand::random::<u64>());
        let db = kiln_postgres::PgDb::connect(url, Some(&schema))
            .await
            .expect("connecting to TEST_POSTGRES_URL");
        let catalog = kiln_postgres::PgCatalog::new(db.clone());
        Backends {
            ledger: Arc::new(catalog.ledger()),
            catalog: Arc::new(catalog),
            queue: Arc::new(kiln_postgres::PgQueue::new(db.clone())),
            cache: Arc::new(kiln_postgres::PgRenderCache::new(db)),
            _dir: None,
        }
    }

    /// These backends, keeping alive what `other` kept (its data directory).
    pub(crate) fn keeping(mut self, other: Backends) -> Backends {
        self._dir = other._dir;
        self
    }

    pub(crate) fn mem() -> Backends {
        Backends {
            ledger: Arc::new(MemLedger::new()),
            catalog: Arc::new(MemCatalog::new()),
            queue: Arc::new(MemQueue::default()),
            cache: Arc::new(MemCache::default()),
            _dir: None,
        }
    }

    /// In-memory backends that all read the time from `clock`.
    pub(crate) fn mem_on(clock: kiln_core::time::SharedClock) -> Backends {
        Backends {
            ledger: Arc::new(MemLedger::new().with_clock(clock.clone())),
            catalog: Arc::new(MemCatalog::new().with_clock(clock.clone())),
            queue: Arc::new(MemQueue::default().with_clock(clock.clone())),
            cache: Arc::new(MemCache::default().with_clock(clock)),
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
        page_size: std::num::NonZeroU32::new(10).unwrap(),
        prune: PruneConfig::OnComplete,
        max_attempts: std::num::NonZeroU32::new(3).unwrap(),
        render_through: false,
        timeout: "5s".into(),
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

/// Fast retries, so dead letters come quickly.
pub(crate) fn test_worker_options() -> WorkerOptions {
    WorkerOptions {
        concurrency: std::num::NonZeroUsize::new(16).unwrap(),
        producer_concurrency: std::num::NonZeroUsize::new(2).unwrap(),
        batch: std::num::NonZeroUsize::new(64).unwrap(),
        lanes: std::num::NonZeroUsize::new(2).unwrap(),
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
        Self::with_clock(backends, libs, opts, SystemClock::shared())
    }

    /// A harness whose service and worker read the time from `clock`.
    pub(crate) fn with_clock(
        backends: Backends,
        libs: Libraries,
        opts: WorkerOptions,
        clock: SharedClock,
    ) -> Harness {
        let reheat = Reheat::new(
            backends.ledger.clone(),
            backends.queue.clone(),
            backends.cache.clone(),
            libs,
            clock,
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

/// Polls `f` every 10 ms until it yields a value; panics naming `what` after `limit` (of
/// tokio's time, so that under `tokio::time::pause()` the limit is virtual too).
pub(crate) async fn poll_until<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
