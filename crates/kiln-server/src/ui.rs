//! The operator's dashboard at `/ui`: one page and its script and stylesheet, compiled into
//! the binary (`ui/` beside `src/`; no build step, nothing fetched from elsewhere). The page
//! holds no data: it asks the API with the token the operator signs in with, kept in the
//! tab's session storage and sent as a bearer token, so the routes' scopes apply as to any
//! client, and no cookie exists for another site to ride on.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::error::json_error;

/// The assets: (name, content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../ui/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../ui/app.css"),
    ),
];

/// Only this page's own script, style and API calls; no frames, no plugins.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The dashboard's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(page))
        .route("/ui/{*asset}", get(asset))
}

/// `GET /ui`: the dashboard.
#[utoipa::path(get, path = "/ui", tag = "ui",
    responses((status = 200, description = "The dashboard's page", content_type = "text/html", body = String)))]
pub(crate) async fn page() -> Response {
    serve("index.html")
}

/// `GET /ui/{asset}`: the dashboard's script and stylesheet.
#[utoipa::path(get, path = "/ui/{asset}", tag = "ui",
    params(("asset" = String, Path, description = "`app.js` or `app.css`")),
    responses(
        (status = 200, description = "The asset", content_type = "text/plain", body = String),
        (status = 404, description = "No such asset", body = crate::error::Body)))]
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    serve(&name)
}

fn serve(name: &str) -> Response {
    let Some((_, content_type, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no dashboard asset {name:?}"),
        );
    };
    let mut resp = (*body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}
