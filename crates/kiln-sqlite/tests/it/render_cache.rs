//! The render-cache conformance suite on SQLite files and in memory, and file handling.

use std::sync::Arc;

use kiln_core::render_cache::RenderCache;
use kiln_core::time::SharedClock;
use kiln_sqlite::SqliteRenderCache;
use kiln_testkit::catalog::library;
use kiln_testkit::render_cache::entry;

/// A fresh cache on `clock` in its own temporary directory (kept for the test's duration
/// by leaking the guard: the OS temp cleaner removes it).
async fn setup(clock: SharedClock) -> Arc<dyn RenderCache> {
    let dir = tempfile::tempdir().unwrap().keep();
    let c = SqliteRenderCache::open(&dir.join("cache.sqlite"))
        .await
        .unwrap();
    Arc::new(c.with_clock(clock))
}

mod file {
    kiln_testkit::render_cache_tests!(clock => super::setup(clock));
}

mod memory {
    use super::*;

    async fn setup(clock: SharedClock) -> Arc<dyn RenderCache> {
        let c = SqliteRenderCache::open_in_memory().await.unwrap();
        Arc::new(c.with_clock(clock))
    }

    kiln_testkit::render_cache_tests!(clock => setup(clock));
}

#[tokio::test]
async fn entries_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.sqlite");
    let c = SqliteRenderCache::open(&path).await.unwrap();
    assert_eq!(c.to_string(), format!("Sqlite({})", path.display()));
    let e = entry("k", b"v", 1, "g");
    c.put(&library("guides"), vec![e.clone()]).await.unwrap();
    drop(c);
    let c = SqliteRenderCache::open(&path).await.unwrap();
    assert_eq!(c.get(&library("guides"), "k").await.unwrap(), Some(e));
}

#[tokio::test]
async fn a_generation_beyond_i64_is_a_clear_error() {
    let c = SqliteRenderCache::open_in_memory().await.unwrap();
    let err = c
        .put(&library("guides"), vec![entry("k", b"v", u64::MAX, "g")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("\"k\""), "{err}");
    assert!(c.set_floor(&library("guides"), u64::MAX).await.is_err());
}
