//! One sync from start to publish: lock, early exits, walk, plan (memo and reuse), bundle and
//! upload, publish.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::StreamExt;
use kiln_chunk::key::object_key;
use kiln_chunk::retry::{RetryPolicy, retry};
use kiln_chunk::store_error::to_error;
use kiln_core::catalog::{Catalog, MemoEntry, NewVersion, PublishOutcome, VersionInfo};
use kiln_core::ids::{ChunkId, ChunkKind, ChunkRef, CourseId, VersionId};
use kiln_core::layout::{Layout, Shape};
use kiln_core::manifest::{Manifest, ManifestEntry};
use kiln_core::{Error, Result};
use kiln_publish::writer::{self, Fresh, Written};
use object_store::ObjectStore;

use crate::build::{self, Built, Job};
use crate::claims::{self, missing_objects};
use crate::lock::CourseLock;
use crate::memo;
use crate::source::{self, Oid, Opened, Source};
use crate::upload;
use crate::walk::{self, Walk};
use crate::{Progress, SyncOptions, SyncReport};
use kiln_chunk::tocs;

/// Memo keys per catalog call.
const MEMO_BATCH: usize = 500;

/// Built chunks claimed per catalog call.
const CLAIM_BATCH: usize = 64;

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::backend("kiln-sync", format!("a sync task failed: {e}"))
}

/// The previous version the walk was diffed against: its id and manifest.
struct Basis {
    version: VersionId,
    manifest: Manifest,
}

/// Runs one sync (see [`crate::sync`]).
pub(crate) async fn run(
    opts: SyncOptions,
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    progress: Arc<dyn Progress>,
) -> Result<SyncReport> {
    locked(opts, catalog, store, progress, None).await
}

/// Builds `version` of the course from the source again and uploads the objects the store
/// lacks, without publishing (repair). Fails if the source's content is not that version.
pub(crate) async fn rebuild(
    opts: SyncOptions,
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    version: VersionId,
) -> Result<SyncReport> {
    let progress: Arc<dyn Progress> = Arc::new(crate::NoProgress);
    locked(opts, catalog, store, progress, Some(&version)).await
}

/// Opens the source, takes the course's lock, and syncs (or, with `rebuild`, rebuilds
/// that version without publishing).
async fn locked(
    opts: SyncOptions,
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    progress: Arc<dyn Progress>,
    rebuild: Option<&VersionId>,
) -> Result<SyncReport> {
    let started = Instant::now();
    let opened = {
        let (path, rev, sub) = (opts.source.clone(), opts.rev.clone(), opts.subdir.clone());
        tokio::task::spawn_blocking(move || source::open(&path, rev.as_deref(), sub.as_deref()))
            .await
            .map_err(join_err)??
    };
    let course = match &opts.course {
        Some(c) => c.clone(),
        None => CourseId::new(source::default_course_name(&opts.source))?,
    };
    let lock = CourseLock::acquire(catalog.clone(), &course, opts.lock_wait).await?;
    let ctx = Ctx {
        opts: &opts,
        course: &course,
        catalog: &catalog,
        store: &store,
        progress: &progress,
        lock: &lock,
        started,
        rebuild,
    };
    let result = match rebuild {
        None => ctx.run_locked(opened).await,
        Some(_) => ctx.run_walk(opened, None).await,
    };
    lock.release().await;
    result
}

struct Ctx<'a> {
    opts: &'a SyncOptions,
    course: &'a CourseId,
    catalog: &'a Arc<dyn Catalog>,
    store: &'a Arc<dyn ObjectStore>,
    progress: &'a Arc<dyn Progress>,
    lock: &'a CourseLock,
    started: Instant,
    /// `Some(v)`: rebuild version `v` without publishing it (see [`rebuild`]).
    rebuild: Option<&'a VersionId>,
}

/// What the upload phase did (its counters) and made (the built chunks' tables of contents).
#[derive(Default)]
struct Uploaded {
    chunks: usize,
    bytes: u64,
    /// The tables of contents of the chunks built.
    tocs: Vec<(ChunkId, kiln_core::toc::Toc)>,
}

impl Ctx<'_> {
    fn report(
        &self,
        version: VersionId,
        total: usize,
        up: &Uploaded,
        outcome: PublishOutcome,
    ) -> SyncReport {
        SyncReport {
            course: self.course.clone(),
            version,
            chunks_total: total,
            chunks_uploaded: up.chunks,
            bytes_uploaded: up.bytes,
            elapsed: self.started.elapsed(),
            outcome,
            published: Written::default(),
            head_seq: 0,
            warnings: Vec::new(),
        }
    }

    async fn run_locked(&self, opened: Opened) -> Result<SyncReport> {
        let current = self.catalog.current(self.course).await?;
        if let Some(version) = &opened.version {
            // Early exits, before any bundling: the current commit again, or an older one.
            // A version synced before: if its objects are all in the store, nothing to
            // build (the current one is unchanged, an older one is published again).
            // Otherwise the full sync below stores the missing ones again.
            let known = match self.catalog.manifest(self.course, version).await {
                Ok(manifest) => Some(manifest),
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            if let Some(manifest) = known {
                let missing = missing_objects(&**self.store, &manifest).await?;
                if missing.is_empty() {
                    if current.as_ref().is_some_and(|c| &c.version == version) {
                        // Unchanged, but a version synced before kiln kept tables of
                        // contents gets its chunks' now.
                        tocs::store(&**self.catalog, &**self.store, &manifest, Vec::new()).await?;
                        let total = manifest.entries().len();
                        let none = Uploaded::default();
                        let mut report =
                            self.report(version.clone(), total, &none, PublishOutcome::Unchanged);
                        // A publish cut short after its commit is finished here.
                        let head = writer::read_head(&**self.store).await?;
                        report.head_seq = head.seq;
                        if head.course(self.course).is_none_or(|(v, _)| &v != version) {
                            let w = self.write_head(&[]).await?;
                            report.head_seq = w.head.seq;
                            report.published = w.written;
                        }
                        return Ok(report);
                    }
                    return self
                        .publish(
                            version.clone(),
                            manifest,
                            Vec::new(),
                            Uploaded::default(),
                            None,
                        )
                        .await;
                }
                tracing::warn!(
                    course = %self.course,
                    version = %version,
                    "{} objects of this version are missing from the store; storing them again",
                    missing.len()
                );
                self.catalog.memo_forget(&missing).await?;
                return self.run_walk(opened, None).await;
            }
        }
        self.run_walk(opened, current).await
    }

    /// The walk, plan, build and publish of a version whose objects are not known to be
    /// stored; `current` (if any) is the version to diff against.
    async fn run_walk(&self, opened: Opened, current: Option<VersionInfo>) -> Result<SyncReport> {
        let basis_root = match (&opened.git, &current) {
            (Some(git), Some(cur)) => self
                .basis_root(git.clone(), &cur.version)
                .await?
                .map(|root| (root, cur.version.clone())),
            _ => None,
        };
        let walk = {
            let (source, layout) = (opened.source.clone(), self.opts.layout.clone());
            let old_root = basis_root.as_ref().map(|b| b.0);
            async move {
                tokio::task::spawn_blocking(move || {
                    let mut reader = source.reader()?;
                    walk::walk(&layout, &mut *reader, source.root_id(), old_root)
                })
                .await
                .map_err(join_err)?
            }
        };
        // The previous manifest loads while the walk runs: on a large course both take a while.
        let previous = async {
            match &basis_root {
                Some((_, v)) => self.catalog.manifest(self.course, v).await.map(Some),
                None => Ok(None),
            }
        };
        let (walked, previous) = tokio::join!(walk, previous);
        let walked = walked?;
        let basis = match (basis_root, previous?) {
            (Some((_, version)), Some(manifest)) => Some(Basis { version, manifest }),
            _ => None,
        };
        tracing::debug!(elapsed = ?self.started.elapsed(), reused = walked.reused.len(), "walked");
        check_root(&self.opts.layout, &walked, &*opened.source)?;
        let (mut entries, jobs) = self.plan_held(&walked, basis.as_ref()).await?;
        tracing::debug!(elapsed = ?self.started.elapsed(), jobs = jobs.len(), "planned");
        let (built, up) = self.build_and_upload(opened.source.clone(), jobs).await?;
        tracing::debug!(elapsed = ?self.started.elapsed(), uploaded = up.chunks, "uploaded");
        let mut memo = Vec::new();
        for (entry, key) in built {
            if let Some(key) = key {
                memo.push((
                    key,
                    MemoEntry {
                        id: entry.id,
                        size: entry.size,
                    },
                ));
            }
            entries.push(entry);
        }
        let manifest = Manifest::new(entries)?;
        let version = match opened.version {
            Some(v) => {
                memo.push((memo::basis(self.course, &v), fingerprint(self.opts)));
                v
            }
            None => dir_version(&manifest)?,
        };
        let mut report = self
            .publish(version, manifest, memo, up, basis.as_ref())
            .await?;
        report.warnings = opened.source.warnings().to_vec();
        Ok(report)
    }

    async fn publish(
        &self,
        version: VersionId,
        manifest: Manifest,
        memo: Vec<(String, MemoEntry)>,
        mut up: Uploaded,
        basis: Option<&Basis>,
    ) -> Result<SyncReport> {
        self.lock.confirm().await?;
        if self.rebuild.is_none() {
            let made = std::mem::take(&mut up.tocs);
            let (catalog, store) = (&**self.catalog, &**self.store);
            match basis {
                Some(b) => tocs::store_after(catalog, store, &manifest, made, &b.manifest).await?,
                None => tocs::store(catalog, store, &manifest, made).await?,
            };
        }
        if let Some(want) = self.rebuild {
            if &version != want {
                return Err(Error::invalid(format!(
                    "the source of course {} is version {version} now, not {want}",
                    self.course
                )));
            }
            let total = manifest.entries().len();
            return Ok(self.report(version, total, &up, PublishOutcome::Unchanged));
        }
        for batch in memo.chunks(MEMO_BATCH) {
            self.catalog.memo_put(batch).await?;
        }
        let total = manifest.entries().len();
        let new = NewVersion {
            course: self.course.clone(),
            version: version.clone(),
            manifest,
        };
        let basis = basis.map(|b| writer::Basis {
            version: &b.version,
            manifest: &b.manifest,
        });
        let owner = self.lock.owner();
        let done = writer::publish(&**self.catalog, self.store, owner, new, basis).await?;
        let mut report = self.report(version, total, &up, done.outcome);
        report.published = done.written;
        report.head_seq = done.head.seq;
        Ok(report)
    }

    /// Rewrites the published head, as the holder of the course's lock.
    async fn write_head(&self, fresh: &[Fresh]) -> Result<writer::HeadWrite> {
        writer::write_head(&**self.catalog, self.store, self.lock.owner(), fresh).await
    }

    /// The course root tree of the previous version to diff against, if it was synced from
    /// this repository with the same subdirectory and layout (its basis memo entry says so)
    /// and is still readable.
    async fn basis_root(
        &self,
        git: Arc<source::git::GitSource>,
        previous: &VersionId,
    ) -> Result<Option<Oid>> {
        let key = memo::basis(self.course, previous);
        let memo = self.catalog.memo_get(std::slice::from_ref(&key)).await?;
        if memo.get(&key) != Some(&fingerprint(self.opts)) {
            return Ok(None);
        }
        let hex = previous.as_str().to_string();
        tokio::task::spawn_blocking(move || git.root_of(&hex))
            .await
            .map_err(join_err)
    }

    /// [`Ctx::plan`], with every memoised chunk claimed (see [`crate::claims`]): a memo hit
    /// whose object a gc is deleting is planned again (gc forgot its memo entry, so it
    /// becomes a job).
    async fn plan_held(
        &self,
        walked: &Walk,
        basis: Option<&Basis>,
    ) -> Result<(Vec<ManifestEntry>, Vec<Job>)> {
        let mut attempts = 0;
        loop {
            let (entries, jobs, used) = self.plan(walked, basis).await?;
            if claims::hold_memo(&**self.catalog, self.lock.owner(), &used).await? {
                return Ok((entries, jobs));
            }
            attempts += 1;
            if attempts >= claims::ATTEMPTS {
                return Err(Error::Precondition(format!(
                    "course {}: a concurrent gc kept deleting chunks this sync reuses; try again",
                    self.course
                )));
            }
        }
    }

    /// Splits the course's chunks into known entries (reused or memoised) and jobs to build;
    /// also returns the memo entries it relied on.
    async fn plan(
        &self,
        walked: &Walk,
        basis: Option<&Basis>,
    ) -> Result<(Vec<ManifestEntry>, Vec<Job>, Vec<(String, ChunkId)>)> {
        let mut used = Vec::new();
        let mut entries = Vec::new();
        if let Some(b) = basis {
            entries.extend(reused_entries(&b.manifest, &walked.reused));
        }
        let mut keys: Vec<String> = walked
            .dir_chunks
            .iter()
            .filter_map(|c| c.tree.map(memo::git))
            .collect();
        let kinds: BTreeSet<ChunkKind> = walked
            .members
            .keys()
            .chain(walked.old_members.keys())
            .copied()
            .chain(basis.iter().flat_map(|b| {
                b.manifest
                    .entries()
                    .iter()
                    .filter(|e| e.is_gathered())
                    .map(|e| e.kind)
            }))
            .collect();
        let empty = Vec::new();
        let mut gathered_keys = HashMap::new();
        if basis.is_none() {
            for kind in &kinds {
                let members = walked.members.get(kind).unwrap_or(&empty);
                if let Some(k) = build::members_key(*kind, members) {
                    keys.push(k.clone());
                    gathered_keys.insert(*kind, k);
                }
            }
        }
        let mut memo = HashMap::new();
        keys.sort();
        keys.dedup();
        for batch in keys.chunks(MEMO_BATCH) {
            memo.extend(self.catalog.memo_get(batch).await?);
        }
        let mut gathered_jobs = Vec::new();
        for kind in kinds {
            let new = walked.members.get(&kind).unwrap_or(&empty);
            let Some(b) = basis else {
                if new.is_empty() {
                    continue;
                }
                let key = gathered_keys.remove(&kind);
                match key.as_ref().and_then(|k| memo.get(k).map(|m| (k, m))) {
                    Some((k, m)) => {
                        used.push((k.clone(), m.id));
                        entries.push(gathered_entry(kind, m.id, m.size));
                    }
                    None => gathered_jobs.push(Job::Gathered {
                        kind,
                        members: new.clone(),
                        memo_key: key,
                    }),
                }
                continue;
            };
            let old = walked.old_members.get(&kind).unwrap_or(&empty);
            let old_entry = b.manifest.get(&ChunkRef {
                kind,
                name: String::new(),
            });
            match old_entry {
                Some(e) if build::same_members(new, old) => entries.push(e.clone()),
                None if new.is_empty() => {}
                // No previous chunk of this kind: every member is in the walked part.
                None => gathered_jobs.push(Job::Gathered {
                    kind,
                    members: new.clone(),
                    memo_key: None,
                }),
                Some(e) => {
                    let key = object_key(&e.id);
                    let get = || async { self.store.get(&key).await?.bytes().await };
                    let got = retry(&RetryPolicy::STORE, get).await.map_err(|err| {
                        to_error(&format!("reading the previous {kind} bundle {key}"), err)
                    })?;
                    gathered_jobs.push(Job::Patch {
                        kind,
                        old_id: e.id,
                        old: got,
                        remove: old.iter().map(|m| m.path.clone()).collect(),
                        add: new.clone(),
                    });
                }
            }
        }
        // Gathered chunks first: they are the largest single jobs.
        let mut jobs = gathered_jobs;
        for c in &walked.dir_chunks {
            let key = c.tree.map(memo::git);
            match key.and_then(|k| memo.get(&k).map(|m| (k, m))) {
                Some((k, m)) => {
                    used.push((k, m.id));
                    entries.push(ManifestEntry {
                        kind: c.kind,
                        name: c.name.clone(),
                        id: m.id,
                        size: m.size,
                        root: c.root.clone(),
                    })
                }
                None => jobs.push(Job::Dir(c.clone())),
            }
        }
        Ok((entries, jobs, used))
    }

    /// Bundles `jobs` on worker threads and uploads each result as it comes, with bounded
    /// parallelism; returns the new entries with their memo keys.
    async fn build_and_upload(
        &self,
        source: Arc<dyn Source>,
        jobs: Vec<Job>,
    ) -> Result<(Vec<(ManifestEntry, Option<String>)>, Uploaded)> {
        let threads = self
            .opts
            .bundle_threads
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(2, |n| n.get());
        self.progress.start(jobs.len() as u64);
        let (tx, rx) = tokio::sync::mpsc::channel(threads * 2);
        let cancel = Arc::new(AtomicBool::new(false));
        build::spawn(
            source,
            jobs,
            threads,
            self.opts.max_file_size,
            tx,
            cancel.clone(),
        );
        let results =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        let store = self.store.clone();
        let (catalog, owner) = (self.catalog.clone(), self.lock.owner().to_string());
        // Each built chunk is claimed before the upload looks for its object (see
        // `crate::claims`), a few at a time to keep catalog round trips few.
        let claimed = results
            .ready_chunks(CLAIM_BATCH)
            .then(move |batch: Vec<Result<Built>>| {
                let (catalog, owner) = (catalog.clone(), owner.clone());
                async move { claims::claim_built(&*catalog, &owner, batch).await }
            })
            .flat_map(futures::stream::iter);
        let mut uploads = std::pin::pin!(
            claimed
                .map(|r: Result<(Built, bool)>| {
                    let (store, catalog) = (store.clone(), self.catalog.clone());
                    let owner = self.lock.owner().to_string();
                    async move {
                        let (b, marked) = r?;
                        if marked {
                            claims::wait_unmarked(&*catalog, &owner, b.id).await?;
                        }
                        let n = upload::upload(&*store, b.id, b.data).await?;
                        let entry = ManifestEntry {
                            kind: b.kind,
                            name: b.name,
                            id: b.id,
                            size: b.size,
                            root: b.root,
                        };
                        Ok::<_, Error>((entry, b.memo_key, b.files, n, b.toc))
                    }
                })
                .buffer_unordered(self.opts.upload_concurrency.get())
        );
        let mut out = Vec::new();
        let mut up = Uploaded::default();
        while let Some(r) = uploads.next().await {
            match r {
                Ok((entry, key, files, n, toc)) => {
                    up.tocs.push((entry.id, toc));
                    if n > 0 {
                        up.chunks += 1;
                        up.bytes += n;
                    }
                    // A gathered chunk whose every member went away is no chunk.
                    if files > 0 || !entry.is_gathered() {
                        out.push((entry, key));
                    }
                    self.progress.inc(1);
                }
                Err(e) => {
                    cancel.store(true, Ordering::SeqCst);
                    self.progress.finish();
                    return Err(e);
                }
            }
        }
        self.progress.finish();
        Ok((out, up))
    }
}

fn gathered_entry(kind: ChunkKind, id: ChunkId, size: u64) -> ManifestEntry {
    ManifestEntry {
        kind,
        name: String::new(),
        id,
        size,
        root: String::new(),
    }
}

/// The previous manifest's directory chunks at or below each reused path.
fn reused_entries(old: &Manifest, reused: &[String]) -> Vec<ManifestEntry> {
    let mut dirs: Vec<&ManifestEntry> = old.entries().iter().filter(|e| !e.is_gathered()).collect();
    dirs.sort_by(|a, b| a.root.cmp(&b.root));
    let mut out = Vec::new();
    for p in reused {
        if p.is_empty() {
            out.extend(dirs.iter().map(|e| (*e).clone()));
            continue;
        }
        let below = format!("{p}/");
        // Every root at or below `p` sorts in [p, p + '0'): '0' follows '/'.
        let end = format!("{p}0");
        let start = dirs.partition_point(|e| e.root.as_str() < p.as_str());
        for e in &dirs[start..] {
            if e.root.as_str() >= end.as_str() {
                break;
            }
            if e.root == *p || e.root.starts_with(&below) {
                out.push((*e).clone());
            }
        }
    }
    out
}

/// The file whose presence at the root marks a course: the layout's root-level, literal
/// files rule (`infoCourse.json` for PrairieLearn).
fn course_marker(layout: &Layout) -> Option<&str> {
    layout.rules.iter().find_map(|r| match &r.shape {
        Shape::Files(g) if r.root.is_empty() && !g.0.contains('*') => Some(g.0.as_str()),
        _ => None,
    })
}

fn check_root(layout: &Layout, walked: &Walk, source: &dyn Source) -> Result<()> {
    let Some(names) = &walked.root_names else {
        return Ok(());
    };
    if names.is_empty() {
        return Err(Error::invalid(format!(
            "course {} is empty: no files to sync",
            source.describe()
        )));
    }
    if let Some(marker) = course_marker(layout)
        && !names.iter().any(|n| n == marker)
    {
        return Err(Error::invalid(format!(
            "no {marker} in {}: not a course root (is it in a subdirectory? use --subdir)",
            source.describe()
        )));
    }
    Ok(())
}

/// What makes two syncs comparable: the subdirectory, the layout and the bundle format.
fn fingerprint(opts: &SyncOptions) -> MemoEntry {
    let text = format!(
        "kiln-sync basis 1\n{:?}\n{:?}\n{}",
        opts.subdir.as_deref().map(|s| s.trim_matches('/')),
        opts.layout,
        kiln_chunk::bundle::ZSTD_LEVEL
    );
    let id = ChunkId(*blake3::hash(text.as_bytes()).as_bytes());
    MemoEntry { id, size: 0 }
}

/// A directory's version id: `dir-` and a hash of its manifest.
fn dir_version(m: &Manifest) -> Result<VersionId> {
    let mut h = blake3::Hasher::new();
    for e in m.entries() {
        h.update(format!("{}\t{}\t{}\t{}\t{}\n", e.kind, e.name, e.id, e.size, e.root).as_bytes());
    }
    VersionId::new(format!("dir-{}", &h.finalize().to_hex()[..40]))
}
