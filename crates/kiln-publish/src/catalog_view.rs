//! [`CatalogView`]: the [`ContentView`] answered by the catalog itself, for a process that
//! has it (the sync host, a one-process embedder, tests of the cache). A chunk whose table
//! of contents the catalog lacks (a version synced before kiln kept them) has it read back
//! from its bundle once and stored.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use kiln_core::Result;
use kiln_core::catalog::{Catalog, VersionInfo};
use kiln_core::content::ContentView;
use kiln_core::ids::{ChunkId, CourseId, VersionId};
use kiln_core::manifest::Manifest;
use kiln_core::toc::Toc;
use object_store::ObjectStore;

/// The catalog as a [`ContentView`].
#[derive(Debug, Clone)]
pub struct CatalogView {
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
}

impl CatalogView {
    /// A view of `catalog`; `store` holds the bundles tables of contents are read from.
    pub fn new(catalog: Arc<dyn Catalog>, store: Arc<dyn ObjectStore>) -> Self {
        CatalogView { catalog, store }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }
}

impl fmt::Display for CatalogView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.catalog, f)
    }
}

#[async_trait]
impl ContentView for CatalogView {
    async fn current(&self, course: &CourseId) -> Result<Option<VersionInfo>> {
        self.catalog.current(course).await
    }

    async fn courses(&self) -> Result<Vec<CourseId>> {
        self.catalog.courses().await
    }

    async fn versions(&self, course: &CourseId) -> Result<Vec<VersionInfo>> {
        self.catalog.versions(course).await
    }

    async fn manifest(&self, course: &CourseId, version: &VersionId) -> Result<Manifest> {
        self.catalog.manifest(course, version).await
    }

    async fn tocs(&self, course: &CourseId, version: &VersionId) -> Result<HashMap<ChunkId, Toc>> {
        let manifest = self.catalog.manifest(course, version).await?;
        let ids: Vec<ChunkId> = manifest.entries().iter().map(|e| e.id).collect();
        crate::writer::tocs_of(&*self.catalog, &*self.store, ids).await
    }
}
