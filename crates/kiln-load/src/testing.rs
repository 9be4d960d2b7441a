//! Helpers for tests and benchmarks of kiln-load and its callers: an in-memory catalog. Not
//! for production use. (Test bundles and the counting, fault-injecting object store are in
//! kiln-testkit: `chunks` and `store`.)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kiln_core::catalog::{
    BeginRun, Catalog, MemoEntry, NewVersion, PublishOutcome, Run, RunState, VersionInfo,
};
use kiln_core::ids::{ChunkId, CourseId, LibraryName, RunId, VersionId};
use kiln_core::manifest::{Manifest, ManifestEntry};
use kiln_core::time::Timestamp;
use kiln_core::{Error, Result};

/// An in-memory [`Catalog`] of courses and versions (no memo, locks or runs).
#[derive(Debug, Default)]
pub struct MemCatalog {
    courses: Mutex<BTreeMap<CourseId, MemCourse>>,
    current_calls: AtomicU64,
    down: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct MemCourse {
    versions: Vec<(VersionId, Manifest, Timestamp)>,
    current: Option<VersionId>,
}

impl MemCatalog {
    /// An empty catalog.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Adds (or replaces) a version and makes it current.
    pub fn set_current(&self, course: &CourseId, version: &VersionId, entries: Vec<ManifestEntry>) {
        let manifest = Manifest::new(entries).expect("a test manifest without duplicates");
        let mut courses = self.courses.lock().unwrap_or_else(|e| e.into_inner());
        let c = courses.entry(course.clone()).or_default();
        c.versions.retain(|(v, _, _)| v != version);
        c.versions
            .push((version.clone(), manifest, Timestamp::now()));
        c.current = Some(version.clone());
    }

    /// Makes `current` and `manifest` fail as an unreachable catalog does (or work again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
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

    /// How many times `current` was called.
    pub fn current_calls(&self) -> u64 {
        self.current_calls.load(Ordering::Relaxed)
    }
}

impl fmt::Display for MemCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Memory")
    }
}

fn unsupported() -> Error {
    Error::backend("memory", "not supported by the test catalog")
}

#[async_trait]
impl Catalog for MemCatalog {
    async fn publish(&self, v: NewVersion) -> Result<PublishOutcome> {
        self.set_current(&v.course, &v.version, v.manifest.entries().to_vec());
        Ok(PublishOutcome::Published)
    }

    async fn current(&self, course: &CourseId) -> Result<Option<VersionInfo>> {
        self.current_calls.fetch_add(1, Ordering::Relaxed);
        self.check_up()?;
        let courses = self.courses.lock().unwrap_or_else(|e| e.into_inner());
        Ok(courses.get(course).and_then(|c| {
            let v = c.current.clone()?;
            let created_at = c.versions.iter().find(|x| x.0 == v).map(|x| x.2)?;
            Some(VersionInfo {
                course: course.clone(),
                version: v,
                created_at,
                current: true,
            })
        }))
    }

    async fn versions(&self, course: &CourseId) -> Result<Vec<VersionInfo>> {
        let courses = self.courses.lock().unwrap_or_else(|e| e.into_inner());
        let c = courses
            .get(course)
            .ok_or_else(|| Error::not_found(format!("course {course:?}")))?;
        Ok(c.versions
            .iter()
            .rev()
            .map(|(v, _, at)| VersionInfo {
                course: course.clone(),
                version: v.clone(),
                created_at: *at,
                current: c.current.as_ref() == Some(v),
            })
            .collect())
    }

    async fn courses(&self) -> Result<Vec<CourseId>> {
        let courses = self.courses.lock().unwrap_or_else(|e| e.into_inner());
        Ok(courses.keys().cloned().collect())
    }

    async fn manifest(&self, course: &CourseId, version: &VersionId) -> Result<Manifest> {
        self.check_up()?;
        let courses = self.courses.lock().unwrap_or_else(|e| e.into_inner());
        courses
            .get(course)
            .and_then(|c| c.versions.iter().find(|x| &x.0 == version))
            .map(|x| x.1.clone())
            .ok_or_else(|| Error::not_found(format!("version {version} of course {course}")))
    }

    async fn memo_get(&self, _keys: &[String]) -> Result<HashMap<String, MemoEntry>> {
        Ok(HashMap::new())
    }

    async fn memo_put(&self, _entries: &[(String, MemoEntry)]) -> Result<()> {
        Ok(())
    }

    async fn memo_forget(&self, _ids: &[ChunkId]) -> Result<()> {
        Ok(())
    }

    async fn referenced_chunks(&self) -> Result<HashSet<ChunkId>> {
        let courses = self.courses.lock().unwrap_or_else(|e| e.into_inner());
        Ok(courses
            .values()
            .flat_map(|c| c.versions.iter())
            .flat_map(|(_, m, _)| m.entries().iter().map(|e| e.id))
            .collect())
    }

    async fn try_lock(&self, _name: &str, _owner: &str, _ttl: Duration) -> Result<bool> {
        Ok(true)
    }

    async fn unlock(&self, _name: &str, _owner: &str) -> Result<()> {
        Ok(())
    }

    async fn begin_run(&self, _library: &LibraryName, _opts: BeginRun) -> Result<Run> {
        Err(unsupported())
    }

    async fn run(&self, _id: RunId) -> Result<Run> {
        Err(unsupported())
    }

    async fn runs(&self, _library: Option<&LibraryName>, _limit: usize) -> Result<Vec<Run>> {
        Err(unsupported())
    }

    async fn finish_run(&self, _id: RunId, _state: RunState) -> Result<bool> {
        Err(unsupported())
    }

    async fn lock_holder(&self, _name: &str) -> Result<Option<kiln_core::catalog::LockHolder>> {
        Err(unsupported())
    }

    async fn take_over(&self, _n: &str, _f: &str, _o: &str, _ttl: Duration) -> Result<bool> {
        Err(unsupported())
    }

    async fn claim_chunks(
        &self,
        _owner: &str,
        _ids: &[ChunkId],
        _ttl: Duration,
    ) -> Result<std::collections::HashSet<ChunkId>> {
        Err(unsupported())
    }

    async fn release_claims(&self, _owner: &str) -> Result<()> {
        Err(unsupported())
    }

    async fn gc_mark(
        &self,
        _owner: &str,
        _candidates: &[ChunkId],
        _ttl: Duration,
    ) -> Result<(Vec<ChunkId>, u64)> {
        Err(unsupported())
    }

    async fn gc_unmark(&self, _owner: &str) -> Result<()> {
        Err(unsupported())
    }
}
