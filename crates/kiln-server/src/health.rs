//! `GET /healthz` (liveness) and `GET /readyz` (readiness), both JSON.
//!
//! `/healthz` always answers 200 while the process serves HTTP, with each backend's state
//! as the cache last saw it (no backend is called, so it answers at once even when one
//! hangs): `{"status": "ok"|"degraded", "backends": {"catalog": {"ok": true}, ...}}`, a
//! failing one as `{"ok": false, "error": "..."}`. `/readyz` asks every backend now (each
//! bounded by [`PROBE_TIMEOUT`]) and answers 200 when all answer, 503 otherwise, in the
//! same shape: catalog, object store, cache directory.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kiln_load::BackendState;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::AppState;

/// How long `/readyz` waits for each backend.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The health of this server's backends.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Report {
    /// `ok` or `degraded`.
    status: &'static str,
    /// Per backend: `{ok, error?, last_ok_ms_ago?}`.
    #[schema(value_type = Object)]
    backends: Map<String, Value>,
}

fn report(states: &[BackendState]) -> (bool, Report) {
    let ok = states.iter().all(|s| s.error.is_none());
    let backends = states
        .iter()
        .map(|s| {
            let mut v = match &s.error {
                None => json!({"ok": true}),
                Some(e) => json!({"ok": false, "error": e}),
            };
            if let Some(t) = s.last_ok {
                v["last_ok_ms_ago"] = json!(t.as_millis() as u64);
            }
            (s.backend.as_str().to_string(), v)
        })
        .collect();
    let status = if ok { "ok" } else { "degraded" };
    (ok, Report { status, backends })
}

/// `GET /healthz`.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive; each backend's last seen state", body = Report)))]
pub(crate) async fn live(State(st): State<AppState>) -> Json<Report> {
    Json(report(&st.cache.health()).1)
}

/// `GET /readyz`.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Every backend answered its probe", body = Report),
        (status = 503, description = "A backend did not answer", body = Report)))]
pub(crate) async fn ready(State(st): State<AppState>) -> (StatusCode, Json<Report>) {
    let (ok, r) = report(&st.cache.probe(PROBE_TIMEOUT).await);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r))
}
