//! Chunks' tables of contents in the catalog (see `kiln_core::toc`): at publish, the ones the
//! build made, and for the version's other chunks (reused from an earlier version, perhaps one
//! synced before kiln kept tables of contents) read back once from their stored bundles, all
//! written before the version is published; and on demand (`kiln verify --repair`, a mount
//! that meets a chunk without one) for chunks that lack one.

use std::collections::HashSet;

use crate::bundle::{read_bundle, toc_of};
use crate::key::object_key;
use crate::retry::{RetryPolicy, retry};
use crate::store_error::to_error;
use kiln_core::catalog::Catalog;
use kiln_core::ids::ChunkId;
use kiln_core::manifest::Manifest;
use kiln_core::toc::Toc;
use kiln_core::{Error, Result};
use object_store::ObjectStore;

/// Tables of contents per catalog call.
const BATCH: usize = 500;

/// Stores the tables of contents of `manifest`'s chunks: `made` as given, the ones the
/// catalog lacks from their bundles. Returns how many were read back from the store.
pub async fn store(
    catalog: &dyn Catalog,
    store: &dyn ObjectStore,
    manifest: &Manifest,
    made: Vec<(ChunkId, Toc)>,
) -> Result<usize> {
    let ids = manifest.entries().iter().map(|e| e.id).collect();
    store_ids(catalog, store, ids, made).await
}

/// Like [`store`], for a version synced against `basis` (a version this sync's kind of
/// publish wrote, whose chunks have their tables of contents already): only the chunks
/// `basis` does not hold are looked up, so an incremental sync's cost follows the change.
pub async fn store_after(
    catalog: &dyn Catalog,
    store: &dyn ObjectStore,
    manifest: &Manifest,
    made: Vec<(ChunkId, Toc)>,
    basis: &Manifest,
) -> Result<usize> {
    let old: HashSet<ChunkId> = basis.entries().iter().map(|e| e.id).collect();
    let ids = manifest
        .entries()
        .iter()
        .map(|e| e.id)
        .filter(|id| !old.contains(id))
        .collect();
    store_ids(catalog, store, ids, made).await
}

/// Stores a table of contents for each of `ids` that lacks one, read from its bundle
/// (`kiln verify --repair`). Returns how many it wrote.
pub async fn backfill(
    catalog: &dyn Catalog,
    store: &dyn ObjectStore,
    ids: Vec<ChunkId>,
) -> Result<usize> {
    store_ids(catalog, store, ids, Vec::new()).await
}

async fn store_ids(
    catalog: &dyn Catalog,
    store: &dyn ObjectStore,
    ids: Vec<ChunkId>,
    mut made: Vec<(ChunkId, Toc)>,
) -> Result<usize> {
    let known: HashSet<ChunkId> = made.iter().map(|(id, _)| *id).collect();
    let mut others: Vec<ChunkId> = ids.into_iter().filter(|id| !known.contains(id)).collect();
    others.sort_unstable();
    others.dedup();
    let mut read_back = 0;
    for ids in others.chunks(BATCH) {
        let have = catalog.tocs(ids).await?;
        for id in ids.iter().filter(|id| !have.contains_key(id)) {
            let key = object_key(id);
            let get = || async { store.get(&key).await?.bytes().await };
            let bytes = retry(&RetryPolicy::STORE, get).await.map_err(|e| {
                to_error(
                    &format!("reading bundle {key} for its table of contents"),
                    e,
                )
            })?;
            let id = *id;
            let toc =
                tokio::task::spawn_blocking(move || read_bundle(&bytes, id).map(|e| toc_of(&e)))
                    .await
                    .map_err(|e| Error::backend("bundle", format!("reading bundle {id}: {e}")))?
                    .map_err(|e| Error::backend("bundle", format!("reading bundle {id}: {e}")))?;
            made.push((id, toc));
            read_back += 1;
        }
    }
    for batch in made.chunks(BATCH) {
        catalog.put_tocs(batch).await?;
    }
    Ok(read_back)
}
