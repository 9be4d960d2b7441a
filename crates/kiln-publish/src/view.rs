//! [`PublishedView`]: the [`ContentView`] a server reads, made of the published objects
//! alone: the head in memory, followed by a conditional GET every `poll_interval` (and at
//! once when [`PublishedView::refresh`] is called, on a push announcement), roots and
//! segments from a disk cache by id.
//!
//! An idle server costs the store one conditional GET of the head per `poll_interval`
//! (a `304 Not Modified`), whatever the number of courses. While the head cannot be read,
//! the last one read is served; after `stale_after` without a confirmation `current`
//! answers `Unavailable`, so that the chunk cache serves its last known version marked
//! stale, as it does through a catalog outage.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use kiln_chunk::store_error::to_error;
use kiln_core::catalog::VersionInfo;
use kiln_core::content::ContentView;
use kiln_core::ids::{ChunkId, CourseId, VersionId};
use kiln_core::manifest::Manifest;
use kiln_core::time::Timestamp;
use kiln_core::toc::Toc;
use kiln_core::{Error, Result};
use object_store::{GetOptions, ObjectStore};
use tokio::sync::broadcast;

use crate::format::{self, Digest, Head, Root};
use crate::keys::{self, Kind};
use crate::objects::Objects;

/// How a [`PublishedView`] follows the head.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// Where roots and segments are kept on disk (`None`: memory only, fetched per use).
    pub cache_dir: Option<PathBuf>,
    /// How often the head is read (conditionally) by [`PublishedView::follow`].
    pub poll_interval: Duration,
    /// How long the last head read is trusted without a confirmation.
    pub stale_after: Duration,
}

impl Default for ViewOptions {
    /// Memory only, a poll a second, stale after 10 s.
    fn default() -> Self {
        ViewOptions {
            cache_dir: None,
            poll_interval: Duration::from_secs(1),
            stale_after: Duration::from_secs(10),
        }
    }
}

/// A course whose current version the head changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadChange {
    /// The course.
    pub course: CourseId,
    /// Its version before (`None`: the course is new).
    pub from: Option<VersionId>,
    /// Its version now (`None`: the course left the head).
    pub to: Option<VersionId>,
}

/// What the view has cost the store, and how current it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewMetrics {
    /// Head GETs that returned a new head.
    pub head_reads: u64,
    /// Head GETs answered `Not Modified` (or the same bytes).
    pub head_unchanged: u64,
    /// Head GETs that failed.
    pub head_errors: u64,
    /// GETs of roots and segments.
    pub object_gets: u64,
    /// Bytes of those.
    pub object_bytes: u64,
    /// GETs of version pointers and listings of them.
    pub pointer_requests: u64,
    /// The sequence number of the head in use.
    pub head_seq: u64,
    /// When that head was written (ms since the epoch).
    pub head_written_at_ms: i64,
    /// When this process applied it (ms since the epoch).
    pub head_applied_at_ms: i64,
}

struct HeadState {
    head: Arc<Head>,
    etag: Option<String>,
    /// When a read last confirmed it (`None`: never read).
    confirmed: Option<Instant>,
    last_error: Option<String>,
    applied_at_ms: i64,
}

/// A course's listed versions, and the head version they were listed under.
type Listed = (Option<VersionId>, Vec<VersionInfo>);

struct Inner {
    objects: Objects,
    options: ViewOptions,
    state: Mutex<HeadState>,
    /// One head read at a time.
    reading: tokio::sync::Mutex<()>,
    pointers: Mutex<HashMap<(CourseId, VersionId), Digest>>,
    /// Per course, its listed versions and the head version they were listed under.
    listed: Mutex<HashMap<CourseId, Listed>>,
    changes: broadcast::Sender<HeadChange>,
    head_reads: AtomicU64,
    head_unchanged: AtomicU64,
    head_errors: AtomicU64,
    pointer_requests: AtomicU64,
}

/// The published view in an object store. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct PublishedView {
    inner: Arc<Inner>,
}

impl fmt::Debug for PublishedView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishedView")
            .field("store", &format_args!("{}", self.inner.objects.store()))
            .finish()
    }
}

impl fmt::Display for PublishedView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "published view in {}", self.inner.objects.store())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PublishedView {
    /// A view of `store`, with the head read once (an unreadable head is an error; a
    /// missing one is an empty head: nothing was published yet).
    pub async fn open(store: Arc<dyn ObjectStore>, options: ViewOptions) -> Result<Self> {
        let (changes, _) = broadcast::channel(1024);
        let view = PublishedView {
            inner: Arc::new(Inner {
                objects: Objects::new(store, options.cache_dir.clone()),
                options,
                state: Mutex::new(HeadState {
                    head: Arc::new(Head::default()),
                    etag: None,
                    confirmed: None,
                    last_error: None,
                    applied_at_ms: 0,
                }),
                reading: tokio::sync::Mutex::new(()),
                pointers: Mutex::new(HashMap::new()),
                listed: Mutex::new(HashMap::new()),
                changes,
                head_reads: AtomicU64::new(0),
                head_unchanged: AtomicU64::new(0),
                head_errors: AtomicU64::new(0),
                pointer_requests: AtomicU64::new(0),
            }),
        };
        view.refresh().await?;
        Ok(view)
    }

    /// The head in use.
    pub fn head(&self) -> Arc<Head> {
        lock(&self.inner.state).head.clone()
    }

    /// Courses whose current version changes, as heads are applied.
    pub fn subscribe(&self) -> broadcast::Receiver<HeadChange> {
        self.inner.changes.subscribe()
    }

    /// The store's costs so far and the head in use.
    pub fn metrics(&self) -> ViewMetrics {
        let st = lock(&self.inner.state);
        let i = &self.inner;
        ViewMetrics {
            head_reads: i.head_reads.load(Ordering::Relaxed),
            head_unchanged: i.head_unchanged.load(Ordering::Relaxed),
            head_errors: i.head_errors.load(Ordering::Relaxed),
            object_gets: i.objects.gets.load(Ordering::Relaxed),
            object_bytes: i.objects.bytes.load(Ordering::Relaxed),
            pointer_requests: i.pointer_requests.load(Ordering::Relaxed),
            head_seq: st.head.seq,
            head_written_at_ms: st.head.written_at_ms,
            head_applied_at_ms: st.applied_at_ms,
        }
    }

    /// Reads the head now (conditionally: `Not Modified` costs no body) and applies it if
    /// it is newer. Returns whether it changed anything.
    pub async fn refresh(&self) -> Result<bool> {
        self.refresh_unless_within(Duration::ZERO).await
    }

    /// Like [`Self::refresh`], unless a read confirmed the head less than `fresh` ago (by
    /// the time this one's turn comes: a burst of callers costs one read).
    async fn refresh_unless_within(&self, fresh: Duration) -> Result<bool> {
        let _one = self.inner.reading.lock().await;
        let confirmed = lock(&self.inner.state).confirmed;
        if !fresh.is_zero() && confirmed.is_some_and(|c| c.elapsed() < fresh) {
            return Ok(false);
        }
        let etag = lock(&self.inner.state).etag.clone();
        let r = self.read_head(etag).await;
        let mut st = lock(&self.inner.state);
        match r {
            Ok(None) => {
                self.inner.head_unchanged.fetch_add(1, Ordering::Relaxed);
                st.confirmed = Some(Instant::now());
                st.last_error = None;
                Ok(false)
            }
            Ok(Some((head, etag))) => {
                self.inner.head_reads.fetch_add(1, Ordering::Relaxed);
                st.confirmed = Some(Instant::now());
                st.last_error = None;
                st.etag = etag;
                // A head older than the one in use (a writer that lost its lease) is not
                // applied; the next write replaces it.
                if head.seq < st.head.seq {
                    tracing::warn!(
                        "the published head went back from seq {} to {}; keeping the newer",
                        st.head.seq,
                        head.seq
                    );
                    return Ok(false);
                }
                let changes = diff(&st.head, &head);
                // The versions the head no longer names keep their roots at hand: a
                // request or prefetch still reading one needs no pointer read.
                {
                    let mut pointers = lock(&self.inner.pointers);
                    for c in &changes {
                        if let (Some(from), Some((_, root))) = (&c.from, st.head.course(&c.course))
                        {
                            pointers.insert((c.course.clone(), from.clone()), root);
                        }
                    }
                }
                st.head = Arc::new(head);
                st.applied_at_ms = Timestamp::now().0;
                drop(st);
                for c in &changes {
                    let _ = self.inner.changes.send(c.clone());
                }
                Ok(!changes.is_empty())
            }
            Err(e) => {
                self.inner.head_errors.fetch_add(1, Ordering::Relaxed);
                st.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The head if it differs from `etag`, with its new etag.
    async fn read_head(&self, etag: Option<String>) -> Result<Option<(Head, Option<String>)>> {
        let key = keys::head();
        let opts = GetOptions {
            if_none_match: etag.clone(),
            ..Default::default()
        };
        let got = match self.inner.objects.store().get_opts(&key, opts).await {
            Ok(got) => got,
            Err(object_store::Error::NotModified { .. }) => return Ok(None),
            Err(object_store::Error::NotFound { .. }) => {
                return Ok(Some((
                    Head {
                        format: format::FORMAT,
                        ..Head::default()
                    },
                    None,
                )));
            }
            Err(e) => return Err(to_error("reading the published head", e)),
        };
        let new_etag = got.meta.e_tag.clone();
        if new_etag.is_some() && new_etag == etag {
            return Ok(None);
        }
        let bytes = got
            .bytes()
            .await
            .map_err(|e| to_error("reading the published head", e))?;
        Ok(Some((Head::decode(&bytes)?, new_etag)))
    }

    /// Reads the head every `poll_interval`, and at once whenever `wake` yields (a push
    /// channel's announcement). Runs until the returned task is aborted.
    pub fn follow(
        &self,
        wake: Option<futures::stream::BoxStream<'static, ()>>,
    ) -> tokio::task::JoinHandle<()> {
        let view = self.clone();
        tokio::spawn(async move {
            let mut wake = wake.unwrap_or_else(|| futures::stream::pending().boxed());
            let mut tick = tokio::time::interval(view.inner.options.poll_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    w = wake.next() => if w.is_none() {
                        wake = futures::stream::pending().boxed();
                        continue;
                    },
                }
                if let Err(e) = view.refresh().await {
                    tracing::warn!("reading the published head: {e}");
                }
            }
        })
    }

    /// The head, checked for staleness; for an unknown course, re-read first unless it was
    /// read within `poll_interval` (a course published a moment ago).
    async fn head_for(&self, course: Option<&CourseId>) -> Result<Arc<Head>> {
        let (head, confirmed) = {
            let st = lock(&self.inner.state);
            (st.head.clone(), st.confirmed)
        };
        let age = confirmed.map(|c| c.elapsed());
        let unknown = course.is_some_and(|c| head.course(c).is_none());
        let poll = self.inner.options.poll_interval;
        if unknown
            && age.is_none_or(|a| a >= poll)
            && self.refresh_unless_within(poll).await.is_ok()
        {
            return Ok(self.head());
        }
        match age {
            Some(a) if a <= self.inner.options.stale_after => Ok(head),
            _ => Err(Error::Unavailable {
                what: "the published head".into(),
                source: format!(
                    "not confirmed for {:?}: {}",
                    age.unwrap_or_default(),
                    lock(&self.inner.state)
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "never read".into())
                )
                .into(),
            }),
        }
    }

    /// The root of a version: the head's for the current one, else its pointer's.
    async fn root_id(&self, course: &CourseId, version: &VersionId) -> Result<Digest> {
        if let Some((v, root)) = self.head().course(course)
            && &v == version
        {
            return Ok(root);
        }
        let key = (course.clone(), version.clone());
        if let Some(r) = lock(&self.inner.pointers).get(&key) {
            return Ok(*r);
        }
        self.inner.pointer_requests.fetch_add(1, Ordering::Relaxed);
        let root = crate::writer::read_pointer(&**self.inner.objects.store(), course, version)
            .await
            .map_err(|e| match e {
                Error::NotFound { .. } => Error::not_found(format!(
                    "version {:?} of course {:?}",
                    version.as_str(),
                    course.as_str()
                )),
                e => e,
            })?;
        lock(&self.inner.pointers).insert(key, root);
        Ok(root)
    }

    /// Content-addressed objects, a few at a time, in order.
    async fn get_all(&self, kind: Kind, ids: Vec<Digest>) -> Result<Vec<bytes::Bytes>> {
        let inner = self.inner.clone();
        futures::stream::iter(ids)
            .map(move |id: Digest| {
                let inner = inner.clone();
                async move { inner.objects.get(kind, &id).await }
            })
            .buffered(SEGMENTS_AT_ONCE)
            .try_collect()
            .await
    }

    async fn root(&self, course: &CourseId, version: &VersionId) -> Result<Root> {
        let id = self.root_id(course, version).await?;
        Root::decode(&self.inner.objects.get(Kind::Root, &id).await?)
    }
}

/// The courses whose version differs between two heads.
fn diff(old: &Head, new: &Head) -> Vec<HeadChange> {
    let mut out = Vec::new();
    let version = |h: &Head, c: &str| {
        h.courses
            .get(c)
            .and_then(|x| VersionId::new(&x.version).ok())
    };
    for c in old.courses.keys().chain(new.courses.keys()) {
        let (from, to) = (version(old, c), version(new, c));
        if from != to
            && let Ok(course) = CourseId::new(c)
            && !out.iter().any(|x: &HeadChange| x.course == course)
        {
            out.push(HeadChange { course, from, to });
        }
    }
    out
}

/// Segments fetched at once.
const SEGMENTS_AT_ONCE: usize = 8;

#[async_trait]
impl ContentView for PublishedView {
    async fn current(&self, course: &CourseId) -> Result<Option<VersionInfo>> {
        let head = self.head_for(Some(course)).await?;
        Ok(head.course(course).map(|(version, _)| VersionInfo {
            course: course.clone(),
            version,
            created_at: Timestamp(head.courses[course.as_str()].created_at),
            current: true,
        }))
    }

    async fn courses(&self) -> Result<Vec<CourseId>> {
        Ok(self.head_for(None).await?.course_ids())
    }

    async fn versions(&self, course: &CourseId) -> Result<Vec<VersionInfo>> {
        let current = self.current(course).await?.map(|i| i.version);
        if let Some((at, list)) = lock(&self.inner.listed).get(course)
            && at == &current
        {
            return Ok(list.clone());
        }
        self.inner.pointer_requests.fetch_add(1, Ordering::Relaxed);
        let prefix = keys::pointers(course);
        let metas: Vec<object_store::ObjectMeta> = self
            .inner
            .objects
            .store()
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| to_error(&format!("listing {prefix}"), e))?;
        let mut list: Vec<VersionInfo> = metas
            .iter()
            .filter_map(|m| {
                let version = keys::pointer_version(course, &m.location)?;
                Some(VersionInfo {
                    course: course.clone(),
                    current: Some(&version) == current.as_ref(),
                    version,
                    created_at: Timestamp(m.last_modified.timestamp_millis()),
                })
            })
            .collect();
        if list.is_empty() {
            return Err(Error::not_found(format!("course {:?}", course.as_str())));
        }
        list.sort_by(|a, b| {
            (b.created_at, b.version.as_str()).cmp(&(a.created_at, a.version.as_str()))
        });
        lock(&self.inner.listed).insert(course.clone(), (current, list.clone()));
        Ok(list)
    }

    async fn manifest(&self, course: &CourseId, version: &VersionId) -> Result<Manifest> {
        let root = self.root(course, version).await?;
        let ids = root.segments.iter().map(|s| s.manifest).collect();
        let segments = self
            .get_all(Kind::Segment, ids)
            .await?
            .iter()
            .map(|b| format::decode_segment(b))
            .collect::<Result<Vec<_>>>()?;
        format::manifest_of(segments)
    }

    async fn tocs(&self, course: &CourseId, version: &VersionId) -> Result<HashMap<ChunkId, Toc>> {
        let root = self.root(course, version).await?;
        let ids = root.segments.iter().map(|s| s.tocs).collect();
        let mut out = HashMap::new();
        for bytes in self.get_all(Kind::Tocs, ids).await? {
            out.extend(format::decode_tocs(&bytes)?);
        }
        Ok(out)
    }
}
