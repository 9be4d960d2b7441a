//! kiln-sync: turns a course (a git revision or a directory) into content-addressed chunk
//! bundles in an object store, and publishes the version's manifest in the catalog.
//!
//! The entry point is [`sync`]. A sync takes the course's lock, resolves the version (and
//! returns early if it is current already), walks the source with the layout rules, bundles
//! the chunks the catalog's memo does not know on a few threads while uploading the missing
//! ones with bounded parallelism, and publishes only after every upload succeeded. Against
//! the previously synced commit of the same repository it walks only the changed subtrees.

pub mod gc;
pub mod verify;

mod build;
mod claims;
mod holder;
mod lock;
mod memo;
mod pipeline;
mod source;
mod upload;
mod walk;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kiln_core::Result;
use kiln_core::catalog::{Catalog, PublishOutcome};
use kiln_core::ids::{CourseId, VersionId};
use kiln_core::layout::{Layout, PrairieLearnOptions};
use object_store::ObjectStore;

/// What to sync, and how.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// A git repository (bare or not) or a plain directory.
    pub source: PathBuf,
    /// The course id; default: the source directory's name, sanitised (`.git` dropped).
    pub course: Option<CourseId>,
    /// The git revision to sync (default `HEAD`); only for a repository.
    pub rev: Option<String>,
    /// The course's directory inside the source, if it is not the root.
    pub subdir: Option<String>,
    /// The largest file accepted, in bytes.
    pub max_file_size: u64,
    /// How many uploads run at once.
    pub upload_concurrency: NonZeroUsize,
    /// How many threads bundle chunks (`None`: one per core).
    pub bundle_threads: Option<NonZeroUsize>,
    /// How long to wait for another sync of the same course to finish.
    pub lock_wait: Duration,
    /// The layout rules.
    pub layout: Layout,
}

impl SyncOptions {
    /// Defaults for `source`: HEAD, the PrairieLearn layout, 100 MiB files, 16 uploads.
    pub fn new(source: impl Into<PathBuf>) -> Self {
        SyncOptions {
            source: source.into(),
            course: None,
            rev: None,
            subdir: None,
            max_file_size: 100 << 20,
            upload_concurrency: NonZeroUsize::new(16).expect("not zero"),
            bundle_threads: None,
            lock_wait: Duration::from_secs(600),
            layout: Layout::prairielearn(&PrairieLearnOptions::default()),
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone)]
pub struct SyncReport {
    /// The course.
    pub course: CourseId,
    /// The synced version.
    pub version: VersionId,
    /// Chunks in the version's manifest.
    pub chunks_total: usize,
    /// Chunks whose bundles this sync uploaded (the rest were in the store already).
    pub chunks_uploaded: usize,
    /// Compressed bytes uploaded.
    pub bytes_uploaded: u64,
    /// Wall-clock time of the sync.
    pub elapsed: Duration,
    /// Whether the version was new, reinstated, or current already.
    pub outcome: PublishOutcome,
    /// What the publish wrote to the published view (segments, root, pointer, head): it
    /// grows with the change, not the course.
    pub published: kiln_publish::writer::Written,
    /// The sequence number of the published head naming the version (0 for a rebuild).
    pub head_seq: u64,
    /// What synced but deserves a look, one line each, e.g. a submodule (not shipped) or a
    /// Git LFS pointer file (shipped as the pointer). Each was also logged with `tracing`.
    pub warnings: Vec<String>,
}

/// Progress of the bundling and upload phase, in chunks (the CLI shows a bar).
pub trait Progress: Send + Sync {
    /// The phase starts with `total` chunks to bundle and upload.
    fn start(&self, total: u64);
    /// `n` more chunks are done.
    fn inc(&self, n: u64);
    /// The phase is over.
    fn finish(&self);
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _total: u64) {}
    fn inc(&self, _n: u64) {}
    fn finish(&self) {}
}

/// Syncs one course version: see the crate docs. Bad input fails with a one-line
/// [`kiln_core::Error::InvalidInput`] (or `NotFound` for a path, revision or subdirectory)
/// naming the culprit, and nothing is published.
pub async fn sync(
    opts: SyncOptions,
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    progress: Arc<dyn Progress>,
) -> Result<SyncReport> {
    pipeline::run(opts, catalog, store, progress).await
}
