//! Test fixtures: a temporary catalog and store, copies of the example course in git, and
//! reading bundles back from the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_chunk::bundle::{BundleEntry, read_bundle};
use kiln_chunk::key::object_key;
use kiln_core::Result;
use kiln_core::catalog::Catalog;
use kiln_core::ids::{ChunkKind, CourseId};
use kiln_core::manifest::{Manifest, ManifestEntry};
use kiln_sync::{NoProgress, SyncOptions, SyncReport};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;

/// A catalog and a store in a temporary directory.
pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) catalog: Arc<dyn Catalog>,
    pub(crate) store: Arc<dyn ObjectStore>,
}

pub(crate) async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let catalog = kiln_sqlite::DataDir::new(dir.path())
        .catalog()
        .await
        .unwrap();
    std::fs::create_dir_all(dir.path().join("objects")).unwrap();
    let store = LocalFileSystem::new_with_prefix(dir.path().join("objects")).unwrap();
    Env {
        dir,
        catalog: Arc::new(catalog),
        store: Arc::new(store),
    }
}

impl Env {
    /// Syncs `source` as `course` with `tweak` applied to the options.
    pub(crate) async fn sync_with(
        &self,
        source: &Path,
        course: &str,
        tweak: impl FnOnce(&mut SyncOptions),
    ) -> Result<SyncReport> {
        let mut opts = SyncOptions::new(source);
        opts.course = Some(CourseId::new(course).unwrap());
        tweak(&mut opts);
        kiln_sync::sync(
            opts,
            self.catalog.clone(),
            self.store.clone(),
            Arc::new(NoProgress),
        )
        .await
    }

    pub(crate) async fn sync(&self, source: &Path, course: &str) -> Result<SyncReport> {
        self.sync_with(source, course, |_| {}).await
    }

    pub(crate) async fn manifest(&self, course: &str) -> Manifest {
        let c = CourseId::new(course).unwrap();
        let v = self
            .catalog
            .current(&c)
            .await
            .unwrap()
            .expect("a current version");
        self.catalog.manifest(&c, &v.version).await.unwrap()
    }

    /// The entries of a chunk's bundle, read back from the store.
    pub(crate) async fn bundle(&self, e: &ManifestEntry) -> Vec<(String, BundleEntry)> {
        let key = object_key(&e.id);
        let bytes = self.store.get(&key).await.unwrap().bytes().await.unwrap();
        read_bundle(&bytes, e.id).unwrap()
    }

    /// Chunk objects in the store (the published view's objects beside them not counted).
    pub(crate) async fn object_count(&self) -> usize {
        use futures::TryStreamExt;
        let prefix = kiln_chunk::key::prefix();
        let all: Vec<_> = self.store.list(Some(&prefix)).try_collect().await.unwrap();
        all.len()
    }

    pub(crate) async fn has_current(&self, course: &str) -> bool {
        let c = CourseId::new(course).unwrap();
        self.catalog.current(&c).await.unwrap().is_some()
    }
}

/// The example course at the repository root.
pub(crate) fn example_course() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/course")
}

/// Copies a directory tree (files, symlinks, modes).
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ft = entry.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A git work tree at `dir/name` holding a copy of the example course, committed.
pub(crate) fn example_repo(dir: &Path, name: &str) -> (PathBuf, String) {
    let repo = dir.join(name);
    copy_tree(&example_course(), &repo);
    let head = kiln_testkit::course_gen::commit_all(&repo, "example course").unwrap();
    (repo, head)
}

pub(crate) fn entry<'a>(m: &'a Manifest, kind: ChunkKind, name: &str) -> &'a ManifestEntry {
    m.entries()
        .iter()
        .find(|e| e.kind == kind && e.name == name)
        .unwrap_or_else(|| panic!("no chunk {kind}:{name} in {:?}", m.entries()))
}

pub(crate) fn paths(entries: &[(String, BundleEntry)]) -> Vec<&str> {
    entries.iter().map(|(p, _)| p.as_str()).collect()
}
