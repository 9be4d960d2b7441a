//! The lease routes: `POST /v1/leases/{id}/renew` and `DELETE /v1/leases/{id}`.
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

/// A lease on the wire.
#[derive(Debug, Serialize)]
pub(crate) struct LeaseView {
    id: String,
    /// Unix milliseconds.
    expires_at: u64,
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenewRequest {
    ttl_ms: Option<u64>,
}

fn lease_id(p: Result<Path<String>, PathRejection>) -> Result<LeaseId, ApiError> {
    let Path(s) = p.map_err(|e| ApiError::invalid(format!("invalid path: {e}")))?;
    Ok(s.parse()?)
}

/// `POST /v1/leases/{id}/renew`.
pub(crate) async fn renew(
    State(st): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Json<LeaseView>, ApiError> {
    let id = lease_id(id)?;
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        RenewRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("invalid renew request body: {e}")))?
    };
    let info = st
        .cache
        .renew_lease(&id, req.ttl_ms.map(Duration::from_millis))?;
    Ok(Json(info.into()))
}

/// `DELETE /v1/leases/{id}`.
pub(crate) async fn release(
    State(st): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = lease_id(id)?;
    st.cache.release_lease(&id)?;
    Ok(StatusCode::NO_CONTENT)
}
