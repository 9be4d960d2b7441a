//! Fetching one chunk into place: the cross-process lock, download with retries, one more
//! fetch after a corrupt bundle, and the atomic rename.
//!
//! The fetcher knows the store and the disk, not the cache: it makes one chunk present and
//! says what it installed. The cache, which owns the index and the byte budget, makes room
//! before a fetch and records the chunk (and evicts) after it.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::TryStreamExt;
use kiln_chunk::key::object_key;
use kiln_chunk::retry::{RetryPolicy, Transient, retry_observed};
use kiln_chunk::store_error::{self, to_error};
use kiln_chunk::unpack::{UnpackError, Unpacked, unpack_verified};
use kiln_core::ids::CourseId;
use kiln_core::manifest::ManifestEntry;
use kiln_core::{Error, Result};
use object_store::{GetResultPayload, ObjectStore};
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::fsutil::{self, blocking};
use crate::health::{Backend, Health};
use crate::metrics::{Metrics, inc};
use crate::paths::Paths;

/// What a fetch installed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fetched {
    /// What the chunk directory takes on disk ([`fsutil::disk_usage`]): what the budget
    /// counts.
    pub(crate) size: u64,
    /// False when another process had fetched it meanwhile.
    pub(crate) downloaded: bool,
}

/// Why an attempt to fetch a chunk failed, which decides what happens next.
#[derive(Debug)]
enum Fault {
    /// The store failed; retry with backoff.
    Transient(Error),
    /// The bytes are not the chunk (hash mismatch, bad zstd or tar, an entry the chunk rule
    /// refuses): delete and fetch once more.
    Corrupt(String),
    /// Retrying cannot help (not found).
    Final(Error),
    /// The cache's disk refused (no space, a name too long, no permission): retrying cannot
    /// help; the fetch names the chunk.
    Disk(io::Error),
}

impl Transient for Fault {
    fn is_transient(&self) -> bool {
        matches!(self, Fault::Transient(_))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Transient(e) | Fault::Final(e) => e.fmt(f),
            Fault::Corrupt(why) => write!(f, "corrupt bundle: {why}"),
            Fault::Disk(e) => e.fmt(f),
        }
    }
}

/// Downloads chunks into the cache directory; borrowed from the cache for one fetch.
pub(crate) struct Fetcher<'a> {
    pub(crate) store: &'a dyn ObjectStore,
    pub(crate) paths: &'a Paths,
    pub(crate) metrics: &'a Metrics,
    pub(crate) health: &'a Health,
    pub(crate) retry: RetryPolicy,
}

impl Fetcher<'_> {
    /// Makes the chunk present on disk. The caller records the outcome in the index.
    pub(crate) async fn fetch(&self, course: &CourseId, e: &ManifestEntry) -> Result<Fetched> {
        let started = Instant::now();
        let lock_path = self.paths.lock_file(course, &e.id);
        let final_dir = self.paths.chunk_dir(course, &e.id);
        let dir = final_dir.clone();
        // Another process may hold the lock while it downloads the same chunk: wait for
        // it, then look again, since it has most likely put the chunk in place.
        let chunk = e.chunk_ref();
        let what = format!(
            "locking chunk {chunk} ({}) of course {course} in the cache",
            e.id
        );
        let (lock, existing) = blocking(what, move || {
            let lock = fsutil::lock_exclusive(&lock_path)?;
            let existing = if dir.is_dir() {
                Some(fsutil::disk_usage(&dir)?)
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
        let mut corrupt_before = false;
        let result = loop {
            let attempt = retry_observed(
                &self.retry,
                || self.download_once(course, e, &final_dir),
                |attempt, delay, fault| {
                    inc(&self.metrics.retries);
                    tracing::warn!(%course, %chunk, attempt, ?delay, "store error, retrying: {fault}");
                },
            )
            .await;
            match attempt {
                Ok((u, on_disk)) => {
                    let m = self.metrics;
                    inc(&m.downloads);
                    m.bytes_downloaded.fetch_add(u.bytes_in, Ordering::Relaxed);
                    m.bytes_extracted.fetch_add(u.size, Ordering::Relaxed);
                    m.download_latency.observe(started.elapsed());
                    break Ok(Fetched {
                        size: on_disk,
                        downloaded: true,
                    });
                }
                Err(Fault::Corrupt(why)) => {
                    inc(&self.metrics.corrupt);
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
                Err(Fault::Transient(err) | Fault::Final(err)) => break Err(err),
                // A local failure (a full disk, a name the file system cannot hold) names
                // the chunk it was filling the cache with.
                Err(Fault::Disk(err)) => {
                    break Err(Error::disk(
                        format!(
                            "extracting chunk {chunk} ({}) of course {course} into the cache",
                            e.id
                        ),
                        err,
                    ));
                }
            }
        };
        if result.is_err() {
            inc(&self.metrics.errors);
        }
        drop(lock);
        result
    }

    /// One GET of the bundle, unpacked and verified into staging, measured on disk, then
    /// renamed into place.
    async fn download_once(
        &self,
        course: &CourseId,
        e: &ManifestEntry,
        final_dir: &Path,
    ) -> Result<(Unpacked, u64), Fault> {
        let key = object_key(&e.id);
        let got = self.store.get(&key).await;
        let transient = got.as_ref().err().is_some_and(store_error::is_transient);
        // Not-found is an answer (the health record says so); the chunk names it better.
        let got = self
            .health
            .record(
                Backend::ObjectStore,
                got.map_err(|err| to_error(&format!("reading {key}"), err)),
            )
            .map_err(|err| match err {
                Error::NotFound { .. } => Fault::Final(Error::not_found(format!(
                    "bundle {key} of chunk {} of course {course} in the object store",
                    e.chunk_ref()
                ))),
                err if transient => Fault::Transient(err),
                err => Fault::Final(err),
            })?;
        let staging = self.paths.staging(course, &e.id);
        let (id, size, final_dir) = (e.id, e.size, final_dir.to_path_buf());
        let job = move |reader: Box<dyn io::Read + Send>| {
            // Staging may have been deleted with a disposable cache directory.
            fsutil::make_parent(&staging).map_err(Fault::Disk)?;
            let r = unpack_verified(reader, &id, size, &staging)
                .map_err(|e| match e {
                    // The store's stream broke: the bytes may be fine.
                    UnpackError::Source(e) => Fault::Transient(Error::Unavailable {
                        what: "object store".into(),
                        source: Box::new(e),
                    }),
                    UnpackError::Corrupt(why) => Fault::Corrupt(why),
                    UnpackError::Local(e) => Fault::Disk(e),
                })
                .and_then(|u| {
                    let on_disk = fsutil::disk_usage(&staging).map_err(Fault::Disk)?;
                    publish(&staging, &final_dir)?;
                    Ok((u, on_disk))
                });
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
        joined.map_err(|err| Fault::Final(Error::backend("kiln-load", err)))?
    }
}

/// Seals the staged chunk read-only and renames it into place.
fn publish(staging: &Path, final_dir: &Path) -> Result<(), Fault> {
    let local = Fault::Disk;
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
