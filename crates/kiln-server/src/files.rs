//! `GET /v1/courses/{course}/files/{*path}`: one file of a version, with a content type, an
//! ETag, and `Cache-Control: immutable` when the URL pins the version.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Mutex, PoisonError};

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use kiln_core::Error;
use kiln_core::ids::{ChunkId, CourseId, VersionId};
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;

/// Files up to this size are read in one go; larger ones are streamed.
const READ_WHOLE: u64 = 64 * 1024;

/// A URL with `?version=` names bytes that never change.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Without `?version=` the bytes follow the current version, which can move at any time.
const MUTABLE: &str = "public, max-age=5";

#[derive(Deserialize)]
pub(crate) struct FileQuery {
    version: Option<String>,
}

/// Serves one file.
pub(crate) async fn get_file(
    State(st): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<FileQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // The path arrives percent-decoded: `%2e%2e` is `..` here and refused below.
    let Path((course, rel)) = path.map_err(|e| ApiError::invalid(format!("invalid path: {e}")))?;
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("invalid query: {e}")))?;
    let course = CourseId::new(course)?;
    let pinned = query.version.map(VersionId::new).transpose()?;
    let resolved = st
        .cache
        .resolve_file(&course, pinned.as_ref(), &rel)
        .await?;

    let path_hash = blake3::hash(resolved.rel_path.as_bytes());
    let etag = format!(
        "\"{}-{}\"",
        &resolved.chunk.id.to_hex()[..32],
        &path_hash.to_hex()[..16]
    );
    let cache_control = if pinned.is_some() { IMMUTABLE } else { MUTABLE };
    let version = resolved.ensured.version.to_string();
    let mut head = HeaderMap::new();
    head.insert(header::ETAG, hv(&etag)?);
    head.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    head.insert("x-kiln-version", hv(&version)?);
    head.extend(crate::courses::stale_header(resolved.ensured.stale));
    if if_none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, head).into_response());
    }
    let mime = mime_guess::from_path(&resolved.rel_path).first_or_octet_stream();
    head.insert(header::CONTENT_TYPE, hv(mime.as_ref())?);
    head.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );

    // Opened and (when small) read right here rather than in `spawn_blocking`: the cache
    // directory is local disk, a small chunk file is in the page cache, and these few
    // syscalls take microseconds, less than a hop to the blocking pool and back (measured
    // with scripts/bench-load.sh). Large files are streamed through tokio::fs.
    let key = (resolved.chunk.id, resolved.rel_path.clone());
    if let Some(bytes) = st.small_files.get(&key) {
        head.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        return Ok((StatusCode::OK, head, Body::from(bytes)).into_response());
    }
    let opened = open_small(&resolved);
    let body = match opened? {
        Opened::Whole(buf) => {
            drop(resolved);
            let buf = Bytes::from(buf);
            st.small_files.put(key, buf.clone());
            head.insert(header::CONTENT_LENGTH, HeaderValue::from(buf.len()));
            Body::from(buf)
        }
        Opened::Stream(file, len) => {
            head.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            let stream = tokio_util::io::ReaderStream::with_capacity(
                tokio::fs::File::from_std(file),
                64 * 1024,
            );
            // The stream holds the pin: the chunk stays while its bytes are being sent.
            let stream = futures::StreamExt::map(stream, move |chunk| {
                let _pin = &resolved;
                chunk
            });
            Body::from_stream(stream)
        }
    };
    Ok((StatusCode::OK, head, body).into_response())
}

fn open_small(resolved: &kiln_load::ResolvedFile) -> Result<Opened, Error> {
    let (mut file, meta) = resolved.open()?;
    if meta.len() <= READ_WHOLE {
        // The file is immutable: its length is known, one read fills the buffer.
        let mut buf = vec![0; meta.len() as usize];
        file.read_exact(&mut buf)
            .map_err(|e| Error::backend("kiln-server", e))?;
        Ok(Opened::Whole(buf))
    } else {
        Ok(Opened::Stream(file, meta.len()))
    }
}

enum Opened {
    Whole(Vec<u8>),
    Stream(std::fs::File, u64),
}

fn hv(s: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(s).map_err(|e| ApiError(Error::backend("kiln-server", e)))
}

/// Whether `If-None-Match` lists `etag` (or `*`); weak tags compare equal too.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// Small files kept in memory by (chunk id, path), up to a byte cap. A chunk's content never
/// changes, so a copy is never stale; it only saves the open and read of a hot file. The
/// request still resolves the version and ensures (pins) the chunk first.
#[derive(Debug, Default)]
pub(crate) struct SmallFiles {
    map: Mutex<(HashMap<FileKey, Bytes>, usize)>,
}

/// A file of a chunk: the chunk's id and the course-relative path.
type FileKey = (ChunkId, String);

/// The memory the small-file copies may use.
const SMALL_FILES_CAP: usize = 32 << 20;

impl SmallFiles {
    fn get(&self, key: &FileKey) -> Option<Bytes> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.0.get(key).cloned()
    }

    fn put(&self, key: FileKey, bytes: Bytes) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.1 + bytes.len() > SMALL_FILES_CAP {
            // Crude but bounded: start over rather than track recency on every hit.
            map.0.clear();
            map.1 = 0;
        }
        map.1 += bytes.len();
        if let Some(old) = map.0.insert(key, bytes) {
            map.1 -= old.len();
        }
    }
}
