//! `MemCatalog` and `MemLedger` pass the catalog and ledger suites.

use std::sync::Arc;

use kiln_core::catalog::Catalog;
use kiln_core::ledger::RunLedger;
use kiln_core::time::SharedClock;
use kiln_testkit::mem::catalog::MemCatalog;
use kiln_testkit::mem::ledger::MemLedger;

async fn catalog(clock: SharedClock) -> Arc<dyn Catalog> {
    Arc::new(MemCatalog::new().with_clock(clock))
}

async fn ledger(clock: SharedClock) -> Arc<dyn RunLedger> {
    Arc::new(MemLedger::new().with_clock(clock))
}

mod catalog_suite {
    kiln_testkit::catalog_tests!(super::catalog);
}

mod ledger_suite {
    kiln_testkit::ledger_tests!(super::ledger);
}
