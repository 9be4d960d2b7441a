//! `GET /v1/whoami` (the token's name and scopes, which the dashboard shows its buttons by)
//! and `GET /v1/server` (this server's chunk cache: bytes against budget, hits, downloads,
//! evictions, leases).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use serde::Serialize;

use crate::AppState;
use crate::auth::Scope;

/// The status routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/whoami", get(whoami))
        .route("/v1/server", get(server))
}

/// Who the caller is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct WhoAmI {
    /// The token's name (`null` when the server has no tokens and every route is open).
    token: Option<String>,
    /// What it may do: `read`, `ensure`, `write`, `admin`.
    scopes: Vec<&'static str>,
    /// Whether this server checks tokens at all.
    tokens_required: bool,
    /// Whether this server serves the reheat routes.
    reheat: bool,
}

/// `GET /v1/whoami`: the presented token's name and scopes (any known token may ask).
#[utoipa::path(get, path = "/v1/whoami", tag = "health",
    responses((status = 200, description = "The caller", body = WhoAmI)))]
pub(crate) async fn whoami(State(st): State<AppState>, headers: HeaderMap) -> Json<WhoAmI> {
    let (token, scopes) = match st.auth.identify(&headers) {
        Some((name, scopes)) => (
            Some(name.to_string()),
            Scope::ALL
                .into_iter()
                .filter(|s| scopes.contains(*s))
                .map(Scope::as_str)
                .collect(),
        ),
        None => (None, Scope::ALL.into_iter().map(Scope::as_str).collect()),
    };
    Json(WhoAmI {
        token,
        scopes,
        tokens_required: !st.auth.is_open(),
        reheat: st.reheat.is_some(),
    })
}

/// This server's chunk cache.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ServerView {
    /// What the chunk directories take on disk (allocated blocks plus 512 bytes per inode).
    cache_bytes: u64,
    /// The byte budget.
    budget_bytes: u64,
    /// Chunks on disk.
    cache_chunks: u64,
    /// Chunk requests served from disk since the server started.
    hits: u64,
    /// Chunk requests that waited for a fetch.
    misses: u64,
    /// Chunks downloaded.
    downloads: u64,
    /// Compressed bytes downloaded.
    bytes_downloaded: u64,
    /// Chunks evicted to stay within the budget.
    evictions: u64,
    /// Failed fetches.
    errors: u64,
    /// Ensure leases held now.
    leases_active: u64,
}

/// `GET /v1/server`: this server's chunk cache, as `/metrics` counts it.
#[utoipa::path(get, path = "/v1/server", tag = "health",
    responses((status = 200, description = "This server's chunk cache", body = ServerView)))]
pub(crate) async fn server(State(st): State<AppState>) -> Json<ServerView> {
    let m = st.cache.metrics();
    Json(ServerView {
        cache_bytes: m.cache_bytes,
        budget_bytes: m.budget_bytes,
        cache_chunks: m.cache_chunks,
        hits: m.hits,
        misses: m.misses,
        downloads: m.downloads,
        bytes_downloaded: m.bytes_downloaded,
        evictions: m.evictions,
        errors: m.errors,
        leases_active: m.leases_active,
    })
}
