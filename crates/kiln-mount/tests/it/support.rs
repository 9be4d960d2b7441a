//! Shared set-up: a store that counts GETs, an in-memory catalog, a cache and a mount.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kiln_core::catalog::Catalog;
use kiln_core::ids::{CourseId, VersionId};
use kiln_load::{ChunkCache, LoadConfig};
use kiln_mount::{MountOptions, Mounted};
use kiln_testkit::chunks::TestChunk;
use kiln_testkit::mem::catalog::MemCatalog;
use kiln_testkit::store::CountingStore;
use object_store::local::LocalFileSystem;

/// Whether this machine can mount; `false` skips (or, with `KILN_REQUIRE_FUSE=1`, fails).
pub(crate) fn fuse_or_skip(test: &str) -> bool {
    match kiln_mount::check_fuse(Path::new("/dev/fuse")) {
        Ok(()) => true,
        Err(e) if std::env::var("KILN_REQUIRE_FUSE").as_deref() == Ok("1") => {
            panic!("{test}: FUSE is required (KILN_REQUIRE_FUSE=1): {e}")
        }
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            false
        }
    }
}

/// A store, a catalog, a cache and a mountpoint in one temporary directory.
pub(crate) struct Env {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) store: Arc<CountingStore>,
    pub(crate) catalog: Arc<MemCatalog>,
    pub(crate) course: CourseId,
    pub(crate) cache: ChunkCache,
}

impl Env {
    pub(crate) async fn new() -> Env {
        Env::with_budget(1 << 30).await
    }

    pub(crate) async fn with_budget(budget: u64) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let store_dir = tmp.path().join("store");
        std::fs::create_dir_all(&store_dir).unwrap();
        let store = CountingStore::new(Arc::new(
            LocalFileSystem::new_with_prefix(&store_dir).unwrap(),
        ));
        let catalog = Arc::new(MemCatalog::new());
        let config = LoadConfig {
            budget_bytes: budget,
            refresh_interval: Duration::ZERO,
            retry_base: Duration::from_millis(1),
            retries: 1,
            ..LoadConfig::new(tmp.path().join("cache"))
        };
        let cache = ChunkCache::open(
            config,
            Arc::new(kiln_publish::CatalogView::new(
                catalog.clone(),
                store.clone(),
            )),
            store.clone(),
        )
        .await
        .unwrap();
        Env {
            tmp,
            store,
            catalog,
            course: CourseId::new("demo").unwrap(),
            cache,
        }
    }

    pub(crate) fn mountpoint(&self) -> PathBuf {
        self.tmp.path().join("mnt")
    }

    /// Mounts every course, refreshed every 50 ms.
    pub(crate) async fn mount(&self) -> Mounted {
        self.mount_with(|_| {}).await
    }

    /// Mounts with options changed by `f`.
    pub(crate) async fn mount_with(&self, f: impl FnOnce(&mut MountOptions)) -> Mounted {
        let mut options = MountOptions::new(self.mountpoint());
        options.refresh = Duration::from_millis(50);
        f(&mut options);
        kiln_mount::mount(self.cache.clone(), options)
            .await
            .unwrap()
    }

    /// Uploads the chunks, stores their tables of contents and publishes them as `version`.
    pub(crate) async fn publish(&self, version: &str, chunks: &[&TestChunk]) -> VersionId {
        for c in chunks {
            c.put(&*self.store).await.unwrap();
        }
        self.publish_catalog_only(version, chunks).await
    }

    /// Publishes without uploading (the store lacks the bundles).
    pub(crate) async fn publish_catalog_only(
        &self,
        version: &str,
        chunks: &[&TestChunk],
    ) -> VersionId {
        let tocs: Vec<_> = chunks.iter().map(|c| (c.entry.id, c.toc.clone())).collect();
        self.catalog.put_tocs(&tocs).await.unwrap();
        let v = VersionId::new(version).unwrap();
        self.catalog.set_current(
            &self.course,
            &v,
            chunks.iter().map(|c| c.entry.clone()).collect(),
        );
        v
    }

    /// `<mount>/<course>/<rel>`.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.mountpoint().join(self.course.as_str()).join(rel)
    }
}

/// Runs blocking file system calls off the runtime's threads (the mount serves them from
/// this process).
pub(crate) async fn fs<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Polls `f` every 20 ms until it holds, for at most `secs` seconds.
pub(crate) async fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
