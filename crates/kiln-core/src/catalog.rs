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

/// Who holds a lease, as [`Catalog::lock_holder`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// The owner string the holder took it with.
    pub owner: String,
    /// When the lease ends unless it is renewed.
    pub expires_at: Timestamp,
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
///   or is unlocked; the same owner may renew it. `lock_holder` names the live holder;
///   `take_over` moves a lease from a named holder (known to be gone) to a new owner, and
///   fails if someone else holds it by then.
/// - **Claims and marks** (the gc protocol): `claim_chunks` and `gc_mark` are serialised
///   against each other. A chunk with a live claim or referenced by a version is never
///   marked; `claim_chunks` reports the chunks among its ids that carry a live mark (so the
///   claimer knows their objects may be deleted and must be stored again once the mark is
///   gone). `gc_mark` forgets the memo entries of the chunks it marks in the same
///   transaction. Claims and marks expire after their ttl unless renewed.
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

    /// The live holder of lease `name`, if any (an expired lease has none).
    async fn lock_holder(&self, name: &str) -> Result<Option<LockHolder>>;

    /// Moves lease `name` from `from` (a holder known to be gone) to `owner` for `ttl`;
    /// false if `from` no longer holds it.
    async fn take_over(&self, name: &str, from: &str, owner: &str, ttl: Duration) -> Result<bool>;

    /// Records that sync `owner` is about to reference `ids` (whose objects it found in the
    /// store or will upload), live for `ttl` from now; with no ids, renews every claim of
    /// `owner` instead. Returns the ids among `ids` that a gc has marked for deletion.
    async fn claim_chunks(
        &self,
        owner: &str,
        ids: &[ChunkId],
        ttl: Duration,
    ) -> Result<HashSet<ChunkId>>;

    /// Drops every claim of `owner` (after its version is published, or it gave up).
    async fn release_claims(&self, owner: &str) -> Result<()>;

    /// Marks for deletion by gc `owner` those of `candidates` that no version references and
    /// no live claim holds, forgets their memo entries, and renews `owner`'s earlier marks;
    /// every mark lives `ttl` from now. Returns the newly marked ids and the number of
    /// `owner`'s marks that are live after the call (earlier ones included).
    async fn gc_mark(
        &self,
        owner: &str,
        candidates: &[ChunkId],
        ttl: Duration,
    ) -> Result<(Vec<ChunkId>, u64)>;

    /// Drops every mark of gc `owner` (its deletions are done).
    async fn gc_unmark(&self, owner: &str) -> Result<()>;

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
