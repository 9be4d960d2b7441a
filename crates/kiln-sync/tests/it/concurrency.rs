//! Two syncs of one course never interleave: the course lock serialises them.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_core::Result;
use kiln_core::catalog::{Catalog, LockHolder, MemoEntry, NewVersion, PublishOutcome, VersionInfo};
use kiln_core::ids::{ChunkId, CourseId, VersionId};
use kiln_core::manifest::Manifest;
use kiln_sync::{NoProgress, SyncOptions};
use kiln_testkit::course_gen::commit_all;

use crate::support::{env, example_repo};

/// A catalog that records lock grants, publishes and unlocks, in order.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn Catalog>,
    events: Mutex<Vec<String>>,
}

impl fmt::Display for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recording({})", self.inner)
    }
}

impl Recording {
    fn push(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }
}

#[async_trait::async_trait]
impl Catalog for Recording {
    async fn publish(&self, v: NewVersion) -> Result<PublishOutcome> {
        self.push(format!("publish {}", v.version));
        self.inner.publish(v).await
    }
    async fn current(&self, c: &CourseId) -> Result<Option<VersionInfo>> {
        self.inner.current(c).await
    }
    async fn versions(&self, c: &CourseId) -> Result<Vec<VersionInfo>> {
        self.inner.versions(c).await
    }
    async fn courses(&self) -> Result<Vec<CourseId>> {
        self.inner.courses().await
    }
    async fn currents(&self) -> Result<Vec<VersionInfo>> {
        self.inner.currents().await
    }
    async fn manifest(&self, c: &CourseId, v: &VersionId) -> Result<Manifest> {
        self.inner.manifest(c, v).await
    }
    async fn memo_get(
        &self,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, MemoEntry>> {
        self.inner.memo_get(keys).await
    }
    async fn memo_put(&self, entries: &[(String, MemoEntry)]) -> Result<()> {
        self.inner.memo_put(entries).await
    }
    async fn memo_forget(&self, ids: &[ChunkId]) -> Result<()> {
        self.inner.memo_forget(ids).await
    }
    async fn put_tocs(&self, tocs: &[(ChunkId, kiln_core::toc::Toc)]) -> Result<()> {
        self.inner.put_tocs(tocs).await
    }
    async fn tocs(
        &self,
        ids: &[ChunkId],
    ) -> Result<std::collections::HashMap<ChunkId, kiln_core::toc::Toc>> {
        self.inner.tocs(ids).await
    }
    async fn referenced_chunks(&self) -> Result<std::collections::HashSet<ChunkId>> {
        self.inner.referenced_chunks().await
    }
    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let got = self.inner.try_lock(name, owner, ttl).await?;
        if got && name.starts_with("sync:") {
            let mut ev = self.events.lock().unwrap();
            let entry = format!("lock {owner}");
            // Renewals of a held lock are not new grants.
            let held = ev
                .iter()
                .rev()
                .find(|e| e.starts_with("lock ") || e.starts_with("unlock "));
            if held != Some(&entry) {
                ev.push(entry);
            }
        }
        Ok(got)
    }
    async fn unlock(&self, name: &str, owner: &str) -> Result<()> {
        // The course's lock only (the published head's lease is taken inside it).
        if name.starts_with("sync:") {
            self.push(format!("unlock {owner}"));
        }
        self.inner.unlock(name, owner).await
    }
    async fn lock_holder(&self, name: &str) -> Result<Option<LockHolder>> {
        self.inner.lock_holder(name).await
    }
    async fn take_over(&self, name: &str, from: &str, owner: &str, ttl: Duration) -> Result<bool> {
        self.inner.take_over(name, from, owner, ttl).await
    }
    async fn claim_chunks(
        &self,
        owner: &str,
        ids: &[ChunkId],
        ttl: Duration,
    ) -> Result<std::collections::HashSet<ChunkId>> {
        self.inner.claim_chunks(owner, ids, ttl).await
    }
    async fn release_claims(&self, owner: &str) -> Result<()> {
        self.inner.release_claims(owner).await
    }
    async fn gc_mark(
        &self,
        owner: &str,
        candidates: &[ChunkId],
        ttl: Duration,
    ) -> Result<(Vec<ChunkId>, u64)> {
        self.inner.gc_mark(owner, candidates, ttl).await
    }
    async fn gc_unmark(&self, owner: &str) -> Result<()> {
        self.inner.gc_unmark(owner).await
    }
}

#[tokio::test]
async fn two_concurrent_syncs_of_one_course_do_not_interleave() {
    let env = env().await;
    let (repo, first) = example_repo(env.dir.path(), "kiln101");
    std::fs::write(
        repo.join("clientFilesCourse/course.css"),
        "body { margin: 2em; }\n",
    )
    .unwrap();
    let second = commit_all(&repo, "restyle").unwrap();
    let rec = Arc::new(Recording {
        inner: env.catalog.clone(),
        events: Mutex::new(Vec::new()),
    });
    let run = |rev: String| {
        let mut o = SyncOptions::new(&repo);
        o.course = Some(CourseId::new("kiln101").unwrap());
        o.rev = Some(rev);
        kiln_sync::sync(o, rec.clone(), env.store.clone(), Arc::new(NoProgress))
    };
    let (a, b) = tokio::join!(run(first.clone()), run(second.clone()));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.outcome, PublishOutcome::Published);
    assert_eq!(b.outcome, PublishOutcome::Published);

    let ev = rec.events.lock().unwrap().clone();
    assert_eq!(ev.len(), 6, "{ev:#?}");
    for pair in [&ev[0..3], &ev[3..6]] {
        let owner = pair[0].strip_prefix("lock ").expect("a grant first");
        assert!(pair[1].starts_with("publish "), "{ev:#?}");
        assert_eq!(pair[2], format!("unlock {owner}"), "{ev:#?}");
    }
    let c = CourseId::new("kiln101").unwrap();
    assert_eq!(env.catalog.versions(&c).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_held_lock_fails_after_the_wait() {
    let env = env().await;
    let (repo, _) = example_repo(env.dir.path(), "kiln101");
    assert!(
        env.catalog
            .try_lock("sync:kiln101", "someone-else", Duration::from_secs(60))
            .await
            .unwrap()
    );
    let err = env
        .sync_with(&repo, "kiln101", |o| o.lock_wait = Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, kiln_core::Error::Precondition(_)), "{err}");
    assert!(err.to_string().contains("kiln101"));
    assert!(!env.has_current("kiln101").await);
}
