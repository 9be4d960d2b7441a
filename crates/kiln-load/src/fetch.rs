//! Fetching one chunk into place: the cross-process lock, download with retries, one more
//! fetch after a corrupt bundle, and the atomic rename.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use kiln_core::ids::CourseId;
use kiln_core::manifest::ManifestEntry;
use kiln_core::{Error, Result};
use object_store::GetResultPayload;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::cache::Inner;
use crate::extract::{Fault, Unpacked, unpack_verified};
use crate::fsutil;
use crate::health::Backend;
use crate::metrics::inc;

/// What a fetch did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fetched {
    /// Bytes of the extracted files.
    pub(crate) size: u64,
    /// False when another process had fetched it meanwhile.
    pub(crate) downloaded: bool,
}

/// Makes the chunk present on disk. The caller records the outcome in the index.
pub(crate) async fn fetch(
    inner: &Arc<Inner>,
    course: &CourseId,
    e: &ManifestEntry,
) -> Result<Fetched> {
    let started = Instant::now();
    inner.make_room(e.size);
    let lock_path = inner.paths.lock_file(course, &e.id);
    let final_dir = inner.paths.chunk_dir(course, &e.id);
    let dir = final_dir.clone();
    // Another process may hold the lock while it downloads the same chunk: wait for it,
    // then look again, since it has most likely put the chunk in place.
    let (lock, existing) = blocking(move || {
        let lock = fsutil::lock_exclusive(&lock_path)?;
        let existing = if dir.is_dir() {
            Some(fsutil::tree_size(&dir)?)
        } else {
            None
        };
        Ok((lock, existing))
    })
    .await?;
    if let Some(size) = existing {
        return Ok(Fetched {
            size,
            downloaded: false,
        });
    }
    let chunk = e.chunk_ref();
    let mut corrupt_before = false;
    let mut attempt = 0u32;
    let result = loop {
        match download_once(inner, course, e, &final_dir).await {
            Ok(u) => {
                inc(&inner.metrics.downloads);
                inner
                    .metrics
                    .bytes_downloaded
                    .fetch_add(u.bytes_in, std::sync::atomic::Ordering::Relaxed);
                inner
                    .metrics
                    .bytes_extracted
                    .fetch_add(u.size, std::sync::atomic::Ordering::Relaxed);
                inner.metrics.download_latency.observe(started.elapsed());
                break Ok(Fetched {
                    size: u.size,
                    downloaded: true,
                });
            }
            Err(Fault::Corrupt(why)) => {
                inc(&inner.metrics.corrupt);
                if corrupt_before {
                    tracing::error!(%course, %chunk, id = %e.id, "corrupt bundle in the store: {why}");
                    break Err(Error::backend(
                        "kiln-load",
                        format!(
                            "chunk {chunk} ({}) of course {course} is corrupt in the object store: {why}",
                            e.id
                        ),
                    ));
                }
                tracing::warn!(%course, %chunk, id = %e.id, "corrupt bundle, fetching once more: {why}");
                corrupt_before = true;
            }
            Err(Fault::Transient(err)) => {
                if attempt >= inner.config.retries {
                    break Err(err);
                }
                attempt += 1;
                inc(&inner.metrics.retries);
                let delay = backoff(inner.config.retry_base, attempt);
                tracing::warn!(%course, %chunk, attempt, ?delay, "store error, retrying: {err}");
                tokio::time::sleep(delay).await;
            }
            Err(Fault::Final(err)) => break Err(err),
        }
    };
    if result.is_err() {
        inc(&inner.metrics.errors);
    }
    drop(lock);
    result
}

/// Full jitter over an exponential ceiling (capped at 5 s).
fn backoff(base: Duration, attempt: u32) -> Duration {
    let ceiling = base
        .saturating_mul(1u32 << attempt.min(16))
        .min(Duration::from_secs(5));
    let ms = ceiling.as_millis() as u64;
    Duration::from_millis(rand::random_range(0..=ms))
}

/// One GET of the bundle, unpacked and verified into staging, then renamed into place.
async fn download_once(
    inner: &Arc<Inner>,
    course: &CourseId,
    e: &ManifestEntry,
    final_dir: &Path,
) -> Result<Unpacked, Fault> {
    let key = object_store::path::Path::from(e.id.object_key());
    let got = inner.store.get(&key).await;
    let answered = match &got {
        Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::backend("object store", e.to_string())),
    };
    let _ = inner.health.record(Backend::ObjectStore, answered);
    let got = match got {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(Fault::Final(Error::not_found(format!(
                "bundle {key} of chunk {} of course {course} in the object store",
                e.chunk_ref()
            ))));
        }
        Err(err) => {
            return Err(Fault::Transient(Error::Unavailable {
                what: "object store".into(),
                source: Box::new(err),
            }));
        }
    };
    let staging = inner.paths.staging(course, &e.id);
    let (id, size, final_dir) = (e.id, e.size, final_dir.to_path_buf());
    let job = move |reader: Box<dyn io::Read + Send>| {
        // Staging may have been deleted with a disposable cache directory.
        fsutil::make_parent(&staging).map_err(|e| Fault::Final(Error::backend("kiln-load", e)))?;
        let r = unpack_verified(reader, &id, size, &staging)
            .and_then(|u| publish(&staging, &final_dir).map(|()| u));
        if r.is_err() {
            let _ = fsutil::remove_tree(&staging);
        }
        r
    };
    let joined = match got.payload {
        // A local file is read directly: no async hops per block.
        GetResultPayload::File(file, _) => {
            tokio::task::spawn_blocking(move || job(Box::new(file))).await
        }
        GetResultPayload::Stream(stream) => {
            let reader = SyncIoBridge::new(StreamReader::new(stream.map_err(io::Error::other)));
            tokio::task::spawn_blocking(move || job(Box::new(reader))).await
        }
    };
    let chunk = e.chunk_ref();
    // A local failure (a full disk, say) names the chunk it was filling the cache with.
    joined
        .map_err(|err| Fault::Final(Error::backend("kiln-load", err)))?
        .map_err(|f| match f {
            Fault::Final(Error::Backend { backend, source }) => Fault::Final(Error::Backend {
                backend,
                source: format!(
                    "extracting chunk {chunk} ({}) of course {course} into the cache: {source}",
                    e.id
                )
                .into(),
            }),
            other => other,
        })
}

/// Seals the staged chunk read-only and renames it into place.
fn publish(staging: &Path, final_dir: &Path) -> Result<(), Fault> {
    let local = |e: io::Error| Fault::Final(Error::backend("kiln-load", e));
    fsutil::seal_subdirs(staging).map_err(local)?;
    if let Some(parent) = final_dir.parent() {
        std::fs::create_dir_all(parent).map_err(local)?;
    }
    match std::fs::rename(staging, final_dir) {
        Ok(()) => {}
        // Present already (put there outside the lock, e.g. by hand): keep it.
        Err(_) if final_dir.is_dir() => {
            fsutil::remove_tree(staging).map_err(local)?;
        }
        Err(e) => return Err(local(e)),
    }
    fsutil::seal(final_dir).map_err(local)
}

/// Runs blocking filesystem work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| Error::backend("kiln-load", e)),
        Err(e) => Err(Error::backend("kiln-load", e)),
    }
}
