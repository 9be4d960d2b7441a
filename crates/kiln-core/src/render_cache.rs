//! The RenderCache trait: render results by (library, key), with generations and pruning.

use std::fmt::{Debug, Display};

use async_trait::async_trait;
use bytes::Bytes;

use crate::Result;
use crate::ids::LibraryName;
use crate::time::Timestamp;

/// A render result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The key within the library.
    pub key: String,
    /// The rendered bytes.
    pub bytes: Bytes,
    /// Their media type.
    pub content_type: String,
    /// The generation of the build that rendered them.
    pub generation: u64,
    /// The producer group that wrote the entry.
    pub group: String,
    /// When it was written.
    pub written_at: Timestamp,
    /// When it expires, if it is marked to.
    pub expires_at: Option<Timestamp>,
}

/// What a put did to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored (created or replaced an entry of the same or an older generation).
    Written,
    /// Refused: the stored entry, or the library's floor, is of a newer generation.
    Stale,
}

/// Which entries a prune applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneScope {
    /// Only this producer group, or the whole library.
    pub group: Option<String>,
    /// Only entries of a generation below this.
    pub below_generation: u64,
}

/// Render results by (library, key).
///
/// # Contract
/// - **Round trip**: `get` after `put` returns identical bytes, content type, generation and
///   group; a put clears any expiry mark (`expires_at` as given, normally `None`).
/// - **Generations**: a put never replaces an entry of a newer generation, and never writes
///   below the library's floor ([`RenderCache::set_floor`]); such puts are `Stale`.
/// - **No miss window**: an entry stays readable until a put replaces it or a prune removes
///   it; marking it to expire does not hide it before its time.
/// - **Expiry**: an entry whose `expires_at` has passed is never returned.
/// - **Pruning**: `mark_expiring` and `sweep` touch exactly the entries of the scope (group
///   and generation) and return how many.
/// - **Not found**: `get` of a missing key is `Ok(None)`.
/// - **Atomicity**: each entry of a batch put is checked and written atomically.
#[async_trait]
pub trait RenderCache: Send + Sync + Debug + Display + 'static {
    /// The entry, unless missing or expired.
    async fn get(&self, library: &LibraryName, key: &str) -> Result<Option<CacheEntry>>;

    /// Writes entries; one outcome per entry, in order.
    async fn put(&self, library: &LibraryName, entries: Vec<CacheEntry>)
    -> Result<Vec<PutOutcome>>;

    /// Marks the scope's entries to expire at `at` (the seed's option b).
    async fn mark_expiring(
        &self,
        library: &LibraryName,
        scope: &PruneScope,
        at: Timestamp,
    ) -> Result<u64>;

    /// Deletes the scope's entries (sweep-on-complete).
    async fn sweep(&self, library: &LibraryName, scope: &PruneScope) -> Result<u64>;

    /// Deletes entries that expired before `now`; backends with native expiry return 0.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64>;

    /// Refuses puts below `generation` from now on (a newer build fenced the older ones).
    async fn set_floor(&self, library: &LibraryName, generation: u64) -> Result<()>;

    /// Every live (key, generation, group) of a library, sorted by key.
    async fn keys(&self, library: &LibraryName) -> Result<Vec<(String, u64, String)>>;
}
