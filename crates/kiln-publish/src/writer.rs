//! Publishing the view: a version's root and segments, its pointer, and the head, all
//! derived from the catalog.
//!
//! The order makes a half-done publish harmless: the content-addressed objects are written
//! first (unreferenced, they are inert), then the catalog commits the version, then its
//! pointer and the head name it. A publish cut short after the commit is finished by the
//! next head write of any course (which backfills every current version the head lacks from
//! the catalog), by a re-sync of the same commit, or by `kiln verify --repair`.
//!
//! The head is rewritten under the catalog lease `publish-head`, from the catalog's current
//! versions (`Catalog::currents`) read inside the lease, so two publishes of different
//! courses never lose each other's version; the lease is renewed just before the write, so
//! a writer that stalled past its lease does not overwrite a newer head.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kiln_chunk::retry::{RetryPolicy, retry};
use kiln_chunk::store_error::to_error;
use kiln_core::catalog::{Catalog, NewVersion, PublishOutcome};
use kiln_core::ids::{ChunkId, ChunkKind, CourseId, VersionId};
use kiln_core::manifest::{Manifest, ManifestEntry};
use kiln_core::time::Timestamp;
use kiln_core::toc::Toc;
use kiln_core::{Error, Result};
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

use crate::format::{self, Digest, Head, HeadCourse, Pointer, Root, SegmentRef};
use crate::keys::{self, Kind};

/// The lease that serialises head writes.
const HEAD_LOCK: &str = "publish-head";
/// How long it lives unless renewed.
const HEAD_LOCK_TTL: Duration = Duration::from_secs(15);
/// How long a writer waits for it.
const HEAD_LOCK_WAIT: Duration = Duration::from_secs(60);

/// What [`publish`] did.
#[derive(Debug, Clone)]
pub struct Publish {
    /// What the catalog did.
    pub outcome: PublishOutcome,
    /// What was written to the store for the published view.
    pub written: Written,
    /// The head now stored.
    pub head: Head,
}

/// Publishes a version in the catalog and the published view, in the order that makes a
/// cut-short publish harmless: the version's root and segments (inert until named), the
/// catalog's commit, the version's pointer, the head (as `owner` of the head lease). Every
/// chunk and table of contents of the version must be stored before.
pub async fn publish(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    owner: &str,
    version: NewVersion,
    basis: Option<Basis<'_>>,
) -> Result<Publish> {
    let (course, id) = (version.course.clone(), version.version.clone());
    let previous = read_head(&**store)
        .await?
        .course(&course)
        .map(|(_, root)| root);
    let published = publish_version(
        catalog,
        store,
        &course,
        &id,
        &version.manifest,
        previous,
        basis,
    )
    .await?;
    let outcome = catalog.publish(version).await?;
    let mut written = published.written;
    // A reinstated version keeps its first manifest: its root is the catalog's, which the
    // head write derives itself.
    let fresh = match outcome {
        PublishOutcome::Reinstated => Vec::new(),
        _ => {
            written = written.plus(write_pointer(&**store, &course, &id, published.root).await?);
            vec![Fresh {
                course,
                version: id,
                root: published.root,
            }]
        }
    };
    let head = write_head(catalog, store, owner, &fresh).await?;
    Ok(Publish {
        outcome,
        written: written.plus(head.written),
        head: head.head,
    })
}

/// What one publish wrote to the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Objects written (or found present when written create-if-absent).
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Written {
    fn add(&mut self, bytes: usize) {
        self.objects += 1;
        self.bytes += bytes as u64;
    }

    /// Both counts together.
    pub fn plus(self, o: Written) -> Written {
        Written {
            objects: self.objects + o.objects,
            bytes: self.bytes + o.bytes,
        }
    }
}

/// A version's root as [`publish_version`] made it.
#[derive(Debug, Clone)]
pub struct Published {
    /// The root's id.
    pub root: Digest,
    /// What was written.
    pub written: Written,
}

/// The version a new one was synced against, when the caller has its manifest: segments
/// equal to its segments are taken from its root without being encoded again.
#[derive(Debug, Clone, Copy)]
pub struct Basis<'a> {
    /// Its id.
    pub version: &'a VersionId,
    /// Its manifest.
    pub manifest: &'a Manifest,
}

/// Writes a version's segments, table-of-contents segments and root, skipping segments the
/// store holds already (those of `previous`, the root of the course's previous version, if
/// it can be read; where `basis` is that version, its unchanged segments are recognised by
/// their entries, not by encoding them). Tables of contents come from the catalog (the sync
/// stored them before), or from a chunk's bundle where the catalog lacks one.
pub async fn publish_version(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    course: &CourseId,
    version: &VersionId,
    manifest: &Manifest,
    previous: Option<Digest>,
    basis: Option<Basis<'_>>,
) -> Result<Published> {
    // A segment's tables of contents follow from its entries, so a segment the previous
    // root has comes with the same table-of-contents segment.
    let mut known: HashMap<Digest, Digest> = HashMap::new();
    // The basis's segments by their first entry, with their references in its root.
    let mut same: HashMap<(ChunkKind, &str), (&[ManifestEntry], SegmentRef)> = HashMap::new();
    if let Some(prev) = previous {
        match read_root(&**store, &prev).await {
            Ok(root) => {
                if let Some(b) = basis.filter(|b| b.version.as_str() == root.version) {
                    let cuts = format::cut(b.manifest.entries());
                    if cuts.len() == root.segments.len() {
                        for (cut, r) in cuts.into_iter().zip(&root.segments) {
                            if cut.len() == r.chunks as usize {
                                same.insert((cut[0].kind, cut[0].name.as_str()), (cut, r.clone()));
                            }
                        }
                    }
                }
                known.extend(root.segments.into_iter().map(|s| (s.manifest, s.tocs)));
            }
            Err(e) => {
                tracing::debug!(%course, "previous root {prev} unreadable, writing every segment: {e}")
            }
        }
    }
    let mut written = Written::default();
    let mut segments = Vec::new();
    for seg in format::cut(manifest.entries()) {
        if let Some((old, r)) = same.get(&(seg[0].kind, seg[0].name.as_str()))
            && *old == seg
        {
            segments.push(r.clone());
            continue;
        }
        let bytes = format::encode_segment(seg);
        let id = Digest::of(&bytes);
        if let Some(tocs) = known.get(&id) {
            segments.push(SegmentRef {
                manifest: id,
                tocs: *tocs,
                chunks: seg.len() as u32,
            });
            continue;
        }
        let ids: Vec<ChunkId> = seg.iter().map(|e| e.id).collect();
        let tocs = tocs_of(catalog, &**store, ids).await?;
        let toc_bytes = format::encode_tocs(seg, &tocs)?;
        let tocs_id = Digest::of(&toc_bytes);
        written.add(toc_bytes.len());
        put_create(&**store, &keys::object(Kind::Tocs, &tocs_id), toc_bytes).await?;
        written.add(bytes.len());
        put_create(&**store, &keys::object(Kind::Segment, &id), bytes).await?;
        segments.push(SegmentRef {
            manifest: id,
            tocs: tocs_id,
            chunks: seg.len() as u32,
        });
    }
    let root = Root {
        format: format::FORMAT,
        course: course.to_string(),
        version: version.to_string(),
        segments,
    };
    let bytes = format::to_vec(&root);
    let id = Digest::of(&bytes);
    written.add(bytes.len());
    put_create(&**store, &keys::object(Kind::Root, &id), bytes).await?;
    Ok(Published { root: id, written })
}

/// The root a version's manifest makes, without writing anything (what `kiln verify`
/// compares the published pointer with). Tables of contents as in [`publish_version`].
pub async fn root_of(
    catalog: &dyn Catalog,
    store: &dyn ObjectStore,
    course: &CourseId,
    version: &VersionId,
    manifest: &Manifest,
) -> Result<Digest> {
    let ids: Vec<ChunkId> = manifest.entries().iter().map(|e| e.id).collect();
    let tocs = tocs_of(catalog, store, ids).await?;
    let mut segments = Vec::new();
    for seg in format::cut(manifest.entries()) {
        segments.push(SegmentRef {
            manifest: Digest::of(&format::encode_segment(seg)),
            tocs: Digest::of(&format::encode_tocs(seg, &tocs)?),
            chunks: seg.len() as u32,
        });
    }
    Ok(Digest::of(&format::to_vec(&Root {
        format: format::FORMAT,
        course: course.to_string(),
        version: version.to_string(),
        segments,
    })))
}

/// Writes the pointer from a version to its root (overwriting: it is derived from the
/// catalog, which keeps a version's first manifest).
pub async fn write_pointer(
    store: &dyn ObjectStore,
    course: &CourseId,
    version: &VersionId,
    root: Digest,
) -> Result<Written> {
    let bytes = format::to_vec(&Pointer {
        format: format::FORMAT,
        root,
    });
    let mut w = Written::default();
    w.add(bytes.len());
    put(store, &keys::pointer(course, version), bytes).await?;
    Ok(w)
}

/// The root a version's pointer names.
pub async fn read_pointer(
    store: &dyn ObjectStore,
    course: &CourseId,
    version: &VersionId,
) -> Result<Digest> {
    let key = keys::pointer(course, version);
    let bytes = get(store, &key).await?;
    let p: Pointer = format::from_slice("version pointer", &bytes)?;
    format::check_format("version pointer", p.format)?;
    Ok(p.root)
}

/// The head as stored; an empty head (seq 0) if none was ever written.
pub async fn read_head(store: &dyn ObjectStore) -> Result<Head> {
    match get(store, &keys::head()).await {
        Ok(bytes) => Head::decode(&bytes),
        Err(Error::NotFound { .. }) => Ok(Head {
            format: format::FORMAT,
            ..Head::default()
        }),
        Err(e) => Err(e),
    }
}

/// A root, read from the store.
pub async fn read_root(store: &dyn ObjectStore, id: &Digest) -> Result<Root> {
    let key = keys::object(Kind::Root, id);
    let bytes = get(store, &key).await?;
    crate::objects::check(Kind::Root, id, &bytes)?;
    Root::decode(&bytes)
}

/// A version the caller has just published, whose root it knows.
#[derive(Debug, Clone)]
pub struct Fresh {
    /// The course.
    pub course: CourseId,
    /// The version.
    pub version: VersionId,
    /// Its root.
    pub root: Digest,
}

/// What [`write_head`] did.
#[derive(Debug, Clone)]
pub struct HeadWrite {
    /// The head now stored.
    pub head: Head,
    /// Whether it was written (false: the stored head already said all of it).
    pub changed: bool,
    /// Courses whose current version had no published objects and got them.
    pub backfilled: Vec<CourseId>,
    /// What was written, the head included.
    pub written: Written,
}

/// Rewrites the head from the catalog's current versions, under the `publish-head` lease:
/// `fresh` gives the roots of versions the caller has just published (or checked),
/// courses whose version is unchanged otherwise keep their root, and any other current
/// version the head does not name (a publish that died after its commit, a catalog from
/// before the published view) gets its objects written now.
pub async fn write_head(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    owner: &str,
    fresh: &[Fresh],
) -> Result<HeadWrite> {
    lock(catalog, owner).await?;
    let r = write_head_locked(catalog, store, owner, fresh).await;
    if let Err(e) = catalog.unlock(HEAD_LOCK, owner).await {
        tracing::warn!("releasing the {HEAD_LOCK} lease (it will expire): {e}");
    }
    r
}

async fn write_head_locked(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    owner: &str,
    fresh: &[Fresh],
) -> Result<HeadWrite> {
    let old = read_head(&**store).await?;
    let currents = catalog.currents().await?;
    let mut written = Written::default();
    let mut backfilled = Vec::new();
    let mut head = Head {
        format: format::FORMAT,
        seq: old.seq + 1,
        written_at_ms: Timestamp::now().0,
        courses: Default::default(),
    };
    for info in currents {
        let (course, version) = (&info.course, &info.version);
        let given = fresh
            .iter()
            .find(|f| &f.course == course && &f.version == version);
        let root = match (old.course(course), given) {
            (_, Some(f)) => f.root,
            (Some((v, root)), None) if &v == version => root,
            (old_course, None) => {
                let manifest = catalog.manifest(course, version).await?;
                let previous = old_course.map(|(_, r)| r);
                let p = publish_version(catalog, store, course, version, &manifest, previous, None)
                    .await?;
                written = written.plus(p.written);
                written = written.plus(write_pointer(&**store, course, version, p.root).await?);
                backfilled.push(course.clone());
                p.root
            }
        };
        head.courses.insert(
            course.to_string(),
            HeadCourse {
                version: version.to_string(),
                root,
                created_at: info.created_at.0,
            },
        );
    }
    if head.courses == old.courses && old.seq > 0 {
        return Ok(HeadWrite {
            head: old,
            changed: false,
            backfilled,
            written,
        });
    }
    // Renewed just before the write: a writer whose lease lapsed while it worked finds
    // another holder and writes nothing.
    if !catalog.try_lock(HEAD_LOCK, owner, HEAD_LOCK_TTL).await? {
        return Err(Error::Precondition(format!(
            "the {HEAD_LOCK} lease lapsed before the head was written; another publish wrote it"
        )));
    }
    let bytes = format::to_vec(&head);
    written.add(bytes.len());
    put(&**store, &keys::head(), bytes).await?;
    Ok(HeadWrite {
        head,
        changed: true,
        backfilled,
        written,
    })
}

async fn lock(catalog: &dyn Catalog, owner: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + HEAD_LOCK_WAIT;
    let mut wait = Duration::from_millis(5);
    loop {
        if catalog.try_lock(HEAD_LOCK, owner, HEAD_LOCK_TTL).await? {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let holder = catalog.lock_holder(HEAD_LOCK).await?;
            return Err(Error::Precondition(format!(
                "waited {HEAD_LOCK_WAIT:?} for the {HEAD_LOCK} lease, held by {}",
                holder.map_or("nobody now".into(), |h| h.owner)
            )));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(200));
    }
}

/// The tables of contents of `ids` from the catalog, reading the bundles of chunks it lacks
/// one for (and storing those).
pub(crate) async fn tocs_of(
    catalog: &dyn Catalog,
    store: &dyn ObjectStore,
    ids: Vec<ChunkId>,
) -> Result<HashMap<ChunkId, Toc>> {
    let mut tocs = catalog.tocs(&ids).await?;
    let missing: Vec<ChunkId> = ids
        .into_iter()
        .filter(|id| !tocs.contains_key(id))
        .collect();
    if !missing.is_empty() {
        kiln_chunk::tocs::backfill(catalog, store, missing.clone()).await?;
        tocs.extend(catalog.tocs(&missing).await?);
    }
    Ok(tocs)
}

async fn get(store: &dyn ObjectStore, key: &object_store::path::Path) -> Result<Bytes> {
    let get = || async { store.get(key).await?.bytes().await };
    retry(&RetryPolicy::STORE, get)
        .await
        .map_err(|e| to_error(&format!("reading {key}"), e))
}

async fn put(
    store: &dyn ObjectStore,
    key: &object_store::path::Path,
    bytes: Vec<u8>,
) -> Result<()> {
    let bytes = Bytes::from(bytes);
    retry(&RetryPolicy::STORE, || {
        store.put(key, PutPayload::from(bytes.clone()))
    })
    .await
    .map_err(|e| to_error(&format!("writing {key}"), e))?;
    Ok(())
}

/// Writes a content-addressed object unless it is there (the same name is the same bytes).
async fn put_create(
    store: &dyn ObjectStore,
    key: &object_store::path::Path,
    bytes: Vec<u8>,
) -> Result<()> {
    let bytes = Bytes::from(bytes);
    let opts = || PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    let r = retry(&RetryPolicy::STORE, || {
        store.put_opts(key, PutPayload::from(bytes.clone()), opts())
    })
    .await;
    match r {
        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        Err(object_store::Error::NotImplemented) => put(store, key, bytes.to_vec()).await,
        Err(e) => Err(to_error(&format!("writing {key}"), e)),
    }
}
