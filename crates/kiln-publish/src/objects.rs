//! Content-addressed published objects, read through a disk cache: an object is fetched
//! from the store once, checked against its name, and kept under `<dir>/<kind>/<id>` (they
//! never change, so nothing is ever refreshed; they are small, so nothing is evicted).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use kiln_chunk::retry::{RetryPolicy, retry};
use kiln_chunk::store_error::to_error;
use kiln_core::{Error, Result};
use object_store::ObjectStore;

use crate::format::Digest;
use crate::keys::{self, Kind};

/// Reads content-addressed objects, from disk when it can.
#[derive(Debug)]
pub(crate) struct Objects {
    store: Arc<dyn ObjectStore>,
    dir: Option<PathBuf>,
    /// GETs sent to the store for these objects.
    pub(crate) gets: AtomicU64,
    /// Bytes those GETs returned.
    pub(crate) bytes: AtomicU64,
}

impl Objects {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, dir: Option<PathBuf>) -> Objects {
        Objects {
            store,
            dir,
            gets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The object's bytes, checked against its id.
    pub(crate) async fn get(&self, kind: Kind, id: &Digest) -> Result<Bytes> {
        let file = self
            .dir
            .as_ref()
            .map(|d| d.join(kind.dir()).join(id.to_string()));
        if let Some(f) = &file
            && let Ok(bytes) = tokio::fs::read(f).await
        {
            if Digest::of(&bytes) == *id {
                return Ok(bytes.into());
            }
            // A damaged cache file costs a fetch, not an error.
            let _ = tokio::fs::remove_file(f).await;
        }
        let key = keys::object(kind, id);
        self.gets.fetch_add(1, Ordering::Relaxed);
        let get = || async { self.store.get(&key).await?.bytes().await };
        let bytes = retry(&RetryPolicy::STORE, get)
            .await
            .map_err(|e| to_error(&format!("reading {key}"), e))?;
        self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        check(kind, id, &bytes)?;
        if let Some(f) = file {
            // Best effort: a cache that cannot be written is read from the store next time.
            if let Err(e) = write_atomic(&f, &bytes).await {
                tracing::debug!("keeping {} on disk: {e}", f.display());
            }
        }
        Ok(bytes)
    }
}

/// Fails unless `bytes` hash to `id`, the name of a `kind` object.
pub(crate) fn check(kind: Kind, id: &Digest, bytes: &[u8]) -> Result<()> {
    if Digest::of(bytes) == *id {
        return Ok(());
    }
    Err(Error::backend(
        "published",
        format!(
            "object {} does not hash to its name: it is corrupt",
            keys::object(kind, id)
        ),
    ))
}

/// Writes `bytes` to `path` by a rename, so a reader sees all of it or nothing.
async fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("object files live in a directory");
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object"),
        std::process::id()
    ));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, path).await
}
