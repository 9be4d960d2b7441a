//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' annotations
//! (utoipa), served at `GET /v1/openapi.json` and committed at `docs/openapi.json` (a test
//! fails when the two differ).
//!
//! What every route shares is added from one place, [`Shared`]: its security requirement
//! and 401/403 from [`crate::auth::ROUTES`], 415 on a `POST` (see [`crate::auth`]), 503
//! where a backend is involved.

use axum::http::Method;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::auth::{Access, ROUTES};

/// The API's description: every route, body, error and header.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "kiln",
        description = "Course content on demand and render-cache reheating.",
        license(name = "Apache-2.0")
    ),
    paths(
        crate::courses::show,
        crate::courses::ensure,
        crate::files::get_file,
        crate::leases::renew,
        crate::leases::release,
        crate::leases::release_many,
        crate::reheat_routes::start_build,
        crate::reheat_routes::show_run,
        crate::reheat_routes::cancel_run,
        crate::reheat_routes::pause_library,
        crate::reheat_routes::resume_library,
        crate::cache_routes::read_entry,
        crate::cache_routes::put_entry,
        crate::cache_routes::delete_entry,
        crate::cache_routes::render_entry,
        crate::cache_routes::list_entries,
        crate::cache_routes::invalidate,
        crate::runs_routes::list_libraries,
        crate::runs_routes::library_runs,
        crate::runs_routes::list_runs,
        crate::runs_routes::run_throughput,
        crate::runs_routes::queue_depth,
        crate::runs_routes::dead_letters,
        crate::runs_routes::redrive,
        crate::versions::list_courses,
        crate::versions::list_versions,
        crate::versions::show_version,
        crate::versions::chunk_files,
        crate::overview::whoami,
        crate::overview::server,
        crate::ui::page,
        crate::ui::asset,
        crate::health::live,
        crate::health::ready,
        crate::metrics::render,
        document,
    ),
    modifiers(&Shared),
    tags(
        (name = "courses", description = "Course versions, ensure and files"),
        (name = "leases", description = "What an ensure keeps on disk"),
        (name = "reheat", description = "Builds and runs"),
        (name = "cache", description = "The render cache"),
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "ui", description = "The operator's dashboard"),
    )
)]
pub(crate) struct ApiDoc;

/// The document as pretty JSON, as `docs/openapi.json` holds it.
pub fn json() -> String {
    let mut doc = ApiDoc::openapi();
    // The version is the API's, not the crate's (which is 0.0.0 in the workspace).
    doc.info.version = "1".into();
    let mut text = doc.to_pretty_json().unwrap_or_else(|e| {
        // Serialising a document of plain structs cannot fail; say so if it ever does.
        format!("{{\"error\": \"serialising the OpenAPI document: {e}\"}}")
    });
    text.push('\n');
    text
}

/// Adds what every route shares (see the module docs).
struct Shared;

/// The name of the bearer security scheme.
const BEARER: &str = "bearer";

/// Shared responses: (name, status, description).
const SHARED: [(&str, &str, &str); 4] = [
    (
        "Unauthorized",
        "401",
        "The server has tokens and the request has none, or an unknown one",
    ),
    ("Forbidden", "403", "The token lacks the route's scope"),
    (
        "UnsupportedMediaType",
        "415",
        "A POST without `Content-Type: application/json` and without a token",
    ),
    (
        "Unavailable",
        "503",
        "A backend (catalog, object store, queue, cache) is unreachable: retry later",
    ),
];

impl Modify for Shared {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            BEARER.into(),
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        for (name, _, description) in SHARED {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Error")))
                .build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/json", content)
                .build();
            components.responses.insert(name.into(), RefOr::T(response));
        }
        for (method, route, access) in ROUTES {
            let path = doc_path(method, route);
            let Some(item) = doc.paths.paths.get_mut(&path) else {
                continue;
            };
            let op = match *method {
                Method::GET => item.get.as_mut(),
                Method::POST => item.post.as_mut(),
                Method::PUT => item.put.as_mut(),
                Method::DELETE => item.delete.as_mut(),
                _ => None,
            };
            if let Some(op) = op {
                shared(op, method, route, *access);
            }
        }
    }
}

/// The document's path of a route of [`ROUTES`]: axum writes a catch-all segment
/// `{*path}`, OpenAPI `{path}`; a `POST` on a cache entry is its render route, whose
/// `/render` suffix the handler reads (a catch-all must end an axum route).
pub fn doc_path(method: &Method, route: &str) -> String {
    let mut path = route.replace("{*", "{");
    if *method == Method::POST && route == "/v1/cache/{library}/{*key}" {
        path.push_str("/render");
    }
    path
}

/// The shared parts of one operation.
fn shared(op: &mut Operation, method: &Method, route: &str, access: Access) {
    let mut add = |name: &str| {
        let status = SHARED
            .iter()
            .find(|(n, _, _)| *n == name)
            .map_or("default", |(_, s, _)| *s);
        op.responses
            .responses
            .entry(status.into())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    };
    if let Access::Needs(scope) = access {
        add("Unauthorized");
        add("Forbidden");
        let scopes: Vec<&str> = scope.iter().map(|s| s.as_str()).collect();
        op.security = Some(vec![SecurityRequirement::new(BEARER, scopes)]);
    }
    if *method == Method::POST {
        add("UnsupportedMediaType");
    }
    // Liveness and this document touch no backend; every other route may find one down.
    if route != "/healthz" && route != "/v1/openapi.json" {
        add("Unavailable");
    }
}

/// `GET /v1/openapi.json`.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "health",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub(crate) async fn document() -> axum::response::Response {
    use axum::response::IntoResponse;
    // Built once: the document depends on the code only.
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(json).clone();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc,
    )
        .into_response()
}
