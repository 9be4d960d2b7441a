//! The data directory of the embedded backends: the one place that names their files.

use std::path::{Path, PathBuf};

use kiln_core::Result;

use crate::{SqliteCatalog, SqliteQueue, SqliteRenderCache};

/// A directory holding the embedded backends, one database file each (`catalog.db`,
/// `queue.db`, `render-cache.db`), so that the queue's write load never waits on the
/// catalog's writer. Each file is created and migrated on first open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data directory at `root` (nothing is opened yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The catalog's database file (the runs ledger lives in it too).
    pub fn catalog_path(&self) -> PathBuf {
        self.root.join("catalog.db")
    }

    /// The job queue's database file.
    pub fn queue_path(&self) -> PathBuf {
        self.root.join("queue.db")
    }

    /// The render cache's database file.
    pub fn render_cache_path(&self) -> PathBuf {
        self.root.join("render-cache.db")
    }

    /// Opens the catalog (its [`SqliteCatalog::ledger`] shares its connections).
    pub async fn catalog(&self) -> Result<SqliteCatalog> {
        SqliteCatalog::open(&self.catalog_path()).await
    }

    /// Opens the job queue.
    pub async fn queue(&self) -> Result<SqliteQueue> {
        SqliteQueue::open(&self.queue_path()).await
    }

    /// Opens the render cache.
    pub async fn render_cache(&self) -> Result<SqliteRenderCache> {
        SqliteRenderCache::open(&self.render_cache_path()).await
    }
}
