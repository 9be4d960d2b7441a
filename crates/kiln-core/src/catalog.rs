//! The Catalog trait: courses, versions, manifests, the sync memo, locks, builds and runs.

use std::collections::{HashMap, HashSet};
use std::fmt::{Debug, Display};
use std::time::Duration;

use async_trait::async_trait;

use crate::Result;
use crate::ids::{ChunkId, CourseId, LibraryName, RunId, VersionId};
use crate::manifest::Manifest;
use crate::time::Timestamp;

/// One version of a course as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// The course.
    pub course: CourseId,
    /// The version id.
    pub version: VersionId,
    /// When it was first published.
    pub created_at: Timestamp,
    /// Whether it is the course's current version.
    pub current: bool,
}

/// A version to publish, with its whole manifest.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// The course (created on first publish).
    pub course: CourseId,
    /// The version id.
    pub version: VersionId,
    /// Every chunk of the version.
    pub manifest: Manifest,
}

/// What [`Catalog::publish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The version is new and now current.
    Published,
    /// The version existed already and is now current again (a roll-back).
    Reinstated,
    /// The version was current already; nothing changed.
    Unchanged,
}

/// A remembered chunk: the id and size a source tree bundled to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoEntry {
    /// The chunk id.
    pub id: ChunkId,
    /// The uncompressed bundle size.
    pub size: u64,
}

/// The state of a reheat run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Jobs are pending.
    Running,
    /// Every job is done (or dead); pruning has run.
    Complete,
    /// The run was stopped by an error of its own.
    Failed,
    /// A newer build of the library fenced it.
    Superseded,
}

impl RunState {
    /// The state's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Complete => "complete",
            RunState::Failed => "failed",
            RunState::Superseded => "superseded",
        }
    }

    /// Parses [`RunState::as_str`]'s output.
    pub fn parse(s: &str) -> Option<RunState> {
        [
            RunState::Running,
            RunState::Complete,
            RunState::Failed,
            RunState::Superseded,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// A reheat run: the reheat of one build of a library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The run's id.
    pub id: RunId,
    /// The library.
    pub library: LibraryName,
    /// The build's label (a commit hash, a course version, ...).
    pub build: String,
    /// The build's generation: strictly increasing per library.
    pub generation: u64,
    /// `Some(group)` for a run that rewrites one producer group only.
    pub group: Option<String>,
    /// The state.
    pub state: RunState,
    /// When the run started.
    pub created_at: Timestamp,
    /// When it left `Running`.
    pub finished_at: Option<Timestamp>,
}

/// Options of [`Catalog::begin_run`].
#[derive(Debug, Clone, Default)]
pub struct BeginRun {
    /// The build's label.
    pub build: String,
    /// Restrict the run to one producer group.
    pub group: Option<String>,
}

/// The catalog: the truth about which versions exist and what they hold, and about builds.
///
/// # Contract
/// - **Atomicity**: `publish` writes the version, its manifest and the current pointer in one
///   transaction; a reader sees all of it or none. `begin_run` assigns the generation and
///   supersedes older running library-wide runs in one transaction.
/// - **Not found**: `versions`, `manifest` and `run` return [`crate::Error::NotFound`] for an
///   unknown course, version or run; `current` returns `Ok(None)` for an unknown course.
/// - **Ordering**: `versions` lists newest first; generations increase strictly per library.
/// - **Idempotency**: publishing the current version again is `Unchanged`; publishing an
///   older version again makes it current (`Reinstated`) and keeps its first manifest;
///   `memo_put` of an existing key keeps one entry; `finish_run` only moves a running run.
/// - **Concurrency**: `try_lock` grants a named lease to one owner at a time until it expires
///   or is unlocked; the same owner may renew it.
#[async_trait]
pub trait Catalog: Send + Sync + Debug + Display + 'static {
    /// Publishes a version atomically and makes it current.
    async fn publish(&self, version: NewVersion) -> Result<PublishOutcome>;

    /// The current version of a course, if it has one.
    async fn current(&self, course: &CourseId) -> Result<Option<VersionInfo>>;

    /// Every version of a course, newest first.
    async fn versions(&self, course: &CourseId) -> Result<Vec<VersionInfo>>;

    /// Every course, sorted.
    async fn courses(&self) -> Result<Vec<CourseId>>;

    /// A version's manifest.
    async fn manifest(&self, course: &CourseId, version: &VersionId) -> Result<Manifest>;

    /// Looks up remembered chunks by source key (e.g. `git:<tree id>`).
    async fn memo_get(&self, keys: &[String]) -> Result<HashMap<String, MemoEntry>>;

    /// Remembers chunks by source key.
    async fn memo_put(&self, entries: &[(String, MemoEntry)]) -> Result<()>;

    /// Forgets every memo entry that points at one of `ids` (their objects are being deleted).
    async fn memo_forget(&self, ids: &[ChunkId]) -> Result<()>;

    /// Every chunk id that some version references.
    async fn referenced_chunks(&self) -> Result<HashSet<ChunkId>>;

    /// Takes or renews the lease `name` for `owner` for `ttl`; false if another owner holds it.
    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool>;

    /// Gives the lease back, if `owner` holds it.
    async fn unlock(&self, name: &str, owner: &str) -> Result<()>;

    /// Starts a run for a new build: the next generation of the library. A library-wide run
    /// marks every older running run of the library `Superseded`.
    async fn begin_run(&self, library: &LibraryName, opts: BeginRun) -> Result<Run>;

    /// A run by id.
    async fn run(&self, id: RunId) -> Result<Run>;

    /// The newest runs, optionally of one library, newest first.
    async fn runs(&self, library: Option<&LibraryName>, limit: usize) -> Result<Vec<Run>>;

    /// Moves a running run to `state`; false if it was not running.
    async fn finish_run(&self, id: RunId, state: RunState) -> Result<bool>;
}
