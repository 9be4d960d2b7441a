//! `kiln gc`: deleting store objects that no version references, after a grace period.
//!
//! Safety against concurrent syncs (of any course, known to the catalog or not) comes from
//! the catalog's claims and marks, not from course locks:
//! 1. gc lists the store and picks candidates: chunk objects older than the grace period
//!    that no version references.
//! 2. [`Catalog::gc_mark`] marks those that still have no reference and no live claim, in
//!    one transaction serialised with every sync's [`Catalog::claim_chunks`], and forgets
//!    their memo entries. A sync claims a chunk before it relies on its object, so either
//!    gc sees the claim and keeps the object, or the sync sees the mark and stores the
//!    object again once the mark is gone.
//! 3. gc deletes the marked objects, renewing its marks between batches (a gc that lost
//!    them stops), then drops its marks.
//!
//! A killed gc holds nothing that blocks a sync for longer than its marks' ttl. gc also
//! removes the temporary files that a killed upload leaves in a local store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use kiln_chunk::key;
use kiln_chunk::retry::{RetryPolicy, retry};
use kiln_chunk::store_error::to_error;
use kiln_core::catalog::Catalog;
use kiln_core::ids::ChunkId;
use kiln_core::time::Timestamp;
use kiln_core::{Error, Result};
use object_store::ObjectStore;

use crate::holder::Holder;

/// How long gc's marks live without renewal.
pub(crate) const MARK_TTL: Duration = Duration::from_secs(30);

/// Deletions between two renewals of the marks.
const BATCH: usize = 256;

/// What a gc did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Objects deleted.
    pub objects_deleted: u64,
    /// Their bytes.
    pub bytes_freed: u64,
    /// Objects kept because a version or a sync in progress references them, or they are
    /// younger than the grace period.
    pub objects_kept: u64,
    /// Temporary files of interrupted uploads removed (local stores only).
    pub temp_files_removed: u64,
}

/// How a gc runs.
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Objects modified less than this long ago are kept.
    pub grace: Duration,
    /// The directory of a local object store, where interrupted uploads leave temporary
    /// files (`<key>#<n>`) that the store's listing does not show.
    pub local_root: Option<PathBuf>,
}

/// Deletes unreferenced chunk objects last modified more than `opts.grace` ago.
pub async fn gc(
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    opts: GcOptions,
) -> Result<GcReport> {
    let owner = Holder::current().owner("gc");
    let result = run(&*catalog, &store, &opts, &owner).await;
    if let Err(e) = catalog.gc_unmark(&owner).await {
        tracing::warn!(error = %e, "dropping gc marks failed; they expire in {} s", MARK_TTL.as_secs());
    }
    let mut report = result?;
    if let Some(root) = &opts.local_root {
        let root = root.clone();
        let grace = opts.grace;
        report.temp_files_removed =
            tokio::task::spawn_blocking(move || remove_temp_files(&root, grace))
                .await
                .map_err(|e| Error::backend("kiln-sync", format!("a gc task failed: {e}")))??;
    }
    Ok(report)
}

async fn run(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    opts: &GcOptions,
    owner: &str,
) -> Result<GcReport> {
    let referenced = catalog.referenced_chunks().await?;
    let cutoff = Timestamp::now().minus(opts.grace);
    let prefix = key::prefix();
    let mut candidates = Vec::new();
    let mut report = GcReport::default();
    let mut listing = store.list(Some(&prefix));
    let listed = |e| to_error(&format!("listing {prefix}"), e);
    while let Some(meta) = listing.try_next().await.map_err(listed)? {
        let Some(id) = key::chunk_id(meta.location.as_ref()) else {
            continue;
        };
        let old = meta.last_modified.timestamp_millis() < cutoff.0;
        if referenced.contains(&id) || !old {
            report.objects_kept += 1;
        } else {
            candidates.push((id, meta.location, meta.size));
        }
    }
    let ids: Vec<ChunkId> = candidates.iter().map(|(id, _, _)| *id).collect();
    let (marked, _) = catalog.gc_mark(owner, &ids, MARK_TTL).await?;
    let marked: std::collections::HashSet<ChunkId> = marked.into_iter().collect();
    let (doomed, kept): (Vec<_>, Vec<_>) = candidates
        .into_iter()
        .partition(|(id, _, _)| marked.contains(id));
    report.objects_kept += kept.len() as u64;
    for batch in doomed.chunks(BATCH) {
        // Deleting only while every mark is live: a gc whose marks ran out (it stalled past
        // their ttl) may no longer assume that no sync relies on these objects.
        let (_, live) = catalog.gc_mark(owner, &[], MARK_TTL).await?;
        if live < marked.len() as u64 {
            return Err(Error::Precondition(format!(
                "gc stalled past its marks' lifetime ({} s); nothing more was deleted, run it again",
                MARK_TTL.as_secs()
            )));
        }
        let deleted: Vec<u64> = futures::stream::iter(batch.iter().cloned())
            .map(|(_, location, size)| {
                let store = store.clone();
                async move {
                    match retry(&RetryPolicy::STORE, || store.delete(&location)).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(size),
                        Err(e) => Err(to_error(&format!("deleting {location}"), e)),
                    }
                }
            })
            .buffer_unordered(16)
            .try_collect()
            .await?;
        report.objects_deleted += deleted.len() as u64;
        report.bytes_freed += deleted.iter().sum::<u64>();
    }
    Ok(report)
}

/// Removes `<key>#<digits>` files under `root/chunks` older than `grace`: what a local
/// store's put leaves behind when its process is killed before the rename.
fn remove_temp_files(root: &Path, grace: Duration) -> Result<u64> {
    let io = |p: &Path, e: std::io::Error| {
        Error::backend("object store", format!("cleaning {}: {e}", p.display()))
    };
    let cutoff = SystemTime::now()
        .checked_sub(grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = 0;
    let chunks = root.join(key::PREFIX);
    let Ok(dirs) = std::fs::read_dir(&chunks) else {
        return Ok(0);
    };
    for dir in dirs {
        let dir = dir.map_err(|e| io(&chunks, e))?.path();
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        for f in files {
            let f = f.map_err(|e| io(&dir, e))?;
            let name = f.file_name();
            let Some((_, suffix)) = name.to_str().and_then(|n| n.rsplit_once('#')) else {
                continue;
            };
            if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let old = f
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            if old {
                match std::fs::remove_file(f.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&f.path(), e)),
                }
            }
        }
    }
    Ok(removed)
}
