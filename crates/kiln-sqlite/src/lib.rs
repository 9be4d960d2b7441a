//! kiln-sqlite: the embedded backends of kiln's traits on SQLite (sqlx, WAL mode, embedded
//! migrations): [`SqliteCatalog`] with its [`SqliteLedger`], [`SqliteQueue`] and
//! [`SqliteRenderCache`].
//!
//! Each backend lives in its own database file with its own migrations, named by
//! [`DataDir`] (`<data-dir>/catalog.db`, `queue.db`, `render-cache.db`), so that the queue's
//! write load never waits on the catalog's or the cache's writer. Each opens one writer
//! connection (SQLite has one writer at a time; one connection per process avoids
//! `SQLITE_BUSY` storms) and a pool of readers that WAL lets run beside it. Several
//! processes may open the same files.
//!
//! Batches cost one statement, not one per item: a statement's result rows are the costly
//! part through sqlx, so batch reads come back packed in one row (JSON or text) and batch
//! writes go in as multi-row `VALUES` or one JSON array parameter.

mod catalog;
mod data_dir;
mod db;
mod ledger;
mod queue;
mod render_cache;

pub use catalog::SqliteCatalog;
pub use data_dir::DataDir;
pub use ledger::SqliteLedger;
pub use queue::SqliteQueue;
pub use render_cache::SqliteRenderCache;
