//! The catalog and ledger conformance suites on SQLite files and in memory, and file
//! handling.

use std::sync::Arc;

use kiln_core::catalog::{Catalog, NewVersion};
use kiln_core::ledger::{BeginRun, RunLedger};
use kiln_core::time::SharedClock;
use kiln_sqlite::SqliteCatalog;
use kiln_testkit::catalog::{course, library, manifest, version};

/// A fresh catalog in its own temporary directory (kept alive for the test's duration by
/// leaking the guard: the OS temp cleaner removes it), on `clock`.
async fn open_file(clock: SharedClock) -> SqliteCatalog {
    let dir = tempfile::tempdir().unwrap().keep();
    SqliteCatalog::open(&dir.join("nested/catalog.sqlite"))
        .await
        .unwrap()
        .with_clock(clock)
}

async fn open_memory(clock: SharedClock) -> SqliteCatalog {
    SqliteCatalog::open_in_memory()
        .await
        .unwrap()
        .with_clock(clock)
}

/// The catalog and ledger suites over the catalogs that `$open` makes (a ledger is its
/// catalog's).
macro_rules! suites {
    ($open:ident) => {
        async fn catalog(clock: SharedClock) -> Arc<dyn Catalog> {
            Arc::new($open(clock).await)
        }

        async fn ledger(clock: SharedClock) -> Arc<dyn RunLedger> {
            Arc::new($open(clock).await.ledger())
        }

        mod catalog_suite {
            kiln_testkit::catalog_tests!(super::catalog);
        }

        mod ledger_suite {
            kiln_testkit::ledger_tests!(super::ledger);
        }
    };
}

mod file {
    use super::*;
    suites!(open_file);
}

mod memory {
    use super::*;
    suites!(open_memory);
}

#[tokio::test]
async fn reopening_keeps_the_data_and_display_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.sqlite");
    let c = SqliteCatalog::open(&path).await.unwrap();
    assert_eq!(c.to_string(), format!("Sqlite({})", path.display()));
    let m = manifest(5, 1);
    c.publish(NewVersion {
        course: course("demo"),
        version: version("v1"),
        manifest: m.clone(),
    })
    .await
    .unwrap();
    drop(c);
    let c = SqliteCatalog::open(&path).await.unwrap();
    assert_eq!(
        c.manifest(&course("demo"), &version("v1")).await.unwrap(),
        m
    );
}

#[tokio::test]
async fn the_ledger_shares_the_catalogs_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.sqlite");
    let c = SqliteCatalog::open(&path).await.unwrap();
    let ledger = c.ledger();
    assert_eq!(ledger.to_string(), format!("Sqlite({})", path.display()));
    let opts = BeginRun {
        build: "b1".into(),
        group: None,
    };
    let run = ledger.begin_run(&library("guides"), opts).await.unwrap();
    drop((c, ledger));
    let again = SqliteCatalog::open(&path).await.unwrap().ledger();
    assert_eq!(again.run(run.id).await.unwrap(), run);
}

#[tokio::test]
async fn a_path_that_cannot_be_created_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = SqliteCatalog::open(&file.join("catalog.sqlite"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("plain-file"), "{err}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.sqlite");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    assert!(SqliteCatalog::open(&path).await.is_err());
}

/// Many openers of one fresh file at once (separate processes in real life: `kiln serve`
/// and `kiln worker` started together) all succeed, and the schema is migrated once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_opens_of_a_fresh_file_all_succeed() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("fresh{round}/catalog.db"));
        let opens = (0..8).map(|_| {
            let path = path.clone();
            tokio::spawn(async move { SqliteCatalog::open(&path).await.map(|_| ()) })
        });
        for r in futures::future::join_all(opens).await {
            r.unwrap()
                .unwrap_or_else(|e| panic!("round {round}: a concurrent first open failed: {e}"));
        }
        let c = SqliteCatalog::open(&path).await.unwrap();
        assert!(c.courses().await.unwrap().is_empty());
    }
}
