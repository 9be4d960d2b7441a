//! `GET /v1/courses/{course}` and `POST /v1/courses/{course}/ensure`, which answers with a
//! lease on what it made present (see [`crate::leases`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::{Extension, Json};
use bytes::Bytes;
use kiln_core::ids::{ChunkRef, CourseId, VersionId};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::leases::LeaseView;

/// Reads the `{course}` segment; a bad one is a 400 naming it.
pub(crate) fn course_id(p: Result<Path<String>, PathRejection>) -> Result<CourseId, ApiError> {
    let Path(s) = p.map_err(|e| ApiError::invalid(format!("invalid path: {e}")))?;
    Ok(CourseId::new(s)?)
}

/// A course's current version and a summary of its manifest.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CourseSummary {
    /// The course id.
    course: String,
    /// The current version.
    version: String,
    /// Chunks in the version.
    chunks: usize,
    /// Their bytes, uncompressed.
    bytes: u64,
    /// Chunks per kind (`question`, `elements`, ...).
    kinds: BTreeMap<String, usize>,
}

/// `GET /v1/courses/{course}`: the current version and a summary of its manifest.
#[utoipa::path(get, path = "/v1/courses/{course}", tag = "courses",
    params(("course" = String, Path, description = "The course id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")),
    responses(
        (status = 200, description = "The current version", body = CourseSummary,
            headers(("x-kiln-stale" = u64, description = "Present when the catalog could not be reached: seconds since the current version was last confirmed"))),
        (status = 400, description = "A bad course id", body = crate::error::Body),
        (status = 404, description = "No such course", body = crate::error::Body)))]
pub(crate) async fn show(
    State(st): State<AppState>,
    course: Result<Path<String>, PathRejection>,
) -> Result<(HeaderMap, Json<CourseSummary>), ApiError> {
    let course = course_id(course)?;
    let current = st.cache.current(&course).await?;
    let version = current.version;
    let manifest = st.cache.manifest(&course, &version).await?;
    let mut kinds = BTreeMap::new();
    for e in manifest.entries() {
        *kinds.entry(e.kind.as_str().to_string()).or_insert(0) += 1;
    }
    Ok((
        stale_header(current.stale),
        Json(CourseSummary {
            course: course.to_string(),
            version: version.to_string(),
            chunks: manifest.entries().len(),
            bytes: manifest.total_size(),
            kinds,
        }),
    ))
}

/// One chunk as `KIND:NAME`, or `KIND` for a course-wide kind (the document's type only).
#[derive(utoipa::ToSchema)]
#[schema(
    pattern = r"^(elements|elementExtensions|clientFilesCourse|serverFilesCourse|questionThumbnails|courseInfo|(question|clientFilesCourseInstance|serverFilesCourseInstance|clientFilesAssessment):.+)$"
)]
#[allow(dead_code)]
pub(crate) struct ChunkName(String);

/// What to make present.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnsureRequest {
    /// Chunks as `KIND:NAME` (`question:topic/q1`, `clientFilesAssessment:Sp25/hw1`) or
    /// `KIND` for a course-wide kind (`elements`, `clientFilesCourse`, `courseInfo`).
    #[schema(min_items = 1, value_type = Vec<ChunkName>, example = json!(["question:topic/q1", "elements"]))]
    chunks: Vec<String>,
    /// A version to read instead of the current one.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")]
    version: Option<String>,
    /// The lease's duration in milliseconds (default: the server's `lease_ttl`, 60 s); at
    /// most the server's `lease_max_ttl` (default 1 h).
    #[serde(default, deserialize_with = "crate::body::opt_millis")]
    #[schema(minimum = 1, maximum = 3_600_000)]
    lease_ttl_ms: Option<u64>,
}

/// Where the ensured chunks are on disk, and the lease that keeps them there.
///
/// Read files as `<root>/<course-relative path>` and only under `root`: inside the version
/// directory, each chunk's directory is a link to `../.chunks/<id>`, so a path that leaves
/// `root` (or a copy of a link) does not name the version's bytes.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EnsureResponse {
    /// The course id.
    course: String,
    /// The version every path belongs to (one version per call).
    version: String,
    /// The version directory: the course's tree as far as its chunks are present.
    root: String,
    /// The directory of each requested chunk the version has, in the order asked
    /// (`<root>/.kiln/<kind>` for a gathered chunk such as `courseInfo`).
    paths: Vec<String>,
    /// The requested chunks the version does not have: course-wide directories, course
    /// instances' and assessments' files, thumbnails. A missing question is a 404 instead.
    absent: Vec<String>,
    /// The chunks this call downloaded.
    downloaded: Vec<String>,
    /// Keeps what was ensured on disk until it ends: renew it while reading, release it
    /// after.
    lease: LeaseView,
}

/// `POST /v1/courses/{course}/ensure`: makes chunks of one version present and says where
/// they are on disk; chunks the version lacks are listed as `absent` when their kind may be
/// absent, and a missing question is a 404 for the whole call.
#[utoipa::path(post, path = "/v1/courses/{course}/ensure", tag = "courses",
    params(("course" = String, Path, description = "The course id", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")),
    request_body(content = EnsureRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Present on disk under `root` until the lease ends",
            body = EnsureResponse, headers(("x-kiln-stale" = u64, description = "Present when the catalog could not be reached: seconds since the current version was last confirmed"))),
        (status = 400, description = "A bad course id, chunk or body", body = crate::error::Body),
        (status = 404, description = "No such course, version or question", body = crate::error::Body),
        (status = 429, description = "The server or the token holds as many leases as it may: release some (`DELETE /v1/leases`)", body = crate::error::Body),
        (status = 500, description = "The server's disk refused the chunk (`disk`: the message names the chunk and the OS error)", body = crate::error::Body),
        (status = 507, description = "Leases keep as many bytes as they may (the token's, or the cache's past its budget), or the server's disk is full", body = crate::error::Body)))]
pub(crate) async fn ensure(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    course: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<(HeaderMap, Json<EnsureResponse>), ApiError> {
    let holder = caller.map_or_else(|| Arc::from(""), |Extension(c)| c.0);
    let course = course_id(course)?;
    let req: EnsureRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("invalid ensure request body: {e}")))?;
    if req.chunks.is_empty() {
        return Err(ApiError::invalid(
            "invalid ensure request body: chunks is empty",
        ));
    }
    let chunks = req
        .chunks
        .iter()
        .map(|c| c.parse::<ChunkRef>())
        .collect::<Result<Vec<_>, _>>()?;
    let ttl = req.lease_ttl_ms.map(Duration::from_millis);
    // A caller at its lease limits is refused before anything is downloaded for it.
    st.cache.lease_room(&holder)?;
    let ensured = match req.version {
        Some(v) => {
            let v = VersionId::new(v)?;
            st.cache.ensure_at(&course, &v, &chunks).await?
        }
        None => st.cache.ensure(&course, &chunks).await?,
    };
    // The chunks stay on disk until the lease ends, not only until this response is sent:
    // the caller reads them from disk after it has the answer.
    let lease = st.cache.lease_for(&holder, ensured.pin, ttl)?;
    let head = stale_header(ensured.stale);
    Ok((
        head,
        Json(EnsureResponse {
            lease: lease.into(),
            course: course.to_string(),
            version: ensured.version.to_string(),
            root: ensured.root.display().to_string(),
            paths: ensured
                .paths
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            absent: ensured.absent.iter().map(ToString::to_string).collect(),
            downloaded: ensured.downloaded.iter().map(ToString::to_string).collect(),
        }),
    ))
}

/// `x-kiln-stale: <seconds>` when the current version was served while the catalog could
/// not confirm it: how long ago it last did.
pub(crate) fn stale_header(stale: Option<Duration>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(s) = stale {
        h.insert("x-kiln-stale", HeaderValue::from(s.as_secs()));
    }
    h
}
