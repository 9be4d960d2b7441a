//! Shared set-up: a temporary store, an in-memory catalog, and a cache over them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kiln_core::ids::{ChunkRef, CourseId, VersionId};
use kiln_load::{ChunkCache, LoadConfig};
use kiln_testkit::chunks::TestChunk;
use kiln_testkit::mem::catalog::MemCatalog;
use kiln_testkit::store::CountingStore;
use object_store::local::LocalFileSystem;

/// A store, a catalog and a cache directory in one temporary directory.
pub(crate) struct Env {
    pub(crate) dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub(crate) store: Arc<CountingStore>,
    pub(crate) catalog: Arc<MemCatalog>,
    pub(crate) course: CourseId,
}

impl Env {
    pub(crate) fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let mut env = Env::at(tmp.path());
        env._tmp = Some(tmp);
        env
    }

    /// An environment in `dir`, which it does not remove (a child process's view of its
    /// parent's directory).
    pub(crate) fn at(dir: &Path) -> Env {
        let store_dir = dir.join("store");
        std::fs::create_dir_all(&store_dir).unwrap();
        let local = LocalFileSystem::new_with_prefix(&store_dir).unwrap();
        Env {
            store: CountingStore::new(Arc::new(local)),
            catalog: Arc::new(MemCatalog::new()),
            course: CourseId::new("demo").unwrap(),
            dir: dir.to_path_buf(),
            _tmp: None,
        }
    }

    pub(crate) fn cache_dir(&self) -> PathBuf {
        self.dir.join("cache")
    }

    pub(crate) fn config(&self) -> LoadConfig {
        LoadConfig {
            budget_bytes: 1 << 30,
            refresh_interval: Duration::ZERO,
            retry_base: Duration::from_millis(1),
            ..LoadConfig::new(self.cache_dir())
        }
    }

    pub(crate) async fn open(&self, config: LoadConfig) -> ChunkCache {
        ChunkCache::open(
            config,
            Arc::new(kiln_publish::CatalogView::new(
                self.catalog.clone(),
                self.store.clone(),
            )),
            self.store.clone(),
        )
        .await
        .unwrap()
    }

    pub(crate) async fn cache(&self) -> ChunkCache {
        self.open(self.config()).await
    }

    /// Publishes the chunks as `version` in the catalog only (uploaded elsewhere).
    pub(crate) fn publish_catalog_only(&self, version: &str, chunks: &[&TestChunk]) -> VersionId {
        let v = VersionId::new(version).unwrap();
        self.catalog.set_current(
            &self.course,
            &v,
            chunks.iter().map(|c| c.entry.clone()).collect(),
        );
        v
    }

    /// Uploads the chunks and publishes them as `version`, now current.
    pub(crate) async fn publish(&self, version: &str, chunks: &[&TestChunk]) -> VersionId {
        for c in chunks {
            c.put(&*self.store).await.unwrap();
        }
        let v = VersionId::new(version).unwrap();
        self.catalog.set_current(
            &self.course,
            &v,
            chunks.iter().map(|c| c.entry.clone()).collect(),
        );
        v
    }

    pub(crate) fn chunk_dir(&self, c: &TestChunk) -> PathBuf {
        self.cache_dir()
            .join("courses")
            .join(self.course.as_str())
            .join(".chunks")
            .join(c.entry.id.to_hex())
    }
}

pub(crate) fn r(c: &TestChunk) -> ChunkRef {
    c.entry.chunk_ref()
}

/// The sum of the file sizes below `dir` (0 if it does not exist).
pub(crate) fn du(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for e in rd {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            total += du(&e.path());
        } else if ft.is_file() {
            total += e.metadata().unwrap().len();
        }
    }
    total
}
