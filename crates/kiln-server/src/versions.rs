//! What the dashboard shows of courses: every course with its current version, a course's
//! versions (with what each shares with the one before), a version's manifest, and the files
//! of one chunk of a version (from its table of contents, or, for a chunk synced before kiln
//! kept them, by ensuring the chunk on this server).

use std::collections::HashSet;

use axum::Json;
use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use kiln_core::ids::{ChunkRef, CourseId, VersionId};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;

/// Versions a listing looks at, newest first.
const MAX_VERSIONS: usize = 50;

/// The most files a chunk's listing returns.
const MAX_FILES: usize = 10_000;

/// The courses routes beyond DESIGN.md's contract.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/courses", get(list_courses))
        .route("/v1/courses/{course}/versions", get(list_versions))
        .route("/v1/courses/{course}/versions/{version}", get(show_version))
        .route(
            "/v1/courses/{course}/versions/{version}/files",
            get(chunk_files),
        )
}

/// A course and its current version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CourseView {
    /// The course id.
    course: String,
    /// Its current version (`null` before the first publish).
    version: Option<String>,
    /// When the current version was published (Unix milliseconds).
    published_at: Option<i64>,
}

/// `GET /v1/courses`: every course with its current version.
#[utoipa::path(get, path = "/v1/courses", tag = "courses",
    responses((status = 200, description = "The courses, by id", body = Vec<CourseView>)))]
pub(crate) async fn list_courses(
    State(st): State<AppState>,
) -> Result<Json<Vec<CourseView>>, ApiError> {
    let mut out = Vec::new();
    for course in st.content.courses().await? {
        let current = st.content.current(&course).await?;
        out.push(CourseView {
            course: course.to_string(),
            version: current.as_ref().map(|v| v.version.to_string()),
            published_at: current.map(|v| v.created_at.0),
        });
    }
    Ok(Json(out))
}

/// One version of a course.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct VersionView {
    /// The version id (a git source's commit hash).
    version: String,
    /// When it was first published (Unix milliseconds).
    created_at: i64,
    /// Whether it is the current version.
    current: bool,
    /// Its chunks.
    chunks: usize,
    /// Their bytes, uncompressed.
    bytes: u64,
    /// The bytes of its chunks that the version before it has too (stored once).
    shared_bytes: u64,
}

fn course_and_version(
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<(CourseId, VersionId), ApiError> {
    let Path((c, v)) = p.map_err(|e| ApiError::invalid(format!("invalid path: {e}")))?;
    Ok((CourseId::new(c)?, VersionId::new(v)?))
}

/// `GET /v1/courses/{course}/versions`: the newest 50 versions, newest first.
#[utoipa::path(get, path = "/v1/courses/{course}/versions", tag = "courses",
    params(("course" = String, Path, description = "The course id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")),
    responses(
        (status = 200, description = "Versions, newest first", body = Vec<VersionView>),
        (status = 400, description = "A bad course id", body = crate::error::Body),
        (status = 404, description = "No such course", body = crate::error::Body)))]
pub(crate) async fn list_versions(
    State(st): State<AppState>,
    course: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<VersionView>>, ApiError> {
    let course = crate::courses::course_id(course)?;
    let mut versions = st.content.versions(&course).await?;
    if versions.is_empty() {
        return Err(ApiError(kiln_core::Error::not_found(format!(
            "course {course}"
        ))));
    }
    versions.sort_by_key(|v| std::cmp::Reverse(v.created_at));
    versions.truncate(MAX_VERSIONS + 1);
    let mut manifests = Vec::with_capacity(versions.len());
    for v in &versions {
        // Through the cache, which keeps manifests (a version never changes).
        manifests.push(st.cache.manifest(&course, &v.version).await?);
    }
    let out = versions
        .iter()
        .zip(&manifests)
        .enumerate()
        .take(MAX_VERSIONS)
        .map(|(i, (v, m))| {
            let before: HashSet<_> = manifests
                .get(i + 1)
                .map(|p| p.entries().iter().map(|e| e.id).collect())
                .unwrap_or_default();
            VersionView {
                version: v.version.to_string(),
                created_at: v.created_at.0,
                current: v.current,
                chunks: m.entries().len(),
                bytes: m.total_size(),
                shared_bytes: m
                    .entries()
                    .iter()
                    .filter(|e| before.contains(&e.id))
                    .map(|e| e.size)
                    .sum(),
            }
        })
        .collect();
    Ok(Json(out))
}

/// One chunk of a version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ChunkView {
    /// `KIND:NAME`, or `KIND` for a course-wide kind: what an ensure names.
    chunk: String,
    /// Its kind.
    kind: String,
    /// The content address of its bundle.
    id: String,
    /// Bytes, uncompressed.
    size: u64,
    /// The course-relative directory it is mounted at (empty for gathered files).
    root: String,
}

/// A version's manifest.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ManifestView {
    /// The course.
    course: String,
    /// The version.
    version: String,
    /// Its chunks, by kind and name.
    chunks: Vec<ChunkView>,
}

/// `GET /v1/courses/{course}/versions/{version}`: the version's manifest.
#[utoipa::path(get, path = "/v1/courses/{course}/versions/{version}", tag = "courses",
    params(
        ("course" = String, Path, description = "The course id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$"),
        ("version" = String, Path, description = "The version id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")),
    responses(
        (status = 200, description = "The manifest", body = ManifestView),
        (status = 400, description = "A bad id", body = crate::error::Body),
        (status = 404, description = "No such course or version", body = crate::error::Body)))]
pub(crate) async fn show_version(
    State(st): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<ManifestView>, ApiError> {
    let (course, version) = course_and_version(path)?;
    let m = st.cache.manifest(&course, &version).await?;
    Ok(Json(ManifestView {
        course: course.to_string(),
        version: version.to_string(),
        chunks: m
            .entries()
            .iter()
            .map(|e| ChunkView {
                chunk: e.chunk_ref().to_string(),
                kind: e.kind.as_str().to_string(),
                id: e.id.to_string(),
                size: e.size,
                root: e.root.clone(),
            })
            .collect(),
    }))
}

/// The chunk whose files to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FilesQuery {
    /// `KIND:NAME`, or `KIND` for a course-wide kind.
    #[param(value_type = crate::courses::ChunkName)]
    chunk: String,
}

/// A file of a chunk.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FileView {
    /// The course-relative path (what `GET .../files/{path}` takes).
    path: String,
    /// Bytes.
    size: u64,
}

/// `GET /v1/courses/{course}/versions/{version}/files?chunk=`: the files of one chunk, by
/// path: from its table of contents, or (a chunk synced before kiln kept them) by ensuring it
/// on this server, as a read of one of its files would.
#[utoipa::path(get, path = "/v1/courses/{course}/versions/{version}/files", tag = "courses",
    params(
        ("course" = String, Path, description = "The course id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$"),
        ("version" = String, Path, description = "The version id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$"),
        FilesQuery),
    responses(
        (status = 200, description = "The chunk's files, by path", body = Vec<FileView>),
        (status = 400, description = "A bad id or chunk", body = crate::error::Body),
        (status = 404, description = "No such course, version or chunk", body = crate::error::Body)))]
pub(crate) async fn chunk_files(
    State(st): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<FilesQuery>, QueryRejection>,
) -> Result<Json<Vec<FileView>>, ApiError> {
    let (course, version) = course_and_version(path)?;
    let Query(q) = q.map_err(|e| ApiError::invalid(format!("invalid query: {e}")))?;
    let chunk: ChunkRef = q.chunk.parse()?;
    let manifest = st.cache.manifest(&course, &version).await?;
    let Some(entry) = manifest.get(&chunk).cloned() else {
        return Err(ApiError(kiln_core::Error::not_found(format!(
            "chunk {chunk} in version {version} of course {course}"
        ))));
    };
    let prefix = if entry.is_gathered() || entry.root.is_empty() {
        String::new()
    } else {
        format!("{}/", entry.root)
    };
    // The chunk's table of contents, when sync stored one: no download.
    if let Some(toc) = st.content.tocs(&course, &version).await?.remove(&entry.id) {
        let files = toc
            .entries
            .into_iter()
            .filter(|e| matches!(e.kind, kiln_core::toc::TocKind::File { .. }))
            .take(MAX_FILES)
            .map(|e| FileView {
                path: format!("{prefix}{}", e.path),
                size: e.size,
            })
            .collect();
        return Ok(Json(files));
    }
    let ensured = st
        .cache
        .ensure_at(&course, &version, std::slice::from_ref(&chunk))
        .await?;
    let Some(dir) = ensured.paths.first() else {
        return Err(ApiError(kiln_core::Error::not_found(format!(
            "chunk {chunk} in version {version} of course {course}"
        ))));
    };
    let mut files = Vec::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.map_err(|e| {
            ApiError(kiln_core::Error::Unavailable {
                what: format!("the files of chunk {chunk}"),
                source: e.into(),
            })
        })?;
        if !e.file_type().is_file() {
            continue;
        }
        let Ok(rel) = e.path().strip_prefix(dir) else {
            continue;
        };
        files.push(FileView {
            path: format!("{prefix}{}", rel.to_string_lossy()),
            size: e.metadata().map(|m| m.len()).unwrap_or(0),
        });
        if files.len() == MAX_FILES {
            break;
        }
    }
    drop(ensured);
    Ok(Json(files))
}
