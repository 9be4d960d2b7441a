//! kiln-postgres's integration tests against the PostgreSQL at `TEST_POSTGRES_URL` (skipped
//! without it): the conformance suites, plus what is PostgreSQL's own (schemas, connect
//! errors, LISTEN/NOTIFY); and the S3-compatible server at `TEST_S3_ENDPOINT`.

mod connect;
mod notify;
mod s3;
mod segments;

use std::sync::Arc;

use kiln_core::catalog::Catalog;
use kiln_core::ledger::RunLedger;
use kiln_core::queue::JobQueue;
use kiln_core::render_cache::RenderCache;
use kiln_core::time::SharedClock;
use kiln_postgres::{PgCatalog, PgDb, PgQueue, PgRenderCache};

/// The catalog suite, each test on a fresh schema.
mod catalog_suite {
    kiln_testkit::catalog_tests!({
        // A block, not an async block: a missing server returns from the test (skipped).
        let url = kiln_testkit::skip_unless_env!("TEST_POSTGRES_URL");
        move |clock| crate::catalog(url, clock)
    });
}

/// The ledger suite, each test on a fresh schema.
mod ledger_suite {
    kiln_testkit::ledger_tests!({
        let url = kiln_testkit::skip_unless_env!("TEST_POSTGRES_URL");
        move |clock| crate::ledger(url, clock)
    });
}

/// The job-queue suite, each test on a fresh schema and the suite's clock.
mod queue_suite {
    kiln_testkit::job_queue_tests!(clock => {
        let url = kiln_testkit::skip_unless_env!("TEST_POSTGRES_URL");
        crate::queue(url, clock)
    });
}

/// The render-cache suite, each test on a fresh schema and the suite's clock.
mod render_cache_suite {
    kiln_testkit::render_cache_tests!(clock => {
        let url = kiln_testkit::skip_unless_env!("TEST_POSTGRES_URL");
        crate::render_cache(url, clock)
    });
}

pub(crate) async fn catalog(url: String, clock: SharedClock) -> Arc<dyn Catalog> {
    Arc::new(PgCatalog::with_clock(fresh_db(&url).await, clock))
}

pub(crate) async fn ledger(url: String, clock: SharedClock) -> Arc<dyn RunLedger> {
    Arc::new(PgCatalog::with_clock(fresh_db(&url).await, clock).ledger())
}

pub(crate) async fn queue(url: String, clock: SharedClock) -> Arc<dyn JobQueue> {
    Arc::new(PgQueue::new(fresh_db(&url).await).with_clock(clock))
}

/// A schema name no other test uses: every setup gets its own tables, so tests run in
/// parallel and none deletes another's rows.
pub(crate) fn random_schema() -> String {
    format!("kiln_test_{:016x}", rand::random::<u64>())
}

/// A fresh migrated schema on the test server.
pub(crate) async fn fresh_db(url: &str) -> PgDb {
    PgDb::connect(url, Some(&random_schema()))
        .await
        .expect("connecting to TEST_POSTGRES_URL")
}

pub(crate) async fn render_cache(url: String, clock: SharedClock) -> Arc<dyn RenderCache> {
    Arc::new(PgRenderCache::new(fresh_db(&url).await).with_clock(clock))
}
