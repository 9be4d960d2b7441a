//! Fixtures: a catalog and a store, publishing as a sync does, read through either view.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use kiln_core::catalog::{Catalog, NewVersion};
use kiln_core::content::ContentView;
use kiln_core::ids::{ChunkId, CourseId, VersionId};
use kiln_core::manifest::Manifest;
use kiln_core::toc::Toc;
use kiln_publish::{CatalogView, PublishedView, ViewOptions, writer};
use kiln_testkit::content::ContentFixture;
use object_store::ObjectStore;

/// The owner string of the fixtures' head writes.
pub(crate) const OWNER: &str = "test-publisher";

/// Stores the tables of contents, as a sync does before it publishes.
pub(crate) async fn put_tocs(catalog: &dyn Catalog, tocs: HashMap<ChunkId, Toc>) {
    let tocs: Vec<(ChunkId, Toc)> = tocs.into_iter().collect();
    catalog.put_tocs(&tocs).await.unwrap();
}

/// The catalog read through [`CatalogView`].
pub(crate) struct CatalogFixture {
    pub(crate) catalog: Arc<dyn Catalog>,
    pub(crate) view: Arc<CatalogView>,
    _dir: tempfile::TempDir,
}

impl CatalogFixture {
    /// `dir` holds the store and the catalog's files, and lives as long as the fixture.
    pub(crate) fn new(
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn ObjectStore>,
        dir: tempfile::TempDir,
    ) -> Arc<Self> {
        let view = Arc::new(CatalogView::new(catalog.clone(), store));
        Arc::new(CatalogFixture {
            catalog,
            view,
            _dir: dir,
        })
    }
}

#[async_trait]
impl ContentFixture for CatalogFixture {
    fn view(&self) -> Arc<dyn ContentView> {
        self.view.clone()
    }

    async fn publish(
        &self,
        course: &CourseId,
        version: &VersionId,
        manifest: Manifest,
        tocs: HashMap<ChunkId, Toc>,
    ) {
        put_tocs(&*self.catalog, tocs).await;
        self.catalog
            .publish(NewVersion {
                course: course.clone(),
                version: version.clone(),
                manifest,
            })
            .await
            .unwrap();
    }
}

/// The published view of a store, written by [`writer::publish`].
pub(crate) struct PublishedFixture {
    pub(crate) catalog: Arc<dyn Catalog>,
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) view: PublishedView,
    _dirs: (tempfile::TempDir, Option<tempfile::TempDir>),
}

impl PublishedFixture {
    /// `store_dir`, if any, holds the store and lives as long as the fixture.
    pub(crate) async fn new(
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn ObjectStore>,
        store_dir: Option<tempfile::TempDir>,
    ) -> Arc<Self> {
        let dir = tempfile::tempdir().unwrap();
        let view = PublishedView::open(
            store.clone(),
            ViewOptions {
                cache_dir: Some(dir.path().join("published")),
                ..ViewOptions::default()
            },
        )
        .await
        .unwrap();
        Arc::new(PublishedFixture {
            catalog,
            store,
            view,
            _dirs: (dir, store_dir),
        })
    }
}

#[async_trait]
impl ContentFixture for PublishedFixture {
    fn view(&self) -> Arc<dyn ContentView> {
        Arc::new(self.view.clone())
    }

    async fn publish(
        &self,
        course: &CourseId,
        version: &VersionId,
        manifest: Manifest,
        tocs: HashMap<ChunkId, Toc>,
    ) {
        put_tocs(&*self.catalog, tocs).await;
        let new = NewVersion {
            course: course.clone(),
            version: version.clone(),
            manifest,
        };
        writer::publish(&*self.catalog, &self.store, OWNER, new, None)
            .await
            .unwrap();
        self.view.refresh().await.unwrap();
    }
}

/// A local directory store in a temporary directory.
pub(crate) fn local_store() -> (Arc<dyn ObjectStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    (Arc::new(store), dir)
}

/// The S3 store the environment names, under a fresh prefix; `None` without one.
pub(crate) fn s3_store() -> Option<Arc<dyn ObjectStore>> {
    let endpoint = kiln_testkit::services::service_env("TEST_S3_ENDPOINT")?;
    let bucket = std::env::var("TEST_S3_BUCKET").unwrap_or_else(|_| "kiln-test".into());
    let s3 = object_store::aws::AmazonS3Builder::from_env()
        .with_endpoint(&endpoint)
        .with_bucket_name(bucket)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap();
    let prefix = format!("kiln-publish-test/{}-{}", std::process::id(), rand_suffix());
    Some(Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)))
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    nanos * 1000 + N.fetch_add(1, Ordering::Relaxed)
}
