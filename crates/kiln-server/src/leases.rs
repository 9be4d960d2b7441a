//! The lease routes: `POST /v1/leases/{id}/renew`, `DELETE /v1/leases/{id}`, and
//! `DELETE /v1/leases` with a list of ids, which ends many in one request.
//!
//! `POST /v1/courses/{course}/ensure` answers with `lease: {id, expires_at, ttl_ms}`: the
//! chunks it names and the version directory stay on disk until `expires_at` (Unix
//! milliseconds), `ttl_ms` after the ensure (default the cache's `lease_ttl`, 60 s). A caller
//! that reads longer renews (`{"ttl_ms": N}` or an empty body for the default), and releases
//! when done so the chunks can be evicted at once. A lease that has ended is a 404: its
//! chunks may be gone, so ensure again. The lease itself lives in kiln-load's cache
//! ([`kiln_load::ChunkCache::lease`]); these routes are only its HTTP face.

use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use kiln_load::{LeaseId, LeaseInfo};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;

/// A lease: what an ensure named stays on disk until `expires_at`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LeaseView {
    /// The lease's id, for renew and release.
    id: String,
    /// When it ends, in Unix milliseconds, unless renewed.
    expires_at: u64,
    /// Its duration from the last ensure or renew, in milliseconds.
    ttl_ms: u64,
}

impl From<LeaseInfo> for LeaseView {
    fn from(l: LeaseInfo) -> Self {
        LeaseView {
            id: l.id.to_string(),
            expires_at: l
                .expires_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            ttl_ms: l.ttl.as_millis() as u64,
        }
    }
}

/// The body of a renew; an empty body renews for the default duration.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenewRequest {
    /// The new duration from now, in milliseconds (default: the server's `lease_ttl`, 60 s);
    /// at most the server's `lease_max_ttl` (default 1 h).
    #[serde(default, deserialize_with = "crate::body::opt_millis")]
    #[schema(minimum = 1, maximum = 3_600_000)]
    ttl_ms: Option<u64>,
}

fn lease_id(p: Result<Path<String>, PathRejection>) -> Result<LeaseId, ApiError> {
    let Path(s) = p.map_err(|e| ApiError::invalid(format!("invalid path: {e}")))?;
    Ok(s.parse()?)
}

/// `POST /v1/leases/{id}/renew`.
#[utoipa::path(post, path = "/v1/leases/{id}/renew", tag = "leases",
    params(("id" = String, Path, description = "The lease's id (32 hex digits)", pattern = r"^[0-9a-f]{32}$")),
    request_body(content = Option<RenewRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "Renewed", body = LeaseView),
        (status = 400, description = "A bad id or body", body = crate::error::Body),
        (status = 404, description = "The lease has ended: ensure again", body = crate::error::Body)))]
pub(crate) async fn renew(
    State(st): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Json<LeaseView>, ApiError> {
    let id = lease_id(id)?;
    let req: RenewRequest = crate::body::optional_object(&body, "renew request")?;
    let info = st
        .cache
        .renew_lease(&id, req.ttl_ms.map(Duration::from_millis))?;
    Ok(Json(info.into()))
}

/// `DELETE /v1/leases/{id}`.
#[utoipa::path(delete, path = "/v1/leases/{id}", tag = "leases",
    params(("id" = String, Path, description = "The lease's id (32 hex digits)", pattern = r"^[0-9a-f]{32}$")),
    responses(
        (status = 204, description = "Released: its chunks may be evicted"),
        (status = 400, description = "A bad id", body = crate::error::Body),
        (status = 404, description = "The lease has ended", body = crate::error::Body)))]
pub(crate) async fn release(
    State(st): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = lease_id(id)?;
    st.cache.release_lease(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The most ids one bulk release takes.
const MAX_RELEASE: usize = 50_000;

/// The body of a bulk release.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseRequest {
    /// The leases to end (32 hex digits each), at most 50,000 (within the 2 MB body limit).
    #[schema(max_items = 50_000, value_type = Vec<LeaseIdText>)]
    ids: Vec<String>,
}

/// A lease's id as the body writes it.
#[derive(utoipa::ToSchema)]
#[schema(pattern = r"^[0-9a-f]{32}$")]
#[allow(dead_code)]
pub(crate) struct LeaseIdText(String);

/// What a bulk release ended.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Released {
    /// Leases ended by this call.
    released: usize,
    /// The ids asked for that had ended already (released, expired or never taken).
    ended: Vec<String>,
}

/// `DELETE /v1/leases`: ends every lease the body lists, under one lock.
#[utoipa::path(delete, path = "/v1/leases", tag = "leases",
    request_body(content = ReleaseRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Released: their chunks may be evicted", body = Released),
        (status = 400, description = "A bad body or id, naming it; nothing is released", body = crate::error::Body)))]
pub(crate) async fn release_many(
    State(st): State<AppState>,
    body: Bytes,
) -> Result<Json<Released>, ApiError> {
    let req: ReleaseRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("invalid release request body: {e}")))?;
    if req.ids.len() > MAX_RELEASE {
        return Err(ApiError::invalid(format!(
            "invalid release request body: {} ids, at most {MAX_RELEASE} per call",
            req.ids.len()
        )));
    }
    let ids = req
        .ids
        .iter()
        .map(|s| s.parse::<LeaseId>())
        .collect::<Result<Vec<_>, _>>()?;
    let live = st.cache.release_leases(&ids);
    let ended = ids
        .iter()
        .zip(&live)
        .filter(|(_, live)| !**live)
        .map(|(id, _)| id.to_string())
        .collect();
    Ok(Json(Released {
        released: live.iter().filter(|l| **l).count(),
        ended,
    }))
}
