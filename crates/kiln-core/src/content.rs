//! The ContentView trait: what a server reads to serve a course (which version is current,
//! a version's manifest, its chunks' tables of contents), whoever answers it.
//!
//! Two kinds of answer exist (both in kiln-publish): the catalog itself (a sync host, tests,
//! an embedder with one process), and the objects a sync publishes into the object store
//! beside the chunks (every `kiln serve` and `kiln mount`), which cost the catalog nothing.

use std::collections::HashMap;
use std::fmt::{Debug, Display};

use async_trait::async_trait;

use crate::Result;
use crate::catalog::VersionInfo;
use crate::ids::{ChunkId, CourseId, VersionId};
use crate::manifest::Manifest;
use crate::toc::Toc;

/// The read path's view of the content catalog.
///
/// # Contract
/// - **Agreement**: every answer is one the catalog gave or gives: a version is current in
///   the view only once the catalog published it, and then its manifest and the tables of
///   contents of all its chunks can be read.
/// - **Not found**: `manifest`, `versions` and `tocs` return [`crate::Error::NotFound`] for
///   an unknown course or version; `current` returns `Ok(None)` for an unknown course.
/// - **Ordering**: `courses` lists sorted; `versions` lists every version once, the current
///   one marked, newest first as far as the view knows when each was published (the
///   catalog by publish order; the published view by when each version's pointer was
///   written, to the store's clock resolution).
/// - **Immutability**: a version's manifest and tables of contents never change, so callers
///   may cache them by (course, version) for as long as they like.
#[async_trait]
pub trait ContentView: Send + Sync + Debug + Display + 'static {
    /// The course's current version, if the course exists.
    async fn current(&self, course: &CourseId) -> Result<Option<VersionInfo>>;

    /// Every course, sorted.
    async fn courses(&self) -> Result<Vec<CourseId>>;

    /// Every version of a course, newest first.
    async fn versions(&self, course: &CourseId) -> Result<Vec<VersionInfo>>;

    /// A version's manifest.
    async fn manifest(&self, course: &CourseId, version: &VersionId) -> Result<Manifest>;

    /// The tables of contents of every chunk of a version.
    async fn tocs(&self, course: &CourseId, version: &VersionId) -> Result<HashMap<ChunkId, Toc>>;
}
