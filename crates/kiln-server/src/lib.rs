//! kiln-server: the HTTP API of `kiln serve` (axum), in front of a [`kiln_load::ChunkCache`].
//!
//! Routes (DESIGN.md's contract): `GET /v1/courses/{course}`, `POST /v1/courses/{course}/ensure`,
//! `GET /v1/courses/{course}/files/{*path}` (`?version=` optional), `GET /metrics`,
//! `POST /v1/leases/{id}/renew`, `DELETE /v1/leases/{id}` ([`leases`]), `GET /healthz`; the reheat routes are merged from [`reheat_routes`]. Errors are JSON
//! `{error, message}` ([`error::ApiError`]). Only this crate knows HTTP.

mod courses;
pub mod error;
mod files;
mod leases;
mod metrics;
pub mod reheat_routes;
mod state;

use std::future::Future;

use axum::Router;
use axum::routing::{delete, get, post};

pub use state::AppState;

/// The whole API over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/courses/{course}", get(courses::show))
        .route("/v1/courses/{course}/ensure", post(courses::ensure))
        .route("/v1/courses/{course}/files/{*path}", get(files::get_file))
        .route("/v1/leases/{id}/renew", post(leases::renew))
        .route("/v1/leases/{id}", delete(leases::release))
        .route("/metrics", get(metrics::render))
        .route("/healthz", get(|| async { "ok\n" }))
        // The reheat API (kiln-reheat) lives in its own file; this is its one merge point.
        .merge(reheat_routes::routes())
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then lets requests in flight
/// finish. Also runs the cache's maintenance (old versions, budget) in the background.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let maintenance = tokio::spawn(state.cache.clone().maintain_forever());
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    maintenance.abort();
    served
}
