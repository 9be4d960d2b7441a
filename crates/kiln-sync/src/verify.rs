//! `kiln verify`: checking that every object a retained version references is in the store
//! and hashes to its id, and (with a source) storing the bad ones again; and that every
//! path a version holds is one a server's file system can lay out
//! ([`kiln_core::path_limits`]), which sync checks now but did not always.
//!
//! Repair deletes a corrupt object (create-if-absent would otherwise keep it), forgets the
//! memo entries of every bad chunk, and rebuilds each affected version from the source
//! without publishing anything ([`crate::pipeline::rebuild`]); a version whose commit the
//! source lacks, or whose content bundles to other ids, is reported as not repaired. A repair
//! also writes the tables of contents that sound chunks lack.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use kiln_chunk::key::object_key;
use kiln_chunk::retry::{RetryPolicy, retry};
use kiln_chunk::scan::scan;
use kiln_chunk::store_error::to_error;
use kiln_core::catalog::Catalog;
use kiln_core::ids::{ChunkId, ChunkRef, CourseId, VersionId};
use kiln_core::{Error, Result};
use object_store::ObjectStore;

use crate::SyncOptions;

/// What is wrong with an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The store has no object under the chunk's key.
    Missing,
    /// The object's content does not hash to the chunk id (the text says what was found).
    Corrupt(String),
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Missing => f.write_str("missing"),
            Damage::Corrupt(why) => write!(f, "corrupt: {why}"),
        }
    }
}

/// One bad object and the versions that reference it.
#[derive(Debug, Clone)]
pub struct BadObject {
    /// The chunk.
    pub id: ChunkId,
    /// What is wrong with it.
    pub damage: Damage,
    /// Every (course, version) whose manifest references it.
    pub versions: Vec<(CourseId, VersionId)>,
    /// After a repair: `Ok(())` if it is whole now, or why not.
    pub repair: Option<std::result::Result<(), String>>,
}

/// A version holding a path no server's file system can lay out: every ensure of `chunk`
/// fails on the server's disk. Repair cannot help (the source holds the path): sync a
/// commit without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unservable {
    /// The course.
    pub course: CourseId,
    /// The version.
    pub version: VersionId,
    /// The chunk holding the path.
    pub chunk: ChunkRef,
    /// The course-relative path.
    pub path: String,
    /// Which limit it exceeds.
    pub problem: String,
}

/// What a verify found (and repaired).
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Versions whose manifests were checked.
    pub versions: usize,
    /// Distinct objects checked.
    pub objects: usize,
    /// The bad ones.
    pub bad: Vec<BadObject>,
    /// Per version and chunk, a path too long to serve (the first found).
    pub unservable: Vec<Unservable>,
    /// With a repair: tables of contents written for sound chunks that had none (versions
    /// synced before kiln kept them).
    pub tocs_written: usize,
}

/// Checks every object referenced by a version of `course` (or of every course); with
/// `repair` (the sync options of the course's source: path and subdirectory), stores the
/// bad ones again from that source.
pub async fn verify(
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    course: Option<&CourseId>,
    repair: Option<SyncOptions>,
) -> Result<VerifyReport> {
    let courses = match course {
        Some(c) => {
            // An unknown course is an error, not an empty report.
            catalog.versions(c).await?;
            vec![c.clone()]
        }
        None => catalog.courses().await?,
    };
    let mut refs: BTreeMap<ChunkId, Vec<(CourseId, VersionId)>> = BTreeMap::new();
    let mut placed: Vec<(CourseId, VersionId, ChunkRef, ChunkId, String)> = Vec::new();
    let mut versions = 0;
    for c in &courses {
        for v in catalog.versions(c).await? {
            versions += 1;
            for e in catalog.manifest(c, &v.version).await?.entries() {
                refs.entry(e.id)
                    .or_default()
                    .push((c.clone(), v.version.clone()));
                placed.push((
                    c.clone(),
                    v.version.clone(),
                    e.chunk_ref(),
                    e.id,
                    e.root.clone(),
                ));
            }
        }
    }
    let (mut bad, longest) = check_all(&store, refs.keys().copied().collect()).await?;
    let unservable = placed
        .into_iter()
        .filter_map(|(course, version, chunk, id, root)| {
            let paths = longest.get(&id)?;
            paths.iter().find_map(|rel| {
                let path = crate::source::join(&root, rel);
                let problem = kiln_core::path_limits::check(&path).err()?.to_string();
                Some(Unservable {
                    course: course.clone(),
                    version: version.clone(),
                    chunk: chunk.clone(),
                    path,
                    problem,
                })
            })
        })
        .collect();
    let mut report = VerifyReport {
        versions,
        objects: refs.len(),
        bad: Vec::new(),
        unservable,
        tocs_written: 0,
    };
    if repair.is_some() {
        let damaged: std::collections::HashSet<ChunkId> = bad.iter().map(|(id, _)| *id).collect();
        let sound = refs
            .keys()
            .copied()
            .filter(|id| !damaged.contains(id))
            .collect();
        report.tocs_written = kiln_chunk::tocs::backfill(&*catalog, &*store, sound).await?;
    }
    bad.sort_by_key(|(id, _)| *id);
    report.bad = bad
        .into_iter()
        .map(|(id, damage)| BadObject {
            versions: refs.remove(&id).unwrap_or_default(),
            id,
            damage,
            repair: None,
        })
        .collect();
    if let Some(template) = repair
        && !report.bad.is_empty()
    {
        repair_all(&catalog, &store, &mut report, template).await?;
    }
    Ok(report)
}

async fn repair_all(
    catalog: &Arc<dyn Catalog>,
    store: &Arc<dyn ObjectStore>,
    report: &mut VerifyReport,
    template: SyncOptions,
) -> Result<()> {
    for b in &report.bad {
        if matches!(b.damage, Damage::Corrupt(_)) {
            let key = object_key(&b.id);
            match retry(&RetryPolicy::STORE, || store.delete(&key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(to_error(&format!("deleting corrupt {key}"), e)),
            }
        }
    }
    let ids: Vec<ChunkId> = report.bad.iter().map(|b| b.id).collect();
    catalog.memo_forget(&ids).await?;
    // Each affected version once, from the source; remember why one could not be rebuilt.
    let targets: BTreeSet<(CourseId, VersionId)> = report
        .bad
        .iter()
        .flat_map(|b| b.versions.iter().cloned())
        .collect();
    let mut failures: BTreeMap<(CourseId, VersionId), String> = BTreeMap::new();
    for (course, version) in targets {
        let mut opts = template.clone();
        opts.course = Some(course.clone());
        opts.rev = (!version.as_str().starts_with("dir-")).then(|| version.as_str().to_string());
        if let Err(e) =
            crate::pipeline::rebuild(opts, catalog.clone(), store.clone(), version.clone()).await
        {
            failures.insert((course, version), e.to_string());
        }
    }
    let (again, _) = check_all(store, ids).await?;
    let still: BTreeMap<ChunkId, Damage> = again.into_iter().collect();
    for b in &mut report.bad {
        b.repair = Some(match still.get(&b.id) {
            None => Ok(()),
            Some(d) => {
                let why = b
                    .versions
                    .iter()
                    .find_map(|v| failures.get(v).map(|f| format!("{} {}: {f}", v.0, v.1)))
                    .unwrap_or_else(|| {
                        "the source no longer bundles this content (it changed or was rewritten)"
                            .into()
                    });
                Err(format!("still {d}; {why}"))
            }
        });
    }
    Ok(())
}

/// Checks `ids`, a few at a time; returns the bad ones, and for each sound one the paths
/// that decide whether its files can be laid out ([`longest`]).
async fn check_all(
    store: &Arc<dyn ObjectStore>,
    ids: Vec<ChunkId>,
) -> Result<(Vec<(ChunkId, Damage)>, HashMap<ChunkId, Vec<String>>)> {
    let results: Vec<Result<(ChunkId, Checked)>> = futures::stream::iter(ids)
        .map(|id| {
            let store = store.clone();
            async move { Ok((id, check(&*store, id).await?)) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut bad = Vec::new();
    let mut paths = HashMap::new();
    for r in results {
        match r? {
            (id, Checked::Bad(d)) => bad.push((id, d)),
            (id, Checked::Sound(p)) => {
                paths.insert(id, p);
            }
        }
    }
    Ok((bad, paths))
}

/// One object's verdict.
enum Checked {
    /// It is missing or not the chunk.
    Bad(Damage),
    /// It is the chunk; with the paths [`longest`] picks from its entries.
    Sound(Vec<String>),
}

/// Fetches one object, hashes its decompressed content and reads its entries' paths.
async fn check(store: &dyn ObjectStore, id: ChunkId) -> Result<Checked> {
    let key = object_key(&id);
    let get = || async { store.get(&key).await?.bytes().await };
    let bytes = match retry(&RetryPolicy::STORE, get).await {
        Ok(b) => b,
        Err(object_store::Error::NotFound { .. }) => return Ok(Checked::Bad(Damage::Missing)),
        Err(e) => return Err(to_error(&format!("reading {key}"), e)),
    };
    let scanned = tokio::task::spawn_blocking(move || scan(&bytes[..]))
        .await
        .map_err(|e| Error::backend("kiln-sync", format!("a verify task failed: {e}")))?;
    Ok(match scanned {
        Ok(s) if s.id == id => Checked::Sound(longest(s.paths.unwrap_or_default())),
        Ok(s) => Checked::Bad(Damage::Corrupt(format!("its content hashes to {}", s.id))),
        Err(e) => Checked::Bad(Damage::Corrupt(format!("it does not decompress ({e})"))),
    })
}

/// Of a chunk's entry paths, the ones that decide whether all can be laid out below any
/// root: the first with a name over the limit, and the longest as laid out (a root adds
/// the same to every path). So a chunk costs two paths of memory, however many files.
fn longest(paths: Vec<String>) -> Vec<String> {
    use kiln_core::path_limits::{MAX_NAME_BYTES, laid_out_len};
    let long_name = paths
        .iter()
        .find(|p| p.split('/').any(|n| n.len() > MAX_NAME_BYTES))
        .cloned();
    let longest = paths.into_iter().max_by_key(|p| laid_out_len(p));
    long_name.into_iter().chain(longest).collect()
}
