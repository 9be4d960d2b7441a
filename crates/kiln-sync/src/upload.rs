//! Uploading bundles to the object store: only missing keys, create-if-absent, retried on
//! transient errors with kiln-chunk's store policy ([`RetryPolicy::STORE`]).

use std::io::{Read, Seek, SeekFrom};

use bytes::Bytes;
use kiln_chunk::key::object_key;
use kiln_chunk::retry::{RetryPolicy, retry};
use kiln_chunk::store_error::to_error;
use kiln_core::Result;
use kiln_core::ids::ChunkId;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, WriteMultipart};

use crate::build::Spilled;

/// Part size of multipart uploads (S3's minimum is 5 MiB).
const PART_BYTES: usize = 8 << 20;

/// Uploads a bundle under its content address unless the store has it already.
/// Returns the number of bytes uploaded (0 if the object existed).
pub(crate) async fn upload(store: &dyn ObjectStore, id: ChunkId, data: Spilled) -> Result<u64> {
    let policy = RetryPolicy::STORE;
    let key = object_key(&id);
    match retry(&policy, || store.head(&key)).await {
        Ok(_) => return Ok(0),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(to_error(&format!("checking {key}"), e)),
    }
    match data {
        Spilled::Mem(v) => {
            let len = v.len() as u64;
            let bytes = Bytes::from(v);
            let opts = || PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            let put = retry(&policy, || {
                store.put_opts(&key, PutPayload::from(bytes.clone()), opts())
            })
            .await;
            match put {
                Ok(_) => Ok(len),
                // Someone stored the same content meanwhile: it is the same bytes.
                Err(object_store::Error::AlreadyExists { .. }) => Ok(0),
                // A store without create-if-absent: overwriting a content address is safe.
                Err(object_store::Error::NotImplemented) => {
                    retry(&policy, || store.put(&key, PutPayload::from(bytes.clone())))
                        .await
                        .map_err(|e| to_error(&format!("writing {key}"), e))?;
                    Ok(len)
                }
                Err(e) => Err(to_error(&format!("writing {key}"), e)),
            }
        }
        Spilled::File(file, len) => {
            let (file, key) = (&file, &key);
            // Each attempt reads the file from its start, through a handle of its own.
            retry(&policy, move || async move {
                let mut f = file.try_clone().map_err(spill_err)?;
                put_file(store, key, &mut f).await
            })
            .await
            .map_err(|e| to_error(&format!("writing {key}"), e))?;
            Ok(len)
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
    let io = spill_err;
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

/// A failed read of the spill file, as a store error (transient, like the upload's own).
fn spill_err(e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "spill file",
        source: Box::new(e),
    }
}
