//! `MemCatalog`: the whole [`Catalog`] contract in memory, for tests that need no files,
//! with test controls (an injected outage, a count of `current` calls).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use kiln_core::catalog::{Catalog, LockHolder, MemoEntry, NewVersion, PublishOutcome, VersionInfo};
use kiln_core::ids::{ChunkId, CourseId, VersionId};
use kiln_core::manifest::{Manifest, ManifestEntry};
use kiln_core::time::{SharedClock, SystemClock, Timestamp};
use kiln_core::toc::Toc;
use kiln_core::{Error, Result};

/// A catalog in memory: one mutex over every table, so each call is one atomic step (the
/// contract's transactions, and the serialisation of claims against marks, for free).
#[derive(Debug)]
pub struct MemCatalog {
    clock: SharedClock,
    state: Mutex<State>,
    current_calls: AtomicU64,
    down: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    courses: BTreeMap<CourseId, Course>,
    memo: HashMap<String, MemoEntry>,
    tocs: HashMap<ChunkId, Toc>,
    locks: HashMap<String, LockHolder>,
    /// (owner, chunk) to expiry.
    claims: HashMap<(String, ChunkId), Timestamp>,
    /// chunk to (owner, expiry).
    marks: HashMap<ChunkId, (String, Timestamp)>,
}

#[derive(Debug, Default)]
struct Course {
    /// In order of first publication.
    versions: Vec<(VersionId, Manifest, Timestamp)>,
    current: Option<VersionId>,
}

impl State {
    fn referenced(&self) -> HashSet<ChunkId> {
        self.courses
            .values()
            .flat_map(|c| c.versions.iter())
            .flat_map(|(_, m, _)| m.entries().iter().map(|e| e.id))
            .collect()
    }
}

impl Default for MemCatalog {
    fn default() -> Self {
        Self::new()
    }
}

impl MemCatalog {
    /// An empty catalog on the wall clock.
    pub fn new() -> Self {
        MemCatalog {
            clock: SystemClock::shared(),
            state: Mutex::new(State::default()),
            current_calls: AtomicU64::new(0),
            down: AtomicBool::new(false),
        }
    }

    /// This catalog reading time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Drops every table of contents, as a catalog of versions synced before kiln kept
    /// them would be.
    pub fn forget_tocs(&self) {
        self.state().tocs.clear();
    }

    /// Makes `entries` version `version` of `course` and current, without awaiting (for
    /// hooks and synchronous set-up). Unlike [`Catalog::publish`], an existing version of
    /// that id is replaced (a test control: no real catalog rewrites a version). Panics on
    /// duplicate names.
    pub fn set_current(&self, course: &CourseId, version: &VersionId, entries: Vec<ManifestEntry>) {
        let manifest = Manifest::new(entries).expect("a test manifest without duplicates");
        let now = self.clock.now();
        let mut s = self.state();
        let c = s.courses.entry(course.clone()).or_default();
        c.versions.retain(|(v, _, _)| v != version);
        c.versions.push((version.clone(), manifest, now));
        c.current = Some(version.clone());
    }

    /// Makes `current` and `manifest` fail as an unreachable catalog does (or work again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// How many times `current` was called.
    pub fn current_calls(&self) -> u64 {
        self.current_calls.load(Ordering::Relaxed)
    }

    fn check_up(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Unavailable {
                what: "memory catalog".into(),
                source: "connection refused (injected)".into(),
            });
        }
        Ok(())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread leaves the tables consistent: every change is one step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Display for MemCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Memory")
    }
}

fn info(
    course: &CourseId,
    c: &Course,
    (v, _, at): &(VersionId, Manifest, Timestamp),
) -> VersionInfo {
    VersionInfo {
        course: course.clone(),
        version: v.clone(),
        created_at: *at,
        current: c.current.as_ref() == Some(v),
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Catalog for MemCatalog {
    async fn publish(&self, v: NewVersion) -> Result<PublishOutcome> {
        let now = self.clock.now();
        let mut s = self.state();
        let c = s.courses.entry(v.course).or_default();
        if c.current.as_ref() == Some(&v.version) {
            return Ok(PublishOutcome::Unchanged);
        }
        let outcome = if c.versions.iter().any(|(x, _, _)| x == &v.version) {
            PublishOutcome::Reinstated
        } else {
            c.versions.push((v.version.clone(), v.manifest, now));
            PublishOutcome::Published
        };
        c.current = Some(v.version);
        Ok(outcome)
    }

    async fn current(&self, course: &CourseId) -> Result<Option<VersionInfo>> {
        self.current_calls.fetch_add(1, Ordering::Relaxed);
        self.check_up()?;
        let s = self.state();
        Ok(s.courses.get(course).and_then(|c| {
            let v = c.current.as_ref()?;
            c.versions
                .iter()
                .find(|x| &x.0 == v)
                .map(|x| info(course, c, x))
        }))
    }

    async fn versions(&self, course: &CourseId) -> Result<Vec<VersionInfo>> {
        let s = self.state();
        let c = s
            .courses
            .get(course)
            .filter(|c| !c.versions.is_empty())
            .ok_or_else(|| Error::not_found(format!("course {:?}", course.as_str())))?;
        Ok(c.versions
            .iter()
            .rev()
            .map(|x| info(course, c, x))
            .collect())
    }

    async fn courses(&self) -> Result<Vec<CourseId>> {
        Ok(self.state().courses.keys().cloned().collect())
    }

    async fn currents(&self) -> Result<Vec<VersionInfo>> {
        self.check_up()?;
        let s = self.state();
        Ok(s.courses
            .iter()
            .filter_map(|(course, c)| {
                let v = c.current.as_ref()?;
                c.versions
                    .iter()
                    .find(|x| &x.0 == v)
                    .map(|x| info(course, c, x))
            })
            .collect())
    }

    async fn manifest(&self, course: &CourseId, version: &VersionId) -> Result<Manifest> {
        self.check_up()?;
        let s = self.state();
        s.courses
            .get(course)
            .and_then(|c| c.versions.iter().find(|x| &x.0 == version))
            .map(|x| x.1.clone())
            .ok_or_else(|| {
                Error::not_found(format!(
                    "version {:?} of course {:?}",
                    version.as_str(),
                    course.as_str()
                ))
            })
    }

    async fn memo_get(&self, keys: &[String]) -> Result<HashMap<String, MemoEntry>> {
        let s = self.state();
        Ok(keys
            .iter()
            .filter_map(|k| s.memo.get(k).map(|e| (k.clone(), *e)))
            .collect())
    }

    async fn memo_put(&self, entries: &[(String, MemoEntry)]) -> Result<()> {
        let mut s = self.state();
        for (k, e) in entries {
            s.memo.insert(k.clone(), *e);
        }
        Ok(())
    }

    async fn put_tocs(&self, tocs: &[(ChunkId, Toc)]) -> Result<()> {
        let mut s = self.state();
        for (id, toc) in tocs {
            s.tocs.entry(*id).or_insert_with(|| toc.clone());
        }
        Ok(())
    }

    async fn tocs(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, Toc>> {
        let s = self.state();
        Ok(ids
            .iter()
            .filter_map(|id| s.tocs.get(id).map(|t| (*id, t.clone())))
            .collect())
    }

    async fn memo_forget(&self, ids: &[ChunkId]) -> Result<()> {
        let ids: HashSet<&ChunkId> = ids.iter().collect();
        self.state().memo.retain(|_, e| !ids.contains(&e.id));
        Ok(())
    }

    async fn referenced_chunks(&self) -> Result<HashSet<ChunkId>> {
        Ok(self.state().referenced())
    }

    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let now = self.clock.now();
        let mut s = self.state();
        let free = s
            .locks
            .get(name)
            .is_none_or(|h| h.owner == owner || h.expires_at <= now);
        if free {
            let holder = LockHolder {
                owner: owner.into(),
                expires_at: now.plus(ttl),
            };
            s.locks.insert(name.into(), holder);
        }
        Ok(free)
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        let mut s = self.state();
        if s.locks.get(name).is_some_and(|h| h.owner == owner) {
            s.locks.remove(name);
        }
        Ok(())
    }

    async fn lock_holder(&self, name: &str) -> Result<Option<LockHolder>> {
        let now = self.clock.now();
        let s = self.state();
        Ok(s.locks.get(name).filter(|h| h.expires_at > now).cloned())
    }

    async fn take_over(&self, name: &str, from: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let now = self.clock.now();
        let mut s = self.state();
        match s.locks.get_mut(name) {
            Some(h) if h.owner == from => {
                h.owner = owner.into();
                h.expires_at = now.plus(ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn claim_chunks(
        &self,
        owner: &str,
        ids: &[ChunkId],
        ttl: Duration,
    ) -> Result<HashSet<ChunkId>> {
        let now = self.clock.now();
        let until = now.plus(ttl);
        let mut s = self.state();
        if ids.is_empty() {
            s.claims.retain(|_, at| *at > now);
            for ((o, _), at) in s.claims.iter_mut() {
                if o == owner {
                    *at = until;
                }
            }
        }
        for id in ids {
            s.claims.insert((owner.to_string(), *id), until);
        }
        Ok(ids
            .iter()
            .filter(|id| s.marks.get(id).is_some_and(|(_, at)| *at > now))
            .copied()
            .collect())
    }

    async fn release_claims(&self, owner: &str) -> Result<()> {
        let now = self.clock.now();
        self.state()
            .claims
            .retain(|(o, _), at| o != owner && *at > now);
        Ok(())
    }

    async fn gc_mark(
        &self,
        owner: &str,
        candidates: &[ChunkId],
        ttl: Duration,
    ) -> Result<(Vec<ChunkId>, u64)> {
        let now = self.clock.now();
        let until = now.plus(ttl);
        let mut guard = self.state();
        let s = &mut *guard;
        let mut keep = if candidates.is_empty() {
            HashSet::new()
        } else {
            s.referenced()
        };
        keep.extend(
            s.claims
                .iter()
                .filter(|(_, at)| **at > now)
                .map(|((_, id), _)| *id),
        );
        for (o, at) in s.marks.values_mut() {
            if o == owner && *at > now {
                *at = until;
            }
        }
        let mut marked = Vec::new();
        for id in candidates {
            // `keep` also holds the ids marked already: one mark per id.
            if !keep.insert(*id) {
                continue;
            }
            let free = s
                .marks
                .get(id)
                .is_none_or(|(o, at)| *at <= now || o == owner);
            if free {
                s.marks.insert(*id, (owner.to_string(), until));
                marked.push(*id);
            }
        }
        let gone: HashSet<ChunkId> = marked.iter().copied().collect();
        s.memo.retain(|_, e| !gone.contains(&e.id));
        let live = s
            .marks
            .values()
            .filter(|(o, at)| o == owner && *at > now)
            .count();
        Ok((marked, live as u64))
    }

    async fn gc_unmark(&self, owner: &str) -> Result<()> {
        let now = self.clock.now();
        self.state()
            .marks
            .retain(|_, (o, at)| o != owner && *at > now);
        Ok(())
    }
}
