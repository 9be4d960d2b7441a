//! kiln-server: the HTTP API of `kiln serve` (axum), in front of a [`kiln_load::ChunkCache`].
//!
//! Routes (DESIGN.md's contract): `GET /v1/courses/{course}`, `POST /v1/courses/{course}/ensure`
//! (answers with a lease), `GET /v1/courses/{course}/files/{*path}` (`?version=` optional),
//! `POST /v1/leases/{id}/renew`, `DELETE /v1/leases/{id}`, `GET /metrics`, `GET /healthz`
//! (liveness) and `GET /readyz` (readiness, per backend); the reheat routes are merged from
//! [`reheat_routes`], the render cache's from `cache_routes`, what the dashboard reads from
//! `runs_routes` (libraries, run history and throughput, the queue, dead letters),
//! `versions` (courses, versions, manifests, a chunk's files) and `overview` (whoami, this
//! server's cache), and the dashboard itself from `ui` (`/ui`); `GET /v1/openapi.json`
//! describes them all ([`openapi`]). Errors are JSON
//! `{error, message}` ([`error::ApiError`]). Every route needs the scope [`auth::ROUTES`]
//! names when tokens are configured. Only this crate serves HTTP.

pub mod auth;
mod body;
mod cache_routes;
mod courses;
pub mod error;
mod files;
mod health;
pub mod hosts;
mod leases;
mod limits;
pub mod listen;
mod metrics;
pub mod openapi;
mod overview;
pub mod reheat_routes;
mod runs_routes;
mod sampler;
mod serve;
mod state;
mod ui;
mod untrusted;
mod versions;

use std::future::Future;

use axum::Router;
use axum::routing::{delete, get, post};
use axum::serve::Listener;

pub use serve::ServeOptions;
pub use state::AppState;

/// The whole API over `state`.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/courses/{course}", get(courses::show))
        .route("/v1/courses/{course}/ensure", post(courses::ensure))
        .route("/v1/courses/{course}/files/{*path}", get(files::get_file))
        .route("/v1/leases/{id}/renew", post(leases::renew))
        .route("/v1/leases/{id}", delete(leases::release))
        .route("/v1/leases", delete(leases::release_many))
        .route("/metrics", get(metrics::render))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/v1/openapi.json", get(openapi::document))
        // The reheat API (kiln-reheat) lives in its own file; this is its one merge point.
        .merge(reheat_routes::routes())
        .merge(runs_routes::routes())
        .merge(cache_routes::routes())
        .merge(versions::routes())
        .merge(overview::routes())
        .merge(ui::routes());
    layered(api, state)
}

/// Only `GET /metrics`, `/healthz` and `/readyz` over `state`: what a process that serves no
/// API exposes (`kiln mount --metrics ADDR`), with the same tokens and errors.
pub fn health_router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/metrics", get(metrics::render))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready));
    layered(routes, state)
}

/// `routes` with the fallbacks and layers every kiln HTTP endpoint has: tokens, JSON errors,
/// request metrics.
fn layered(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::check,
        ))
        .layer(axum::middleware::from_fn(limits::check))
        // Rejections axum writes itself (a body over the limit, a bad header) as JSON too.
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Serves the API on `listener` (TCP, or any [`Listener`]: a Unix socket) until `shutdown`
/// resolves, then lets requests in flight finish. Also runs the cache's maintenance (old
/// versions, budget) in the background.
pub async fn run<L: Listener>(
    listener: L,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with(listener, state, ServeOptions::default(), shutdown).await
}

/// Serves [`health_router`] on `listener` until `shutdown` resolves.
pub async fn run_health<L: Listener>(
    listener: L,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = health_router(state.clone());
    serve::serve(listener, app, state, ServeOptions::default(), shutdown).await
}

/// Like [`run`], with connection timeouts and limits from `options` (see [`ServeOptions`]).
pub async fn run_with<L: Listener>(
    listener: L,
    state: AppState,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let maintenance = tokio::spawn(state.cache.clone().maintain_forever());
    let sampling = state.reheat.as_ref().map(|r| {
        let (sampler, reheat) = (state.sampler.clone(), r.reheat().clone());
        tokio::spawn(async move { sampler.sample_forever(reheat).await })
    });
    let app = router(state.clone());
    let served = serve::serve(listener, app, state, options, shutdown).await;
    maintenance.abort();
    if let Some(s) = sampling {
        s.abort();
    }
    served
}
