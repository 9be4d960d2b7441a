//! Uploading bundles to the object store: only missing keys, create-if-absent, with retries
//! and jittered exponential backoff on transient errors.

use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use bytes::Bytes;
use kiln_core::ids::ChunkId;
use kiln_core::{Error, Result};
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, WriteMultipart};

use crate::build::Spilled;

/// Attempts per store operation before a transient error is reported.
const ATTEMPTS: u32 = 5;
/// Part size of multipart uploads (S3's minimum is 5 MiB).
const PART_BYTES: usize = 8 << 20;

/// Whether an object-store error may go away on retry.
fn transient(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
    )
}

/// Maps a store error to kiln's error.
pub(crate) fn store_err(what: &str, e: object_store::Error) -> Error {
    if transient(&e) {
        Error::Unavailable {
            what: format!("object store ({what})"),
            source: Box::new(e),
        }
    } else {
        Error::backend("object_store", format!("{what}: {e}"))
    }
}

/// Runs `op` until it succeeds, fails permanently, or [`ATTEMPTS`] transient failures.
pub(crate) async fn retry<T, F, Fut>(mut op: F) -> std::result::Result<T, object_store::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, object_store::Error>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if transient(&e) && attempt + 1 < ATTEMPTS => {
                attempt += 1;
                let base = 50u64 << attempt;
                let jitter = rand::random_range(0..=base);
                tracing::warn!(error = %e, attempt, "object store error, retrying");
                tokio::time::sleep(Duration::from_millis(base + jitter)).await;
            }
            other => return other,
        }
    }
}

/// Uploads a bundle under its content address unless the store has it already.
/// Returns the number of bytes uploaded (0 if the object existed).
pub(crate) async fn upload(store: &dyn ObjectStore, id: ChunkId, data: Spilled) -> Result<u64> {
    let key = Path::from(id.object_key());
    match retry(|| store.head(&key)).await {
        Ok(_) => return Ok(0),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(store_err(&format!("checking {key}"), e)),
    }
    match data {
        Spilled::Mem(v) => {
            let len = v.len() as u64;
            let bytes = Bytes::from(v);
            let opts = || PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            let put = retry(|| store.put_opts(&key, PutPayload::from(bytes.clone()), opts())).await;
            match put {
                Ok(_) => Ok(len),
                // Someone stored the same content meanwhile: it is the same bytes.
                Err(object_store::Error::AlreadyExists { .. }) => Ok(0),
                // A store without create-if-absent: overwriting a content address is safe.
                Err(object_store::Error::NotImplemented) => {
                    retry(|| store.put(&key, PutPayload::from(bytes.clone())))
                        .await
                        .map_err(|e| store_err(&format!("writing {key}"), e))?;
                    Ok(len)
                }
                Err(e) => Err(store_err(&format!("writing {key}"), e)),
            }
        }
        Spilled::File(mut file, len) => {
            let mut attempt = 0;
            loop {
                match put_file(store, &key, &mut file).await {
                    Ok(()) => return Ok(len),
                    Err(e) if transient(&e) && attempt + 1 < ATTEMPTS => attempt += 1,
                    Err(e) => return Err(store_err(&format!("writing {key}"), e)),
                }
            }
        }
    }
}

/// A multipart upload of a large bundle from its temporary file. The file reads block, but
/// only for bundles over 8 MiB compressed, 8 MiB at a time, each followed by an upload.
async fn put_file(
    store: &dyn ObjectStore,
    key: &Path,
    file: &mut std::fs::File,
) -> std::result::Result<(), object_store::Error> {
    let io = |e: std::io::Error| object_store::Error::Generic {
        store: "spill file",
        source: Box::new(e),
    };
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut upload =
        WriteMultipart::new_with_chunk_size(store.put_multipart(key).await?, PART_BYTES);
    let mut buf = vec![0u8; PART_BYTES];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        upload.wait_for_capacity(4).await?;
        upload.write(&buf[..n]);
    }
    upload.finish().await?;
    Ok(())
}
