//! `GET /v1/courses/{course}/files/{*path}`: one file of a version, as a static file server
//! answers: a content type ([`mime`]), an ETag, `Cache-Control: immutable` when the URL pins
//! the version, one byte range ([`range`]), and HEAD (axum answers it with the GET handler's
//! headers and no body).

mod mime;
mod range;

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
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
use tokio::io::AsyncReadExt;

use crate::AppState;
use crate::error::{ApiError, json_error};
use range::Span;

/// Files up to this size are read in one go (and kept in [`SmallFiles`]); larger ones are
/// streamed from disk in pieces of [`STREAM_PIECE`], only the bytes a range asks for.
const READ_WHOLE: u64 = 64 * 1024;

/// The size of one body frame of a streamed file.
const STREAM_PIECE: usize = 64 * 1024;

/// A URL with `?version=` names bytes that never change.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Without `?version=` the bytes follow the current version, which can move at any time.
const MUTABLE: &str = "public, max-age=5";

/// The query of a file request.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FileQuery {
    /// The version to read (default: the current one). With it the answer is immutable.
    #[param(pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")]
    version: Option<String>,
}

/// `GET /v1/courses/{course}/files/{path}`: one file, or the one byte range of it that
/// `Range` asks for.
#[utoipa::path(get, path = "/v1/courses/{course}/files/{path}", tag = "courses",
    params(
        ("course" = String, Path, description = "The course id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$"),
        ("path" = String, Path, description = "The course-relative path (may contain `/`; no `.` or `..` segment, backslash or control character)",
            pattern = r"^(?:[^./\\\x00-\x1f\x7f-\x9f][^/\\\x00-\x1f\x7f-\x9f]*|\.[^./\\\x00-\x1f\x7f-\x9f][^/\\\x00-\x1f\x7f-\x9f]*|\.\.[^/\\\x00-\x1f\x7f-\x9f]+)(?:/(?:[^./\\\x00-\x1f\x7f-\x9f][^/\\\x00-\x1f\x7f-\x9f]*|\.[^./\\\x00-\x1f\x7f-\x9f][^/\\\x00-\x1f\x7f-\x9f]*|\.\.[^/\\\x00-\x1f\x7f-\x9f]+))*$"),
        FileQuery,
        ("range" = Option<String>, Header, description = "One byte range: `bytes=0-1023`, `bytes=-500`"),
        ("if-range" = Option<String>, Header, description = "The ETag the client's partial copy has"),
        ("if-none-match" = Option<String>, Header, description = "ETags the client has")),
    responses(
        (status = 200, description = "The file, as the content type its name gives (see `content-type`)", content_type = "*/*", body = serde_json::Value,
            headers(
                ("content-type" = String, description = "The file's type; text types carry `charset=utf-8`"),
                ("etag" = String, description = "A strong tag of these bytes"),
                ("cache-control" = String, description = "Immutable when `version` is given"),
                ("accept-ranges" = String, description = "`bytes`"),
                ("x-kiln-version" = String, description = "The version read"),
                ("x-kiln-stale" = u64, description = "Present when the catalog could not be reached: seconds since the current version was last confirmed"))),
        (status = 206, description = "The range asked for", content_type = "*/*", body = serde_json::Value,
            headers(
                ("content-range" = String, description = "`bytes START-END/LENGTH`"),
                ("etag" = String, description = "A strong tag of the whole file"),
                ("x-kiln-version" = String, description = "The version read"))),
        (status = 304, description = "The client's copy is current",
            headers(("etag" = String, description = "The tag"))),
        (status = 400, description = "A bad course id, path or version", body = crate::error::Body),
        (status = 404, description = "No such course, version or file", body = crate::error::Body),
        (status = 416, description = "The range is outside the file", body = crate::error::Body,
            headers(("content-range" = String, description = "`bytes */LENGTH`")))))]
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
    head.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if if_none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, head).into_response());
    }
    head.insert(
        header::CONTENT_TYPE,
        hv(&mime::content_type(&resolved.rel_path))?,
    );
    crate::untrusted::sandbox(&mut head);

    // Opened and (when small) read right here rather than in `spawn_blocking`: the cache
    // directory is local disk, a small chunk file is in the page cache, and these few
    // syscalls take microseconds, less than a hop to the blocking pool and back (measured
    // with scripts/bench-load.sh). Large files are streamed through tokio::fs.
    let key = (resolved.chunk.id, resolved.rel_path.clone());
    let source = match st.small_files.get(&key) {
        Some(bytes) => Source::Memory(bytes),
        None => {
            let opened = open(&resolved)?;
            if let Source::Memory(bytes) = &opened {
                st.small_files.put(key, bytes.clone());
            }
            opened
        }
    };
    let len = source.len();
    let (status, span) = match range::requested(&headers, &etag, len) {
        Span::Whole => (StatusCode::OK, 0..len),
        Span::Part(r) => {
            let content_range = format!("bytes {}-{}/{len}", r.start(), r.end());
            head.insert(header::CONTENT_RANGE, hv(&content_range)?);
            (StatusCode::PARTIAL_CONTENT, *r.start()..*r.end() + 1)
        }
        Span::Unsatisfiable => return unsatisfiable(head, len),
    };
    head.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(span.end - span.start),
    );
    let body = match source {
        Source::Memory(bytes) => {
            drop(resolved);
            // `span` is within `len`, which is `bytes.len()`: it fits a usize.
            Body::from(bytes.slice(span.start as usize..span.end as usize))
        }
        Source::File(mut file, _) => {
            if span.start > 0 {
                file.seek(SeekFrom::Start(span.start))
                    .map_err(|e| Error::backend("kiln-server", e))?;
            }
            let part = tokio::fs::File::from_std(file).take(span.end - span.start);
            let stream = tokio_util::io::ReaderStream::with_capacity(part, STREAM_PIECE);
            // The stream holds the pin: the chunk stays while its bytes are being sent.
            let stream = futures::StreamExt::map(stream, move |chunk| {
                let _pin = &resolved;
                chunk
            });
            Body::from_stream(stream)
        }
    };
    Ok((status, head, body).into_response())
}

/// 416 with `Content-Range: bytes */len`, so the client learns the length; no caching
/// headers (an error is not the file).
fn unsatisfiable(head: HeaderMap, len: u64) -> Result<Response, ApiError> {
    let mut resp = json_error(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
        format!("the range is outside the file ({len} bytes)"),
    );
    let h = resp.headers_mut();
    h.insert(header::CONTENT_RANGE, hv(&format!("bytes */{len}"))?);
    for name in [header::ACCEPT_RANGES, header::ETAG] {
        if let Some(v) = head.get(&name) {
            h.insert(name, v.clone());
        }
    }
    Ok(resp)
}

/// Where a file's bytes come from.
enum Source {
    /// A small file, read whole (or found in [`SmallFiles`]).
    Memory(Bytes),
    /// A large file, open, and its length.
    File(std::fs::File, u64),
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::Memory(b) => b.len() as u64,
            Source::File(_, len) => *len,
        }
    }
}

/// Opens the file: read whole when small, else left open to stream.
fn open(resolved: &kiln_load::ResolvedFile) -> Result<Source, Error> {
    let (mut file, meta) = resolved.open()?;
    if meta.len() <= READ_WHOLE {
        // The file is immutable: its length is known, one read fills the buffer.
        let mut buf = vec![0; meta.len() as usize];
        file.read_exact(&mut buf)
            .map_err(|e| Error::backend("kiln-server", e))?;
        Ok(Source::Memory(Bytes::from(buf)))
    } else {
        Ok(Source::File(file, meta.len()))
    }
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
