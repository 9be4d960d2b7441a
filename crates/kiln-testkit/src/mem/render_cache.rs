//! `MemCache`: the [`RenderCache`] in memory: entries in a `BTreeMap` by (library, key)
//! behind a std `Mutex`, expiry checked on read against the injected clock.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use kiln_core::Result;
use kiln_core::ids::LibraryName;
use kiln_core::render_cache::{
    CacheEntry, KeyInfo, KeyPage, ListQuery, PruneScope, PutOutcome, RenderCache, StaleScope,
};
use kiln_core::time::{SharedClock, SystemClock, Timestamp};

/// A render cache in memory; it lives as long as the value.
#[derive(Debug)]
pub struct MemCache {
    state: Mutex<State>,
    clock: SharedClock,
}

#[derive(Debug, Default)]
struct State {
    /// (library, key) -> entry; the order makes `keys` sorted.
    entries: BTreeMap<(String, String), CacheEntry>,
    floors: HashMap<String, u64>,
}

impl MemCache {
    /// An empty cache on the system clock.
    pub fn new() -> Self {
        MemCache {
            state: Mutex::new(State::default()),
            clock: SystemClock::shared(),
        }
    }

    /// This cache reading the time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        super::lock(&self.state)
    }
}

impl Default for MemCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MemCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemCache")
    }
}

fn live(e: &CacheEntry, now: Timestamp) -> bool {
    e.expires_at.is_none_or(|t| t > now)
}

fn in_scope(library: &LibraryName, l: &str, e: &CacheEntry, scope: &PruneScope) -> bool {
    l == library.as_str()
        && e.generation < scope.below_generation
        && scope.group.as_ref().is_none_or(|g| g == &e.group)
}

#[async_trait]
impl RenderCache for MemCache {
    async fn get(&self, library: &LibraryName, key: &str) -> Result<Option<CacheEntry>> {
        let now = self.clock.now();
        let s = self.state();
        Ok(s.entries
            .get(&(library.to_string(), key.to_string()))
            .filter(|e| live(e, now))
            .cloned())
    }

    async fn put(
        &self,
        library: &LibraryName,
        entries: Vec<CacheEntry>,
    ) -> Result<Vec<PutOutcome>> {
        let mut s = self.state();
        let floor = s.floors.get(library.as_str()).copied().unwrap_or(0);
        // One by one, so a key twice in a batch sees its first write.
        Ok(entries
            .into_iter()
            .map(|e| {
                let k = (library.to_string(), e.key.clone());
                let newer = s
                    .entries
                    .get(&k)
                    .is_some_and(|old| old.generation > e.generation);
                if newer || e.generation < floor {
                    PutOutcome::Stale
                } else {
                    s.entries.insert(k, e);
                    PutOutcome::Written
                }
            })
            .collect())
    }

    async fn mark_expiring(
        &self,
        library: &LibraryName,
        scope: &PruneScope,
        at: Timestamp,
    ) -> Result<u64> {
        let now = self.clock.now();
        let mut s = self.state();
        let mut n = 0;
        // Expired entries are gone for readers: marking them again could revive them.
        for ((l, _), e) in s.entries.iter_mut() {
            if in_scope(library, l, e, scope) && live(e, now) {
                e.expires_at = Some(at);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn clear_marks(
        &self,
        library: &LibraryName,
        scope: &PruneScope,
        at: Timestamp,
    ) -> Result<u64> {
        let now = self.clock.now();
        let mut s = self.state();
        let mut n = 0;
        for ((l, _), e) in s.entries.iter_mut() {
            if in_scope(library, l, e, scope) && live(e, now) && e.expires_at == Some(at) {
                e.expires_at = None;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn sweep(&self, library: &LibraryName, scope: &PruneScope) -> Result<u64> {
        let now = self.clock.now();
        let mut s = self.state();
        let mut n = 0;
        // Expired entries of the scope go too, but only live ones count.
        s.entries.retain(|(l, _), e| {
            let gone = in_scope(library, l, e, scope);
            if gone && live(e, now) {
                n += 1;
            }
            !gone
        });
        Ok(n)
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        let mut s = self.state();
        let before = s.entries.len();
        s.entries
            .retain(|_, e| e.expires_at.is_none_or(|t| t > now));
        Ok((before - s.entries.len()) as u64)
    }

    async fn set_floor(&self, library: &LibraryName, generation: u64) -> Result<()> {
        let mut s = self.state();
        let f = s.floors.entry(library.to_string()).or_default();
        *f = (*f).max(generation);
        Ok(())
    }

    async fn delete(&self, library: &LibraryName, key: &str) -> Result<bool> {
        let now = self.clock.now();
        let mut s = self.state();
        Ok(s.entries
            .remove(&(library.to_string(), key.to_string()))
            .is_some_and(|e| live(&e, now)))
    }

    async fn mark_stale(&self, library: &LibraryName, scope: &StaleScope) -> Result<u64> {
        let now = self.clock.now();
        let mut s = self.state();
        let mut n = 0;
        for ((l, k), e) in s.entries.iter_mut() {
            let hit = l == library.as_str()
                && live(e, now)
                && match scope {
                    StaleScope::Keys(keys) => keys.contains(k),
                    StaleScope::Group(g) => &e.group == g,
                    StaleScope::Library => true,
                };
            if hit {
                e.stale = true;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn list(&self, library: &LibraryName, q: &ListQuery) -> Result<KeyPage> {
        let now = self.clock.now();
        let s = self.state();
        let items: Vec<KeyInfo> = s
            .entries
            .iter()
            .filter(|((l, k), e)| {
                l == library.as_str()
                    && live(e, now)
                    && q.after.as_ref().is_none_or(|a| k > a)
                    && q.prefix.as_ref().is_none_or(|p| k.starts_with(p.as_str()))
                    && q.group.as_ref().is_none_or(|g| &e.group == g)
            })
            .take(q.limit + 1)
            .map(|(_, e)| KeyInfo {
                key: e.key.clone(),
                generation: e.generation,
                group: e.group.clone(),
                size: e.bytes.len() as u64,
                written_at: e.written_at,
                expires_at: e.expires_at,
                stale: e.stale,
            })
            .collect();
        Ok(KeyPage::from_overfetch(items, q.limit))
    }

    async fn group_counts(&self, library: &LibraryName) -> Result<Vec<(String, u64)>> {
        let now = self.clock.now();
        let s = self.state();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for ((l, _), e) in &s.entries {
            if l == library.as_str() && live(e, now) {
                *counts.entry(e.group.clone()).or_default() += 1;
            }
        }
        Ok(counts.into_iter().collect())
    }
}
