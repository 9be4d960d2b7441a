//! [`ChunkCache`]: ensure chunks of a version are on disk, pin them while in use, evict
//! under a byte budget, and remove old version directories.
//!
//! The cache owns the index and the budget: it makes room before a fetch, hands the fetch to
//! [`crate::fetch::Fetcher`] (which knows the store and the disk, not the index), and
//! records what the fetcher installed and evicts after it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt;
use kiln_core::content::ContentView;
use kiln_core::ids::{ChunkId, ChunkRef, CourseId, VersionId};
use kiln_core::manifest::{Manifest, ManifestEntry};
use kiln_core::{Error, Result};
use object_store::ObjectStore;

use crate::config::LoadConfig;
use crate::fetch::Fetcher;
use crate::fsutil::blocking;
use crate::health::{Backend, Health};
use crate::index::{FetchFuture, Index, Key};
use crate::lease::Leases;
use crate::links;
use crate::metrics::{Metrics, MetricsSnapshot, inc};
use crate::paths::Paths;
use crate::{fsutil, recover};

/// The local chunk cache of one process. Cheap to clone; clones share everything.
///
/// Several processes may share one cache directory: a chunk is then still downloaded once
/// (a per-chunk file lock), but each process keeps its own budget and pins, so run one
/// evicting process per cache directory.
#[derive(Clone)]
pub struct ChunkCache {
    inner: Arc<Inner>,
}

/// Shared state of a [`ChunkCache`].
pub(crate) struct Inner {
    pub(crate) config: LoadConfig,
    pub(crate) paths: Paths,
    pub(crate) content: Arc<dyn ContentView>,
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) metrics: Metrics,
    index: Mutex<Index>,
    leases: Mutex<Leases>,
    pub(crate) currents: Mutex<HashMap<CourseId, (VersionId, Instant)>>,
    pub(crate) refreshing: Mutex<HashSet<CourseId>>,
    pub(crate) health: Health,
    manifests: Mutex<HashMap<(CourseId, VersionId), Arc<Manifest>>>,
    /// Ensures in flight (prefetching waits for none).
    pub(crate) in_flight: std::sync::atomic::AtomicUsize,
    /// Chunks prefetched that no request has used yet.
    pub(crate) prefetched: Mutex<HashSet<Key>>,
    stale_since: Mutex<HashMap<(CourseId, VersionId), Instant>>,
}

impl Inner {
    /// A request found a chunk present: if a prefetch brought it, count it used.
    fn note_use(&self, course: &CourseId, id: &ChunkId) {
        let mut p = lock(&self.prefetched);
        if !p.is_empty() && p.remove(&(course.clone(), *id)) {
            inc(&self.metrics.prefetch_used);
        }
    }
}

/// Chunks of one version made present, and pinned until this value is dropped.
#[derive(Debug)]
pub struct Ensured {
    /// The course.
    pub course: CourseId,
    /// The version every chunk was taken from.
    pub version: VersionId,
    /// Set when the current version was asked for and the catalog could not answer: how
    /// long ago the catalog last confirmed `version` as current (at most `max_stale`).
    pub stale: Option<Duration>,
    /// The version directory: read `<root>/<course-relative path>`.
    pub root: PathBuf,
    /// Per requested chunk the version has, in the order asked, its directory inside `root`
    /// (`<root>/.kiln/<kind>` for a gathered chunk).
    pub paths: Vec<PathBuf>,
    /// Per requested chunk the version has, its manifest entry (parallel to `paths`).
    pub chunks: Vec<ManifestEntry>,
    /// The requested chunks the version does not have, in the order asked: only kinds that
    /// may be absent ([`ChunkKind::may_be_absent`]; a missing question fails the call).
    /// Nothing is on disk for them: the directory they would be at does not exist.
    ///
    /// [`ChunkKind::may_be_absent`]: kiln_core::ids::ChunkKind::may_be_absent
    pub absent: Vec<ChunkRef>,
    /// The chunks this call downloaded (not those found present or fetched by others).
    pub downloaded: Vec<ChunkRef>,
    /// Keeps the chunks and the version directory from removal while held.
    pub pin: Pin,
}

/// The version one call reads, and its manifest (see [`ChunkCache::at`]).
pub(crate) struct At {
    /// The version.
    pub(crate) version: VersionId,
    /// Set when the current version was asked for and the catalog could not answer.
    pub(crate) stale: Option<Duration>,
    /// Its manifest.
    pub(crate) manifest: Arc<Manifest>,
}

/// Pins chunks and a version directory; dropping it releases them.
pub struct Pin {
    inner: Arc<Inner>,
    course: CourseId,
    version: VersionId,
    chunks: Vec<ChunkId>,
}

impl Pin {
    /// Whether this pin was made by `cache` (or a clone of it).
    pub(crate) fn belongs_to(&self, cache: &ChunkCache) -> bool {
        Arc::ptr_eq(&self.inner, &cache.inner)
    }

    /// The chunks it keeps, as the index knows them.
    pub(crate) fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.chunks.iter().map(|id| (self.course.clone(), *id))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pin")
            .field("course", &self.course)
            .field("version", &self.version)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let budget = self.inner.config.budget_bytes;
        let trash = {
            let mut ix = self.inner.index();
            ix.unpin_version(&self.course, &self.version);
            let mut key = (self.course.clone(), ChunkId([0; 32]));
            for id in &self.chunks {
                key.1 = *id;
                ix.unpin(&key);
            }
            // Chunks that were pinned may have kept the cache over budget.
            if ix.total > budget {
                self.inner.evict_locked(&mut ix, budget)
            } else {
                Vec::new()
            }
        };
        self.inner.dispose(trash);
    }
}

impl fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkCache")
            .field("cache_dir", &self.inner.config.cache_dir)
            .field("content", &format_args!("{}", self.inner.content))
            .field("store", &format_args!("{}", self.inner.store))
            .finish()
    }
}

/// What one [`ChunkCache::maintain`] pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintained {
    /// Version directories removed.
    pub versions_removed: u64,
    /// Chunk directories evicted.
    pub chunks_evicted: u64,
}

impl ChunkCache {
    /// Opens the cache directory (creating it): empties staging of abandoned work, rebuilds
    /// the index from the chunk directories on disk, and evicts down to the budget.
    pub async fn open(
        config: LoadConfig,
        content: Arc<dyn ContentView>,
        store: Arc<dyn ObjectStore>,
    ) -> Result<ChunkCache> {
        let dir = config.cache_dir.clone();
        let what = format!("opening the cache directory {}", dir.display());
        let (paths, found) = blocking(what, move || recover::recover(&dir)).await?;
        // Sync accepts course paths that fit below a cache directory of at most this length
        // (kiln-core's `path_limits`); a longer one could not hold them.
        let root = paths.root().as_os_str().len();
        if root > kiln_core::path_limits::MAX_CACHE_DIR_BYTES {
            return Err(Error::invalid(format!(
                "cache directory {} is {root} bytes long, over the {} that leave room below it \
                 for the course paths sync accepts: choose a shorter one",
                paths.root().display(),
                kiln_core::path_limits::MAX_CACHE_DIR_BYTES
            )));
        }
        let mut index = Index::default();
        for (key, size) in found {
            index.insert_present(&key, size);
        }
        let inner = Arc::new(Inner {
            config,
            paths,
            content,
            store,
            metrics: Metrics::default(),
            index: Mutex::new(index),
            leases: Mutex::new(Leases::default()),
            currents: Mutex::new(HashMap::new()),
            refreshing: Mutex::new(HashSet::new()),
            health: Health::default(),
            manifests: Mutex::new(HashMap::new()),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            prefetched: Mutex::new(HashSet::new()),
            stale_since: Mutex::new(HashMap::new()),
        });
        let trash = {
            let mut ix = inner.index();
            inner.evict_locked(&mut ix, inner.config.budget_bytes)
        };
        inner.dispose(trash);
        Ok(ChunkCache { inner })
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &LoadConfig {
        &self.inner.config
    }

    /// What it reads current versions, manifests and tables of contents from: the
    /// published view in the store (a server), or the catalog itself.
    pub fn content(&self) -> &Arc<dyn ContentView> {
        &self.inner.content
    }

    /// The object store it downloads chunks from.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// Ensures `chunks` of the course's current version: the current version is resolved
    /// once and every chunk comes from its manifest.
    ///
    /// A requested chunk the version lacks is listed in [`Ensured::absent`] when its kind
    /// may be absent (a course without `elementExtensions/`), and fails the whole call with
    /// `NotFound` when it is a question.
    pub async fn ensure(&self, course: &CourseId, chunks: &[ChunkRef]) -> Result<Ensured> {
        self.timed(self.ensure_inner(course, None, chunks)).await
    }

    /// Ensures `chunks` of a given version of the course; absent chunks as in [`Self::ensure`].
    pub async fn ensure_at(
        &self,
        course: &CourseId,
        version: &VersionId,
        chunks: &[ChunkRef],
    ) -> Result<Ensured> {
        self.timed(self.ensure_inner(course, Some(version), chunks))
            .await
    }

    /// Runs an ensure-like call, recording its latency.
    pub(crate) async fn timed<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        let started = Instant::now();
        let in_flight = &self.inner.in_flight;
        in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = f.await;
        in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.metrics.ensure_latency.observe(started.elapsed());
        r
    }

    async fn ensure_inner(
        &self,
        course: &CourseId,
        version: Option<&VersionId>,
        chunks: &[ChunkRef],
    ) -> Result<Ensured> {
        let at = self.at(course, version).await?;
        let mut entries = Vec::with_capacity(chunks.len());
        let mut absent = Vec::new();
        for c in chunks {
            match at.manifest.get(c) {
                Some(e) => entries.push(e.clone()),
                None if c.kind.may_be_absent() => absent.push(c.clone()),
                None => {
                    return Err(Error::not_found(format!(
                        "chunk {c} in version {} of course {course}",
                        at.version
                    )));
                }
            }
        }
        let mut ensured = self.ensure_entries(course, &at, entries).await?;
        ensured.absent = absent;
        Ok(ensured)
    }

    /// The version a call reads, resolved once: `version` if it names one, else the
    /// course's current version (and how stale it is); with its manifest. Every call that
    /// reads a version (ensure, resolve_file) starts here.
    pub(crate) async fn at(&self, course: &CourseId, version: Option<&VersionId>) -> Result<At> {
        let (version, stale) = match version {
            Some(v) => (v.clone(), None),
            None => {
                let c = self.current(course).await?;
                (c.version, c.stale)
            }
        };
        let manifest = self.manifest(course, &version).await?;
        Ok(At {
            version,
            stale,
            manifest,
        })
    }

    /// Pins and fetches manifest entries of the version `at`, then links them.
    ///
    /// The index is a belief about the disk, and the disk is disposable: someone may delete
    /// the cache directory, a chunk directory or a version directory under a running
    /// process. So a chunk the index holds present is checked on disk (one `stat`) once it
    /// is pinned, and fetched again if it is gone; links are checked the same way and made
    /// again where missing.
    pub(crate) async fn ensure_entries(
        &self,
        course: &CourseId,
        at: &At,
        entries: Vec<ManifestEntry>,
    ) -> Result<Ensured> {
        let (version, manifest) = (at.version.clone(), &at.manifest);
        self.expire_leases();
        let mut pin = Pin {
            inner: self.inner.clone(),
            course: course.clone(),
            version: version.clone(),
            chunks: Vec::with_capacity(entries.len()),
        };
        let mut waits: Vec<(usize, FetchFuture, bool)> = Vec::new();
        let mut believed = Vec::new();
        {
            let mut ix = self.inner.index();
            ix.pin_version(course, &version);
            for (i, e) in entries.iter().enumerate() {
                let key: Key = (course.clone(), e.id);
                let present = ix.pin(&key).present;
                pin.chunks.push(e.id);
                if present {
                    believed.push(i);
                } else {
                    inc(&self.inner.metrics.misses);
                    waits.push(self.join_or_fetch(&mut ix, &key, i, e));
                }
            }
        }
        // Pinned: nothing in this process removes these chunks now, so a missing directory
        // was removed from outside.
        let gone: Vec<usize> = believed
            .into_iter()
            .filter(|&i| {
                let there = self.inner.paths.chunk_dir(course, &entries[i].id).is_dir();
                if there {
                    inc(&self.inner.metrics.hits);
                    self.inner.note_use(course, &entries[i].id);
                }
                !there
            })
            .collect();
        if !gone.is_empty() {
            let mut ix = self.inner.index();
            for i in gone {
                let e = &entries[i];
                let key: Key = (course.clone(), e.id);
                // Looked at again under the lock: a concurrent request may have seen the
                // same hole and fetched the chunk back already.
                if ix.is_present(&key) && self.inner.paths.chunk_dir(course, &e.id).is_dir() {
                    inc(&self.inner.metrics.hits);
                    continue;
                }
                tracing::warn!(%course, chunk = %e.chunk_ref(), id = %e.id, "chunk directory missing on disk; fetching it again");
                inc(&self.inner.metrics.misses);
                inc(&self.inner.metrics.healed);
                ix.forget_present(&key);
                waits.push(self.join_or_fetch(&mut ix, &key, i, e));
            }
        }
        let mut downloaded = Vec::new();
        for (i, f, started) in waits {
            let did = f.await.map_err(|e| clone_error(&e))?;
            if started && did {
                downloaded.push(entries[i].chunk_ref());
            }
        }
        let root = self.inner.paths.version_dir(course, &version);
        let to_link: Vec<ManifestEntry> = {
            let ix = self.inner.index();
            entries
                .iter()
                .filter(|e| {
                    !ix.is_linked(course, &version, &e.id)
                        || std::fs::symlink_metadata(links::chunk_path(&root, e)).is_err()
                })
                .cloned()
                .collect()
        };
        if !to_link.is_empty() {
            let (paths, m, c, dir) = (
                self.inner.paths.clone(),
                manifest.clone(),
                course.clone(),
                root.clone(),
            );
            let linked = to_link.clone();
            let what = format!(
                "linking {} of course {course} into version {version}",
                chunk_list(&to_link)
            );
            blocking(what, move || {
                for e in &linked {
                    links::link_chunk(&dir, &paths.chunk_dir(&c, &e.id), &m, e)?;
                }
                Ok(())
            })
            .await?;
            let mut ix = self.inner.index();
            for e in to_link {
                ix.mark_linked(course, &version, e.id);
            }
        }
        Ok(Ensured {
            course: course.clone(),
            paths: entries
                .iter()
                .map(|e| links::chunk_path(&root, e))
                .collect(),
            root,
            version,
            stale: at.stale,
            chunks: entries,
            absent: Vec::new(),
            downloaded,
            pin,
        })
    }

    /// Joins the fetch of a chunk that is not present, or starts it; `true` when started.
    fn join_or_fetch(
        &self,
        ix: &mut Index,
        key: &Key,
        i: usize,
        e: &ManifestEntry,
    ) -> (usize, FetchFuture, bool) {
        let slot = ix.slot_mut(key);
        match &slot.inflight {
            Some(f) => (i, f.clone(), false),
            None => {
                let f = self.spawn_fetch(&key.0, e);
                slot.inflight = Some(f.clone());
                (i, f, true)
            }
        }
    }

    /// Starts the one fetch of a chunk; runs as its own task so that a cancelled request
    /// does not cancel the download others wait for.
    fn spawn_fetch(&self, course: &CourseId, e: &ManifestEntry) -> FetchFuture {
        let inner = self.inner.clone();
        let (course, e) = (course.clone(), e.clone());
        let task = tokio::spawn(async move {
            inner.make_room(e.size);
            let r = inner.fetcher().fetch(&course, &e).await;
            let key = (course, e.id);
            let trash = {
                let mut ix = inner.index();
                match &r {
                    Ok(f) => {
                        ix.insert_present(&key, f.size);
                        inner.evict_locked(&mut ix, inner.config.budget_bytes)
                    }
                    Err(_) => {
                        ix.fetch_failed(&key);
                        Vec::new()
                    }
                }
            };
            inner.dispose(trash);
            r.map(|f| f.downloaded).map_err(Arc::new)
        });
        async move {
            match task.await {
                Ok(r) => r,
                Err(e) => Err(Arc::new(Error::backend("kiln-load", e))),
            }
        }
        .boxed()
        .shared()
    }

    /// A version's manifest, read from the catalog once (a version never changes).
    pub async fn manifest(&self, course: &CourseId, version: &VersionId) -> Result<Arc<Manifest>> {
        let key = (course.clone(), version.clone());
        if let Some(m) = lock(&self.inner.manifests).get(&key) {
            return Ok(m.clone());
        }
        let m = self.inner.content.manifest(course, version).await;
        let m = Arc::new(self.inner.health.record(Backend::Catalog, m)?);
        let mut manifests = lock(&self.inner.manifests);
        // A bound, not an LRU: manifests are cheap to read again.
        if manifests.len() >= 1024 {
            manifests.clear();
        }
        manifests.insert(key, m.clone());
        Ok(m)
    }

    /// The counters, read now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.expire_leases();
        let (bytes, count) = {
            let ix = self.inner.index();
            (ix.total, ix.present_count())
        };
        let leases = self.inner.leases().len() as u64;
        self.inner
            .metrics
            .snapshot(bytes, count, self.inner.config.budget_bytes, leases)
    }

    /// One maintenance pass: removes version directories that have not been current for
    /// `version_grace` and that no request pins, and evicts chunks down to the budget.
    pub async fn maintain(&self) -> Result<Maintained> {
        self.expire_leases();
        let mut out = Maintained::default();
        let courses_dir = self.inner.paths.courses();
        let listing = blocking("listing the cache's version directories", move || {
            recover::list_versions(&courses_dir)
        })
        .await?;
        let now = Instant::now();
        for (course, versions) in listing {
            let current = match self.refresh_now(&course).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(%course, "maintenance: cannot read the current version: {e}");
                    continue;
                }
            };
            for version in versions {
                let key = (course.clone(), version.clone());
                if current.as_ref() == Some(&version) {
                    lock(&self.inner.stale_since).remove(&key);
                    continue;
                }
                let since = *lock(&self.inner.stale_since)
                    .entry(key.clone())
                    .or_insert(now);
                if now.duration_since(since) < self.inner.config.version_grace {
                    continue;
                }
                let dir = self.inner.paths.version_dir(&course, &version);
                let trash = {
                    let mut ix = self.inner.index();
                    if ix.version_pinned(&course, &version) {
                        continue;
                    }
                    ix.forget_version(&course, &version);
                    // Renamed away under the lock: a request that comes next relinks.
                    let to = self.inner.paths.trash("version");
                    match fsutil::rename_into(&dir, &to) {
                        Ok(()) => Some(to),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                        Err(e) => {
                            tracing::warn!(dir = %dir.display(), "cannot remove version directory: {e}");
                            None
                        }
                    }
                };
                lock(&self.inner.stale_since).remove(&key);
                lock(&self.inner.manifests).remove(&key);
                if let Some(t) = trash {
                    out.versions_removed += 1;
                    inc(&self.inner.metrics.versions_removed);
                    let what = format!("removing version {version} of course {course}");
                    blocking(what, move || fsutil::remove_tree(&t)).await?;
                }
            }
        }
        let trash = {
            let mut ix = self.inner.index();
            self.inner
                .evict_locked(&mut ix, self.inner.config.budget_bytes)
        };
        out.chunks_evicted = trash.len() as u64;
        self.inner.dispose(trash);
        Ok(out)
    }

    /// Runs [`ChunkCache::maintain`] every `maintain_interval` and ends expired leases every
    /// second, forever (abort the task to stop it).
    pub async fn maintain_forever(self) {
        let every = self.inner.config.maintain_interval;
        let mut tick = tokio::time::interval(every.min(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = None::<Instant>;
        loop {
            tick.tick().await;
            if last.is_some_and(|t| t.elapsed() < every) {
                self.expire_leases();
                continue;
            }
            last = Some(Instant::now());
            if let Err(e) = self.maintain().await {
                tracing::warn!("cache maintenance failed: {e}");
            }
        }
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }
}

impl Inner {
    /// The index, also after a panic elsewhere: its sections leave it consistent.
    pub(crate) fn index(&self) -> MutexGuard<'_, Index> {
        lock(&self.index)
    }

    /// The live leases (never taken while holding the index lock).
    pub(crate) fn leases(&self) -> MutexGuard<'_, Leases> {
        lock(&self.leases)
    }

    /// The fetcher of this cache's chunks, over its store and directory.
    fn fetcher(&self) -> Fetcher<'_> {
        Fetcher {
            store: &*self.store,
            paths: &self.paths,
            metrics: &self.metrics,
            health: &self.health,
            retry: self.config.retry_policy(),
        }
    }

    /// Evicts least recently used unpinned chunks until at most `target` bytes are present.
    /// Each victim is renamed into staging while the lock is held, so its directory is gone
    /// before any request can pin it again; the returned trash is deleted later.
    fn evict_locked(&self, ix: &mut Index, target: u64) -> Vec<PathBuf> {
        let mut trash = Vec::new();
        for ((course, id), _) in ix.take_victims(target) {
            let dir = self.paths.chunk_dir(&course, &id);
            let to = self.paths.trash("chunk");
            let moved = fsutil::unseal(&dir).and_then(|()| fsutil::rename_into(&dir, &to));
            match moved {
                Ok(()) => {
                    inc(&self.metrics.evictions);
                    trash.push(to);
                }
                // Removed from outside already: what eviction wanted.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => {
                    inc(&self.metrics.evictions);
                }
                Err(e) => tracing::warn!(dir = %dir.display(), "cannot evict chunk: {e}"),
            }
        }
        trash
    }

    /// Makes room for a chunk before it is fetched. `size` is its bundle's tar size, all that
    /// is known before it is unpacked: the disk usage it is recorded with after the fetch is
    /// more (blocks and inodes), and the eviction after the fetch makes up the difference.
    fn make_room(&self, size: u64) {
        let target = self.config.budget_bytes.saturating_sub(size);
        let trash = {
            let mut ix = self.index();
            self.evict_locked(&mut ix, target)
        };
        self.dispose(trash);
    }

    /// Deletes evicted directories off the async threads (inline without a runtime).
    pub(crate) fn dispose(&self, trash: Vec<PathBuf>) {
        if trash.is_empty() {
            return;
        }
        let work = move || {
            for t in trash {
                if let Err(e) = fsutil::remove_tree(&t) {
                    tracing::warn!(path = %t.display(), "cannot delete evicted directory: {e}");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(work);
            }
            Err(_) => work(),
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section in this crate leaves its data consistent, so a panic in one
    // (a bug) must not take every later request down with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Chunks named for a message: `chunk question:q1 (<id>)`, or the first of several and
/// how many more.
fn chunk_list(entries: &[ManifestEntry]) -> String {
    match entries {
        [] => "no chunk".into(),
        [e] => format!("chunk {} ({})", e.chunk_ref(), e.id),
        [e, rest @ ..] => format!(
            "chunks {} ({}) and {} more",
            e.chunk_ref(),
            e.id,
            rest.len()
        ),
    }
}

/// A copy of a shared fetch error for each request that waited for it.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::NotFound { what } => Error::NotFound { what: what.clone() },
        Error::InvalidInput(m) => Error::InvalidInput(m.clone()),
        Error::Precondition(m) => Error::Precondition(m.clone()),
        Error::Upstream(m) => Error::Upstream(m.clone()),
        Error::Limit { kind, message } => Error::Limit {
            kind: *kind,
            message: message.clone(),
        },
        Error::AlreadyExists { what } => Error::AlreadyExists { what: what.clone() },
        Error::Unavailable { what, source } => Error::Unavailable {
            what: what.clone(),
            source: source.to_string().into(),
        },
        Error::Disk { what, source } => Error::Disk {
            what: what.clone(),
            source: match source.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(source.kind(), source.to_string()),
            },
        },
        Error::Backend { backend, source } => Error::Backend {
            backend,
            source: source.to_string().into(),
        },
        other => Error::backend("kiln-load", other.to_string()),
    }
}
