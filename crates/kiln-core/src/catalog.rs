//! The Catalog trait: the content catalog of courses, versions, manifests, the sync memo,
//! locks, and the gc protocol's claims and marks. Builds and runs are the
//! [`RunLedger`](crate::ledger::RunLedger)'s.

use std::collections::{HashMap, HashSet};
use std::fmt::{Debug, Display};
use std::time::Duration;

use async_trait::async_trait;

use crate::Result;
use crate::ids::{ChunkId, CourseId, VersionId};
use crate::manifest::Manifest;
use crate::time::Timestamp;
use crate::toc::Toc;

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

/// The content catalog: the truth about which versions exist and what they hold, plus the
/// sync memo, named leases and the gc protocol's claims and marks.
///
/// Times (version creation, lease, claim and mark expiry) are read from the backend's
/// injected [`Clock`](crate::time::Clock), never from the database server.
///
/// # Contract
/// - **Atomicity**: `publish` writes the version, its manifest and the current pointer in one
///   transaction; a reader sees all of it or none.
/// - **Not found**: `versions` and `manifest` return [`crate::Error::NotFound`] for an
///   unknown course or version; `current` returns `Ok(None)` for an unknown course.
/// - **Ordering**: `versions` lists newest first; `courses` and `currents` list sorted by course.
/// - **Idempotency**: publishing the current version again is `Unchanged`; publishing an
///   older version again makes it current (`Reinstated`) and keeps its first manifest;
///   `memo_put` of an existing key keeps one entry (the newest); `put_tocs` of a chunk that
///   has a table of contents keeps the first (a TOC is a function of the chunk's bytes).
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

    /// The current version of every course that has one, sorted by course, in one read:
    /// what the published head object is derived from.
    async fn currents(&self) -> Result<Vec<VersionInfo>>;

    /// A version's manifest.
    async fn manifest(&self, course: &CourseId, version: &VersionId) -> Result<Manifest>;

    /// Looks up remembered chunks by source key (e.g. `git:<tree id>`).
    async fn memo_get(&self, keys: &[String]) -> Result<HashMap<String, MemoEntry>>;

    /// Remembers chunks by source key.
    async fn memo_put(&self, entries: &[(String, MemoEntry)]) -> Result<()>;

    /// Stores chunks' tables of contents (see [`crate::toc`]).
    async fn put_tocs(&self, tocs: &[(ChunkId, Toc)]) -> Result<()>;

    /// The tables of contents of those of `ids` that have one.
    async fn tocs(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, Toc>>;

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
}
