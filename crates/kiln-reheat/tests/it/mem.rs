//! An in-memory catalog double for tests that need no files (the queue and the render cache
//! are kiln-testkit's `MemQueue` and `MemCache`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use kiln_core::catalog::{
    BeginRun, Catalog, MemoEntry, NewVersion, PublishOutcome, Run, RunState, VersionInfo,
};
use kiln_core::ids::{ChunkId, CourseId, LibraryName, RunId, VersionId};
use kiln_core::manifest::Manifest;
use kiln_core::time::Timestamp;
use kiln_core::{Error, Result};

/// A catalog of runs (and versions, for the course source).
#[derive(Debug, Default)]
pub(crate) struct MemCatalog {
    state: Mutex<CatState>,
}

#[derive(Debug, Default)]
struct CatState {
    runs: Vec<Run>,
    generations: HashMap<String, u64>,
    versions: HashMap<String, (VersionId, Manifest)>,
}

impl fmt::Display for MemCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemCatalog")
    }
}

fn unsupported<T>() -> Result<T> {
    Err(Error::invalid("not supported by the test catalog"))
}

#[async_trait]
impl Catalog for MemCatalog {
    async fn publish(&self, v: NewVersion) -> Result<PublishOutcome> {
        let mut s = self.state.lock().unwrap();
        s.versions
            .insert(v.course.to_string(), (v.version, v.manifest));
        Ok(PublishOutcome::Published)
    }
    async fn current(&self, course: &CourseId) -> Result<Option<VersionInfo>> {
        let s = self.state.lock().unwrap();
        Ok(s.versions.get(course.as_str()).map(|(v, _)| VersionInfo {
            course: course.clone(),
            version: v.clone(),
            created_at: Timestamp(0),
            current: true,
        }))
    }
    async fn versions(&self, _: &CourseId) -> Result<Vec<VersionInfo>> {
        unsupported()
    }
    async fn courses(&self) -> Result<Vec<CourseId>> {
        unsupported()
    }
    async fn manifest(&self, course: &CourseId, version: &VersionId) -> Result<Manifest> {
        let s = self.state.lock().unwrap();
        match s.versions.get(course.as_str()) {
            Some((v, m)) if v == version => Ok(m.clone()),
            _ => Err(Error::not_found(format!("version {version}"))),
        }
    }
    async fn memo_get(&self, _: &[String]) -> Result<HashMap<String, MemoEntry>> {
        unsupported()
    }
    async fn memo_put(&self, _: &[(String, MemoEntry)]) -> Result<()> {
        unsupported()
    }
    async fn memo_forget(&self, _: &[ChunkId]) -> Result<()> {
        unsupported()
    }
    async fn referenced_chunks(&self) -> Result<HashSet<ChunkId>> {
        unsupported()
    }
    async fn try_lock(&self, _: &str, _: &str, _: Duration) -> Result<bool> {
        unsupported()
    }
    async fn unlock(&self, _: &str, _: &str) -> Result<()> {
        unsupported()
    }
    async fn begin_run(&self, library: &LibraryName, opts: BeginRun) -> Result<Run> {
        let mut s = self.state.lock().unwrap();
        let g = s.generations.entry(library.to_string()).or_default();
        *g += 1;
        let generation = *g;
        if opts.group.is_none() {
            for r in s.runs.iter_mut() {
                if &r.library == library && r.state == RunState::Running && r.group.is_none() {
                    r.state = RunState::Superseded;
                    r.finished_at = Some(Timestamp::now());
                }
            }
        }
        let run = Run {
            id: RunId(s.runs.len() as i64 + 1),
            library: library.clone(),
            build: opts.build,
            generation,
            group: opts.group,
            state: RunState::Running,
            created_at: Timestamp::now(),
            finished_at: None,
        };
        s.runs.push(run.clone());
        Ok(run)
    }
    async fn run(&self, id: RunId) -> Result<Run> {
        let s = self.state.lock().unwrap();
        s.runs
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("run {id}")))
    }
    async fn runs(&self, library: Option<&LibraryName>, limit: usize) -> Result<Vec<Run>> {
        let s = self.state.lock().unwrap();
        Ok(s.runs
            .iter()
            .rev()
            .filter(|r| library.is_none_or(|l| &r.library == l))
            .take(limit)
            .cloned()
            .collect())
    }
    async fn finish_run(&self, id: RunId, state: RunState) -> Result<bool> {
        let mut s = self.state.lock().unwrap();
        match s.runs.iter_mut().find(|r| r.id == id) {
            Some(r) if r.state == RunState::Running => {
                r.state = state;
                r.finished_at = Some(Timestamp::now());
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(Error::not_found(format!("run {id}"))),
        }
    }

    async fn lock_holder(&self, _name: &str) -> Result<Option<kiln_core::catalog::LockHolder>> {
        unsupported()
    }

    async fn take_over(&self, _n: &str, _f: &str, _o: &str, _ttl: Duration) -> Result<bool> {
        unsupported()
    }

    async fn claim_chunks(
        &self,
        _owner: &str,
        _ids: &[ChunkId],
        _ttl: Duration,
    ) -> Result<std::collections::HashSet<ChunkId>> {
        unsupported()
    }

    async fn release_claims(&self, _owner: &str) -> Result<()> {
        unsupported()
    }

    async fn gc_mark(
        &self,
        _owner: &str,
        _candidates: &[ChunkId],
        _ttl: Duration,
    ) -> Result<(Vec<ChunkId>, u64)> {
        unsupported()
    }

    async fn gc_unmark(&self, _owner: &str) -> Result<()> {
        unsupported()
    }
}
