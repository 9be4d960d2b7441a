//! `GET /v1/courses/{course}` and `POST /v1/courses/{course}/ensure`, which answers with a
//! lease on what it made present (see [`crate::leases`]).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use bytes::Bytes;
use kiln_core::ids::{ChunkRef, CourseId, VersionId};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;
use crate::leases::LeaseView;

/// Reads the `{course}` segment; a bad one is a 400 naming it.
pub(crate) fn course_id(p: Result<Path<String>, PathRejection>) -> Result<CourseId, ApiError> {
    let Path(s) = p.map_err(|e| ApiError::invalid(format!("invalid path: {e}")))?;
    Ok(CourseId::new(s)?)
}

#[derive(Serialize)]
pub(crate) struct CourseSummary {
    course: String,
    version: String,
    chunks: usize,
    bytes: u64,
    kinds: BTreeMap<&'static str, usize>,
}

/// The current version and a summary of its manifest.
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
        *kinds.entry(e.kind.as_str()).or_insert(0) += 1;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnsureRequest {
    chunks: Vec<String>,
    #[serde(default)]
    version: Option<String>,
    /// The lease's duration in milliseconds (default: the server's `lease_ttl`).
    #[serde(default)]
    lease_ttl_ms: Option<u64>,
}

#[derive(Serialize)]
pub(crate) struct EnsureResponse {
    course: String,
    version: String,
    root: String,
    paths: Vec<String>,
    downloaded: Vec<String>,
    lease: LeaseView,
}

/// Makes chunks of one version present and says where they are on disk.
pub(crate) async fn ensure(
    State(st): State<AppState>,
    course: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<(HeaderMap, Json<EnsureResponse>), ApiError> {
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
    let ensured = match req.version {
        Some(v) => {
            let v = VersionId::new(v)?;
            st.cache.ensure_at(&course, &v, &chunks).await?
        }
        None => st.cache.ensure(&course, &chunks).await?,
    };
    // The chunks stay on disk until the lease ends, not only until this response is sent:
    // the caller reads them from disk after it has the answer.
    let lease = st.cache.lease(ensured.pin, ttl)?;
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
