//! `kiln gc`: deleting store objects that no version references, after a grace period.
//!
//! Safety against a concurrent sync: gc holds every known course's sync lock while it
//! decides and deletes, forgets the memo entries of the doomed chunks before deleting them
//! (so no later sync skips an upload because of them), and only deletes objects older than
//! the grace period, which covers uploads of a sync that has not published yet.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kiln_core::catalog::Catalog;
use kiln_core::ids::ChunkId;
use kiln_core::time::Timestamp;
use kiln_core::{Error, Result};
use object_store::ObjectStore;
use object_store::path::Path as StorePath;

/// What a gc did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Objects deleted.
    pub objects_deleted: u64,
    /// Their bytes.
    pub bytes_freed: u64,
    /// Objects kept because a version references them.
    pub objects_kept: u64,
}

fn store_err(e: object_store::Error) -> Error {
    Error::backend("object store", e)
}

/// The chunk id of an object key `chunks/<xx>/<id>.tar.zst`, if it is one.
fn chunk_of(key: &str) -> Option<ChunkId> {
    let name = key.strip_prefix("chunks/")?.split('/').nth(1)?;
    name.strip_suffix(".tar.zst")?.parse().ok()
}

/// Deletes unreferenced chunk objects last modified more than `grace` ago.
pub async fn gc(
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn ObjectStore>,
    grace: Duration,
) -> Result<GcReport> {
    let owner = format!("gc-{}-{}", std::process::id(), Timestamp::now().0);
    let courses = catalog.courses().await?;
    let mut held = Vec::new();
    let result = async {
        for c in &courses {
            let name = crate::lock::lock_name(c);
            if !catalog
                .try_lock(&name, &owner, Duration::from_secs(600))
                .await?
            {
                return Err(Error::Precondition(format!(
                    "course {c} is being synced; run gc again later"
                )));
            }
            held.push(name);
        }
        let referenced = catalog.referenced_chunks().await?;
        let cutoff = Timestamp::now().minus(grace);
        let prefix = StorePath::from("chunks");
        let mut doomed = Vec::new();
        let mut report = GcReport::default();
        let mut listing = store.list(Some(&prefix));
        while let Some(meta) = listing.try_next().await.map_err(store_err)? {
            let Some(id) = chunk_of(meta.location.as_ref()) else {
                continue;
            };
            let old = meta.last_modified.timestamp_millis() < cutoff.0;
            if referenced.contains(&id) || !old {
                report.objects_kept += 1;
            } else {
                doomed.push((id, meta.location, meta.size));
            }
        }
        let ids: Vec<ChunkId> = doomed.iter().map(|(id, _, _)| *id).collect();
        catalog.memo_forget(&ids).await?;
        let deleted: Vec<u64> = futures::stream::iter(doomed)
            .map(|(_, location, size)| {
                let store = store.clone();
                async move {
                    match store.delete(&location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(size),
                        Err(e) => Err(store_err(e)),
                    }
                }
            })
            .buffer_unordered(16)
            .try_collect()
            .await?;
        report.objects_deleted = deleted.len() as u64;
        report.bytes_freed = deleted.iter().sum();
        Ok(report)
    }
    .await;
    for name in held {
        let _ = catalog.unlock(&name, &owner).await;
    }
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_chunk_keys_parse() {
        let id = "ab".repeat(32);
        assert!(super::chunk_of(&format!("chunks/ab/{id}.tar.zst")).is_some());
        assert!(super::chunk_of("chunks/ab/readme.txt").is_none());
        assert!(super::chunk_of("other/x").is_none());
    }
}
