//! The sync's half of the gc protocol (the gc's half is in [`crate::gc`]).
//!
//! Rule: a sync claims a chunk ([`Catalog::claim_chunks`]) *before* it relies on the
//! chunk's object being in the store, which is whenever it skips an upload: a memo hit, or
//! an upload that finds the object present. Claims and gc's marks are serialised by the
//! catalog, so one of two things is true of every chunk the sync publishes:
//! - the claim came first: no gc marks the chunk while the claim lives (the lock renewer
//!   keeps it alive until the version is published, which then references it);
//! - a gc's mark came first: the claim reports it, and the sync waits for the mark to go
//!   (gc has deleted the object, or died) and stores the object itself.
//!
//! A memo hit needs one more step: gc forgets a chunk's memo entries when it marks it, so a
//! memo entry read before the claim may already be stale. After the claim the sync reads
//! those entries again; if one changed, the plan is made again.
//!
//! Chunks that a retained version references need no claim: gc never marks them.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kiln_chunk::key::object_key;
use kiln_chunk::retry::{RetryPolicy, retry};
use kiln_chunk::store_error::to_error;
use kiln_core::catalog::Catalog;
use kiln_core::ids::ChunkId;
use kiln_core::manifest::Manifest;
use kiln_core::{Error, Result};
use object_store::ObjectStore;

use crate::build::Built;
use crate::gc::MARK_TTL;
use crate::lock::TTL;

/// Plans made before a sync gives up on a gc that keeps deleting what it reuses.
pub(crate) const ATTEMPTS: usize = 5;

/// Claims the chunks of the memo entries `used`; true if every entry still holds (the plan
/// may rely on them), false if the plan must be made again.
pub(crate) async fn hold_memo(
    catalog: &dyn Catalog,
    owner: &str,
    used: &[(String, ChunkId)],
) -> Result<bool> {
    if used.is_empty() {
        return Ok(true);
    }
    let ids: Vec<ChunkId> = used.iter().map(|(_, id)| *id).collect();
    let mut marked = HashSet::new();
    for batch in ids.chunks(500) {
        marked.extend(catalog.claim_chunks(owner, batch, TTL).await?);
    }
    if !marked.is_empty() {
        for id in &marked {
            wait_unmarked(catalog, owner, *id).await?;
        }
        return Ok(false);
    }
    let keys: Vec<String> = used.iter().map(|(k, _)| k.clone()).collect();
    let mut now = std::collections::HashMap::new();
    for batch in keys.chunks(500) {
        now.extend(catalog.memo_get(batch).await?);
    }
    Ok(used
        .iter()
        .all(|(k, id)| now.get(k).is_some_and(|m| m.id == *id)))
}

/// Claims a batch of built chunks; each comes back with whether a gc had marked it.
pub(crate) async fn claim_built(
    catalog: &dyn Catalog,
    owner: &str,
    batch: Vec<Result<Built>>,
) -> Vec<Result<(Built, bool)>> {
    let ids: Vec<ChunkId> = batch
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|b| b.id))
        .collect();
    let marked = match catalog.claim_chunks(owner, &ids, TTL).await {
        Ok(m) => m,
        Err(e) => return vec![Err(e)],
    };
    batch
        .into_iter()
        .map(|r| {
            r.map(|b| {
                let m = marked.contains(&b.id);
                (b, m)
            })
        })
        .collect()
}

/// Waits until no gc mark is on `id` (its gc has deleted the object, or died and the mark
/// expired), renewing the claim meanwhile.
pub(crate) async fn wait_unmarked(catalog: &dyn Catalog, owner: &str, id: ChunkId) -> Result<()> {
    let deadline = Instant::now() + MARK_TTL * 4;
    tracing::info!(chunk = %id, "a gc is deleting this chunk's object; storing it again after");
    loop {
        if catalog.claim_chunks(owner, &[id], TTL).await?.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Precondition(format!(
                "chunk {id} stayed marked for deletion by a gc for {} s; try again",
                (MARK_TTL * 4).as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The chunks of `manifest` whose objects are not in the store (HEAD requests, a few at a
/// time).
pub(crate) async fn missing_objects(
    store: &dyn ObjectStore,
    manifest: &Manifest,
) -> Result<Vec<ChunkId>> {
    let ids: HashSet<ChunkId> = manifest.entries().iter().map(|e| e.id).collect();
    let results: Vec<Result<Option<ChunkId>>> = futures::stream::iter(ids)
        .map(|id| async move {
            let key = object_key(&id);
            match retry(&RetryPolicy::STORE, || store.head(&key)).await {
                Ok(_) => Ok(None),
                Err(object_store::Error::NotFound { .. }) => Ok(Some(id)),
                Err(e) => Err(to_error(&format!("checking {key}"), e)),
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut missing = Vec::new();
    for r in results {
        if let Some(id) = r? {
            missing.push(id);
        }
    }
    missing.sort();
    Ok(missing)
}
