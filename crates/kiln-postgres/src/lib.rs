//! kiln-postgres: the Catalog, RunLedger, JobQueue and RenderCache traits on PostgreSQL, for
//! a fleet.
//!
//! All four share one [`PgDb`]: a pool on one schema, migrated at connect. The queue leases
//! with `FOR UPDATE SKIP LOCKED` and wakes idle workers with LISTEN/NOTIFY; the catalog
//! notifies on every publish ([`PgCatalog::subscribe_versions`]). Times are the clients'
//! wall clocks (milliseconds, or an injected clock), so the hosts of a fleet must keep their
//! clocks in sync.

mod catalog;
mod db;
mod error;
mod ledger;
mod notify;
mod queue;
mod render_cache;

pub use catalog::PgCatalog;
pub use db::{PgConfig, PgDb};
pub use ledger::PgLedger;
pub use queue::PgQueue;
pub use render_cache::PgRenderCache;
