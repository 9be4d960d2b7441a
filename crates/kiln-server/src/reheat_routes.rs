//! The reheat routes: `POST /v1/libraries/{library}/builds`, `GET /v1/runs/{run}`,
//! `GET /v1/cache/{library}/{*key}`.
//!
//! Placeholder: kiln-reheat's HTTP side replaces this file. [`routes`] is merged into the
//! router in one line (`lib.rs`), and [`ReheatState`] is what [`crate::AppState::reheat`]
//! holds; handlers read it from `State<AppState>`.

use axum::Router;

use crate::AppState;

/// What the reheat handlers need (a queue, a render cache, the libraries).
#[derive(Debug, Clone, Default)]
pub struct ReheatState {}

/// The reheat routes; none yet.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
}
