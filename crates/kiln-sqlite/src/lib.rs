//! kiln-sqlite: the embedded backends of kiln's three traits on SQLite (sqlx, WAL mode,
//! embedded migrations): [`SqliteCatalog`], [`SqliteQueue`],
//! [`SqliteRenderCache`].
//!
//! Each backend lives in its own database file with its own migrations, so that the
//! queue's write load never waits on the catalog's or the cache's writer.

mod catalog;
mod db;
mod manifest_codec;
mod queue;
mod render_cache;

pub use catalog::SqliteCatalog;
pub use queue::SqliteQueue;
pub use render_cache::SqliteRenderCache;
