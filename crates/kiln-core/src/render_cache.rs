//! The RenderCache trait: render results by (library, key), with generations, pruning,
//! soft invalidation and a paginated listing.

use std::collections::BTreeMap;
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
    /// Named values stored beside the bytes (an asset list a renderer returns beside its
    /// HTML), returned as they were put.
    pub meta: Meta,
    /// Marked stale ([`RenderCache::mark_stale`]): still served while a re-render
    /// replaces it.
    pub stale: bool,
}

/// An entry's metadata: names (lowercase HTTP header names without their `x-kiln-meta-`
/// prefix) to values.
pub type Meta = BTreeMap<String, String>;

/// The stored form of `meta`: a JSON object, or `None` when it is empty (the backends'
/// one encoding).
pub fn encode_meta(meta: &Meta) -> Option<String> {
    (!meta.is_empty()).then(|| serde_json::to_string(meta).expect("a map of strings encodes"))
}

/// `meta` from its stored form; the error says what is wrong with it.
pub fn decode_meta(stored: Option<&str>) -> std::result::Result<Meta, String> {
    match stored {
        None | Some("") => Ok(Meta::new()),
        Some(s) => serde_json::from_str(s).map_err(|e| format!("metadata {s:?}: {e}")),
    }
}

/// One entry in a listing: everything but the bytes and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key.
    pub key: String,
    /// The generation that wrote it.
    pub generation: u64,
    /// Its producer group.
    pub group: String,
    /// The length of its bytes.
    pub size: u64,
    /// When it was written.
    pub written_at: Timestamp,
    /// When it expires, if it is marked to.
    pub expires_at: Option<Timestamp>,
    /// Whether it is marked stale.
    pub stale: bool,
}

/// Which live entries a listing returns: keys after `after` (exclusive), in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only this producer group.
    pub group: Option<String>,
    /// Only keys that start with this.
    pub prefix: Option<String>,
    /// The cursor: the `next` of the previous page.
    pub after: Option<String>,
    /// At most this many items.
    pub limit: usize,
}

/// A page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPage {
    /// The items, sorted by key.
    pub items: Vec<KeyInfo>,
    /// The cursor of the next page, `None` at the end. A page may hold fewer than `limit`
    /// items (even none) and still have a next one: only `None` ends a listing.
    pub next: Option<String>,
}

impl KeyPage {
    /// The page of a query for `limit` items that read up to `limit + 1` (the one past the
    /// limit says there is a next page, whose cursor is the last item kept).
    pub fn from_overfetch(mut items: Vec<KeyInfo>, limit: usize) -> KeyPage {
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more {
            items.last().map(|i| i.key.clone())
        } else {
            None
        };
        KeyPage { items, next }
    }
}

/// Which entries [`RenderCache::mark_stale`] marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaleScope {
    /// These keys.
    Keys(Vec<String>),
    /// One producer group.
    Group(String),
    /// The whole library.
    Library,
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
/// - **Round trip**: `get` after `put` returns identical bytes, content type, generation,
///   group and metadata; a put replaces any expiry or stale mark (`expires_at` and `stale`
///   as given, normally `None` and `false`).
/// - **Generations**: a put never replaces an entry of a newer generation, and never writes
///   below the library's floor ([`RenderCache::set_floor`]); such puts are `Stale`.
/// - **No miss window**: an entry stays readable until a put replaces it or a prune removes
///   it; marking it to expire does not hide it before its time.
/// - **Expiry**: an entry whose `expires_at` has passed is never returned.
/// - **Pruning**: `mark_expiring`, `clear_marks` and `sweep` touch exactly the entries of
///   the scope (group and generation) and return how many.
/// - **Stale marks**: `mark_stale` sets `stale` on exactly the scope's live entries and
///   returns how many; a marked entry reads as before, with `stale` set.
/// - **Delete**: `delete` removes one entry and says whether a live one was there.
/// - **Listing**: `list` pages through the live entries in key order, with the query's
///   group and prefix; following `next` visits each live key once. `group_counts` counts
///   the live entries per group (on a backend with native expiry an entry that expired in
///   the last moments may still be counted until a listing or prune meets it).
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

    /// Removes the expiry marks that `mark_expiring` set at exactly `at` from the scope's
    /// live entries (a cancelled run's), and says how many; other marks stay.
    async fn clear_marks(
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

    /// Removes the entry of `key`; whether a live one was there.
    async fn delete(&self, library: &LibraryName, key: &str) -> Result<bool>;

    /// Marks the scope's live entries stale; how many.
    async fn mark_stale(&self, library: &LibraryName, scope: &StaleScope) -> Result<u64>;

    /// A page of the library's live entries.
    async fn list(&self, library: &LibraryName, query: &ListQuery) -> Result<KeyPage>;

    /// The number of live entries per producer group, sorted by group.
    async fn group_counts(&self, library: &LibraryName) -> Result<Vec<(String, u64)>>;

    /// Every live (key, generation, group) of a library, sorted by key: `list` followed to
    /// its end.
    async fn keys(&self, library: &LibraryName) -> Result<Vec<(String, u64, String)>> {
        let mut out = Vec::new();
        let mut query = ListQuery {
            group: None,
            prefix: None,
            after: None,
            limit: 1000,
        };
        loop {
            let page = self.list(library, &query).await?;
            out.extend(
                page.items
                    .into_iter()
                    .map(|i| (i.key, i.generation, i.group)),
            );
            match page.next {
                Some(next) => query.after = Some(next),
                None => return Ok(out),
            }
        }
    }
}

/// The exclusive upper bound of the keys that start with `prefix`, for a range scan: the
/// prefix with its last character incremented (`None` when every key above it matches).
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        if let Some(next) = (c as u32 + 1..=char::MAX as u32).find_map(char::from_u32) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}
