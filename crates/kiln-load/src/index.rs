//! The in-memory index of the cache: which chunks are present, their sizes, pins and LRU
//! order, fetches in flight, and which version directories are pinned or already linked.
//!
//! It lives behind one std `Mutex` in [`crate::cache`]: every section is short and never
//! awaits, and taking the pin, checking presence and joining a fetch under one lock is what
//! makes single-flight and "never evict a pinned chunk" hold.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::future::{BoxFuture, Shared};
use kiln_core::Error;
use kiln_core::ids::{ChunkId, CourseId, VersionId};

/// A chunk of a course: chunks are stored per course.
pub(crate) type Key = (CourseId, ChunkId);

/// A fetch in flight, shared by every request that waits for it; `Ok(true)` when this
/// process downloaded the chunk (rather than finding it fetched by another process).
pub(crate) type FetchFuture = Shared<BoxFuture<'static, Result<bool, Arc<Error>>>>;

/// One chunk the index knows of: present, being fetched, or merely pinned by a waiter.
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) present: bool,
    pub(crate) size: u64,
    pub(crate) pins: u32,
    pub(crate) inflight: Option<FetchFuture>,
    tick: u64,
}

/// A version directory's pins and the chunks already linked into it.
#[derive(Default)]
struct VersionSlot {
    pins: u32,
    linked: HashSet<ChunkId>,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Index {
    slots: HashMap<Key, Slot>,
    /// Present chunks by last use, oldest first.
    lru: BTreeMap<u64, Key>,
    tick: u64,
    /// What the present chunks take on disk (allocated blocks and inodes, as
    /// `fsutil::disk_usage` measures them).
    pub(crate) total: u64,
    versions: HashMap<(CourseId, VersionId), VersionSlot>,
}

impl Index {
    /// Pins a chunk (creating its slot) and marks it used; the caller decides what to do
    /// if it is not present.
    pub(crate) fn pin(&mut self, key: &Key) -> &mut Slot {
        self.tick += 1;
        let tick = self.tick;
        let slot = self.slots.entry(key.clone()).or_default();
        slot.pins += 1;
        if slot.present {
            self.lru.remove(&slot.tick);
            self.lru.insert(tick, key.clone());
            slot.tick = tick;
        }
        slot
    }

    /// Drops one pin; a slot that is neither present nor being fetched is forgotten.
    pub(crate) fn unpin(&mut self, key: &Key) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.pins = slot.pins.saturating_sub(1);
            if slot.pins == 0 && !slot.present && slot.inflight.is_none() {
                self.slots.remove(key);
            }
        }
    }

    /// Records a chunk as present (after a fetch, or found on disk at start-up).
    pub(crate) fn insert_present(&mut self, key: &Key, size: u64) {
        self.tick += 1;
        let tick = self.tick;
        let slot = self.slots.entry(key.clone()).or_default();
        slot.inflight = None;
        if !slot.present {
            slot.present = true;
            slot.size = size;
            self.total += size;
        }
        self.lru.remove(&slot.tick);
        self.lru.insert(tick, key.clone());
        slot.tick = tick;
    }

    /// The slot of a chunk (created if missing).
    pub(crate) fn slot_mut(&mut self, key: &Key) -> &mut Slot {
        self.slots.entry(key.clone()).or_default()
    }

    /// The bytes a present chunk is accounted at (0 when it is not present).
    pub(crate) fn size(&self, key: &Key) -> u64 {
        self.slots
            .get(key)
            .filter(|s| s.present)
            .map_or(0, |s| s.size)
    }

    /// Whether the index holds the chunk present.
    pub(crate) fn is_present(&self, key: &Key) -> bool {
        self.slots.get(key).is_some_and(|s| s.present)
    }

    /// Records that a chunk believed present is gone from disk (removed from outside): it
    /// leaves the LRU and the byte count, and keeps its pins, so that it can be fetched again.
    pub(crate) fn forget_present(&mut self, key: &Key) {
        if let Some(slot) = self.slots.get_mut(key)
            && slot.present
        {
            slot.present = false;
            self.total -= slot.size;
            slot.size = 0;
            self.lru.remove(&slot.tick);
        }
    }

    /// Records a failed fetch.
    pub(crate) fn fetch_failed(&mut self, key: &Key) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.inflight = None;
            if slot.pins == 0 && !slot.present {
                self.slots.remove(key);
            }
        }
    }

    /// Removes least recently used unpinned chunks from the index until the present bytes
    /// are at most `target`, and returns them; the caller removes them from disk while it
    /// still holds the lock (a rename), so that no request can pin them meanwhile.
    pub(crate) fn take_victims(&mut self, target: u64) -> Vec<(Key, u64)> {
        let mut out = Vec::new();
        if self.total <= target {
            return out;
        }
        let mut need = self.total - target;
        let mut picked = Vec::new();
        for (tick, key) in &self.lru {
            if need == 0 {
                break;
            }
            let Some(slot) = self.slots.get(key) else {
                continue;
            };
            if slot.pins == 0 {
                picked.push((*tick, key.clone(), slot.size));
                need = need.saturating_sub(slot.size);
            }
        }
        for (tick, key, size) in picked {
            self.slots.remove(&key);
            self.lru.remove(&tick);
            self.total -= size;
            out.push((key, size));
        }
        out
    }

    /// How many chunks are present.
    pub(crate) fn present_count(&self) -> u64 {
        self.lru.len() as u64
    }

    pub(crate) fn pin_version(&mut self, course: &CourseId, version: &VersionId) {
        self.versions
            .entry((course.clone(), version.clone()))
            .or_default()
            .pins += 1;
    }

    pub(crate) fn unpin_version(&mut self, course: &CourseId, version: &VersionId) {
        let key = (course.clone(), version.clone());
        if let Some(v) = self.versions.get_mut(&key) {
            v.pins = v.pins.saturating_sub(1);
        }
    }

    pub(crate) fn version_pinned(&self, course: &CourseId, version: &VersionId) -> bool {
        self.versions
            .get(&(course.clone(), version.clone()))
            .is_some_and(|v| v.pins > 0)
    }

    /// Whether the chunk's links exist in the version directory already.
    pub(crate) fn is_linked(&self, course: &CourseId, version: &VersionId, id: &ChunkId) -> bool {
        self.versions
            .get(&(course.clone(), version.clone()))
            .is_some_and(|v| v.linked.contains(id))
    }

    pub(crate) fn mark_linked(&mut self, course: &CourseId, version: &VersionId, id: ChunkId) {
        self.versions
            .entry((course.clone(), version.clone()))
            .or_default()
            .linked
            .insert(id);
    }

    /// Forgets a version directory that is being removed.
    pub(crate) fn forget_version(&mut self, course: &CourseId, version: &VersionId) {
        self.versions.remove(&(course.clone(), version.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        (CourseId::new("c").unwrap(), ChunkId([n; 32]))
    }

    #[test]
    fn victims_are_least_recently_used_and_never_pinned() {
        let mut ix = Index::default();
        for n in 1..=3 {
            ix.insert_present(&key(n), 10);
        }
        ix.pin(&key(1)); // most recently used, and pinned
        ix.pin(&key(2));
        ix.unpin(&key(2)); // used after 3
        let v = ix.take_victims(5);
        let ids: Vec<u8> = v.iter().map(|(k, _)| k.1.0[0]).collect();
        assert_eq!(ids, vec![3, 2]);
        assert_eq!(ix.total, 10);
        assert_eq!(ix.present_count(), 1);
    }
}
