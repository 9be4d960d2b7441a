//! The render cache as a service: `GET`/`PUT`/`DELETE /v1/cache/{library}/{*key}`, `POST
//! /v1/cache/{library}/{key}/render` (render with props), `GET /v1/cache/{library}` (a
//! paginated listing with counts per group) and `POST /v1/libraries/{library}/invalidate`
//! (soft invalidation).
//!
//! Reads answer like an HTTP cache: a strong `ETag` (BLAKE3 of the content type and bytes),
//! `If-None-Match` -> 304, and `Cache-Control` from the entry: `max-age` until its expiry
//! when it has one, else `no-cache` (revalidate: the entry may be replaced at any time).
//! Metadata travels as `x-kiln-meta-<name>` headers on writes and reads.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use kiln_core::Error;
use kiln_core::render_cache::{CacheEntry, KeyInfo, ListQuery, Meta, StaleScope};
use kiln_reheat::http::META_PREFIX;
use kiln_reheat::{PutEntry, Reheat};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;
use crate::reheat_routes::{RunView, reheat, segment};

/// The largest body a `PUT` may send; a library's own `max_render_bytes` may be lower.
const MAX_PUT_BYTES: usize = 64 * 1024 * 1024;
/// The longest key, in characters (the document's `CacheKey` pattern says the same).
const MAX_KEY_CHARS: usize = 512;
/// Metadata limits per entry: names, and bytes of names and values together.
pub(crate) const MAX_META: usize = 64;
const MAX_META_BYTES: usize = 16 * 1024;
/// The longest TTL a `PUT` may ask for: ten years, in seconds.
const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;
/// The suffix of the render route.
const RENDER: &str = "/render";

/// The routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/cache/{library}", get(list_entries))
        .route(
            "/v1/cache/{library}/{*key}",
            get(read_entry)
                .put(put_entry)
                .delete(delete_entry)
                .post(render_entry),
        )
        .route("/v1/libraries/{library}/invalidate", post(invalidate))
        .layer(DefaultBodyLimit::max(MAX_PUT_BYTES))
}

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::invalid("the key is empty"));
    }
    let chars = key.chars().count();
    if chars > MAX_KEY_CHARS {
        return Err(ApiError::invalid(format!(
            "key of {chars} characters is longer than {MAX_KEY_CHARS}"
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "key {key:?} holds a control character"
        )));
    }
    Ok(())
}

/// The entry's strong ETag: BLAKE3 of its content type and bytes (128 bits, hex).
fn etag(e: &CacheEntry) -> String {
    let mut h = blake3::Hasher::new();
    h.update(e.content_type.as_bytes());
    h.update(&[0]);
    h.update(&e.bytes);
    let hex = h.finalize().to_hex();
    format!("\"{}\"", &hex[..32])
}

/// Whether `If-None-Match` matches `tag` (`*`, or a list of tags, weak ones compared weakly).
fn none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
}

/// `Cache-Control` of an entry read at `now`.
fn cache_control(e: &CacheEntry, now: kiln_core::time::Timestamp) -> String {
    match e.expires_at {
        Some(at) if !e.stale => format!("max-age={}", (at.0 - now.0).max(0) / 1000),
        _ => "no-cache".to_string(),
    }
}

/// An entry as a response: its bytes with its headers (or 304 when `If-None-Match` matches).
fn entry_response(reheat: &Reheat, entry: CacheEntry, request: &HeaderMap) -> Response {
    let tag = etag(&entry);
    let not_modified = none_match(request, &tag);
    let control = cache_control(&entry, reheat.clock().now());
    let mut headers = HeaderMap::new();
    if let Ok(ct) = HeaderValue::from_str(&entry.content_type) {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    if let Ok(v) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&control) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    headers.insert("x-kiln-generation", HeaderValue::from(entry.generation));
    if let Ok(g) = HeaderValue::from_str(&entry.group) {
        headers.insert("x-kiln-group", g);
    }
    headers.insert("x-kiln-written-at", HeaderValue::from(entry.written_at.0));
    crate::untrusted::sandbox(&mut headers);
    if entry.stale {
        headers.insert("x-kiln-stale", HeaderValue::from_static("true"));
    }
    for (name, value) in &entry.meta {
        let name = axum::http::HeaderName::try_from(format!("{META_PREFIX}{name}"));
        if let (Ok(n), Ok(v)) = (name, HeaderValue::from_str(value)) {
            headers.insert(n, v);
        }
    }
    if not_modified {
        headers.remove(header::CONTENT_TYPE);
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, entry.bytes).into_response()
}

/// `GET /v1/cache/{library}/{key}`: a render entry (rendered at once on a miss where the
/// library has `render_through`).
#[utoipa::path(get, path = "/v1/cache/{library}/{key}", tag = "cache",
    params(
        ("library" = String, Path, description = "The library's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$"),
        ("key" = String, Path, description = "The entry's key: 1 to 512 characters, none a control character; may contain `/`", pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,512}$"),
        ("if-none-match" = Option<String>, Header, description = "ETags the client holds: a match is a 304")),
    responses(
        (status = 200, description = "The entry's bytes, with its content type. A miss of a \
            `render_through` library renders the key first; for an HTTP listing source the \
            renderer is sent `{\"key\": KEY}` as props",
            headers(
                ("etag" = String, description = "Strong: BLAKE3 of the content type and bytes"),
                ("cache-control" = String, description = "`max-age` until the entry's expiry, else `no-cache`"),
                ("x-kiln-generation" = u64, description = "The generation that wrote it"),
                ("x-kiln-group" = String, description = "Its producer group"),
                ("x-kiln-written-at" = i64, description = "When, in Unix milliseconds"),
                ("x-kiln-stale" = String, description = "`true` when marked stale: a re-render is on its way"))),
        (status = 304, description = "The entry still has the ETag of `If-None-Match`"),
        (status = 400, description = "A bad key", body = crate::error::Body),
        (status = 404, description = "No such entry, or no such library", body = crate::error::Body),
        (status = 502, description = "The renderer refused the key (a 4xx; its message is \
            passed on, and remembered for the library's `failure_ttl`)", body = crate::error::Body)))]
pub(crate) async fn read_entry(
    State(st): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (library, key) = segment(path)?;
    check_key(&key)?;
    let reheat = reheat(&st)?;
    let entry = reheat.read(&library, &key).await?.ok_or_else(|| {
        ApiError(Error::not_found(format!(
            "entry {key:?} of library {library}"
        )))
    })?;
    Ok(entry_response(reheat, entry, &headers))
}

/// An entry without its bytes, as listings and writes answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EntryView {
    /// The key.
    key: String,
    /// Its producer group.
    group: String,
    /// The generation that wrote it.
    generation: u64,
    /// The length of its bytes.
    size: u64,
    /// Unix milliseconds.
    written_at: i64,
    /// Unix milliseconds, when it is marked to expire.
    expires_at: Option<i64>,
    /// Marked stale: served while a re-render replaces it.
    stale: bool,
}

impl From<KeyInfo> for EntryView {
    fn from(i: KeyInfo) -> Self {
        EntryView {
            key: i.key,
            group: i.group,
            generation: i.generation,
            size: i.size,
            written_at: i.written_at.0,
            expires_at: i.expires_at.map(|t| t.0),
            stale: i.stale,
        }
    }
}

impl From<&CacheEntry> for EntryView {
    fn from(e: &CacheEntry) -> Self {
        EntryView {
            key: e.key.clone(),
            group: e.group.clone(),
            generation: e.generation,
            size: e.bytes.len() as u64,
            written_at: e.written_at.0,
            expires_at: e.expires_at.map(|t| t.0),
            stale: e.stale,
        }
    }
}

/// The text of header `name`, if present; not text is a 400 naming it.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::invalid(format!("header {name} is not visible ASCII")))
        })
        .transpose()
}

/// The metadata of a write: its `x-kiln-meta-*` headers, within the limits.
fn meta_of(headers: &HeaderMap) -> Result<Meta, ApiError> {
    let mut meta = Meta::new();
    let mut bytes = 0;
    for (name, value) in headers {
        let Some(short) = name.as_str().strip_prefix(META_PREFIX) else {
            continue;
        };
        if short.is_empty() {
            return Err(ApiError::invalid(format!(
                "header {name}: a metadata name after {META_PREFIX}"
            )));
        }
        let value = value
            .to_str()
            .map_err(|_| ApiError::invalid(format!("header {name} is not visible ASCII")))?;
        bytes += short.len() + value.len();
        meta.insert(short.to_string(), value.to_string());
    }
    if meta.len() > MAX_META || bytes > MAX_META_BYTES {
        return Err(ApiError::invalid(format!(
            "{} metadata headers of {bytes} bytes: at most {MAX_META} of {MAX_META_BYTES} bytes",
            meta.len()
        )));
    }
    Ok(meta)
}

/// `PUT /v1/cache/{library}/{key}`: writes an entry at the library's live generation.
#[utoipa::path(put, path = "/v1/cache/{library}/{key}", tag = "cache",
    params(
        ("library" = String, Path, description = "The library's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$"),
        ("key" = String, Path, description = "The entry's key: 1 to 512 characters, none a control character; may contain `/`", pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,512}$"),
        ("x-kiln-group" = Option<String>, Header, description = "The producer group (default: none)"),
        ("x-kiln-ttl" = Option<u64>, Header, description = "Expire the entry this many seconds after the write (1 to 315360000)")),
    request_body(content = Vec<u8>, content_type = "*/*", description = "The entry's bytes; \
        its `Content-Type` is stored (default `application/octet-stream`), and every \
        `x-kiln-meta-<name>` header is stored as metadata and returned on reads"),
    responses(
        (status = 200, description = "Stored", body = EntryView,
            headers(("etag" = String, description = "The stored entry's ETag"))),
        (status = 400, description = "A bad key or header", body = crate::error::Body),
        (status = 404, description = "No such library", body = crate::error::Body),
        (status = 409, description = "A newer generation of the key is stored", body = crate::error::Body),
        (status = 413, description = "The body is larger than the library's `max_render_bytes`", body = crate::error::Body)))]
pub(crate) async fn put_entry(
    State(st): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (library, key) = segment(path)?;
    check_key(&key)?;
    let reheat = reheat(&st)?;
    let lib = reheat.libraries().get(&library)?;
    if body.len() > lib.settings.max_render_bytes {
        return Ok(crate::error::json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "{} bytes for {key:?} is more than library {library}'s max_render_bytes ({})",
                body.len(),
                lib.settings.max_render_bytes
            ),
        ));
    }
    let ttl = match header_text(&headers, "x-kiln-ttl")? {
        None => None,
        Some(t) => match t.trim().parse::<u64>() {
            Ok(s) if (1..=MAX_TTL_SECS).contains(&s) => Some(Duration::from_secs(s)),
            _ => {
                return Err(ApiError::invalid(format!(
                    "header x-kiln-ttl {t:?}: expected whole seconds from 1 to {MAX_TTL_SECS}"
                )));
            }
        },
    };
    let put = PutEntry {
        bytes: body,
        content_type: header_text(&headers, header::CONTENT_TYPE.as_str())?
            .unwrap_or("application/octet-stream")
            .to_string(),
        group: header_text(&headers, "x-kiln-group")?
            .unwrap_or_default()
            .to_string(),
        ttl,
        meta: meta_of(&headers)?,
    };
    let entry = reheat.put(&library, &key, put).await?;
    let mut resp = Json(EntryView::from(&entry)).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(&entry)) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

/// `DELETE /v1/cache/{library}/{key}`: removes one entry.
#[utoipa::path(delete, path = "/v1/cache/{library}/{key}", tag = "cache",
    params(
        ("library" = String, Path, description = "The library's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$"),
        ("key" = String, Path, description = "The entry's key: 1 to 512 characters, none a control character; may contain `/`", pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,512}$")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A bad key", body = crate::error::Body),
        (status = 404, description = "No such entry, or no such library", body = crate::error::Body)))]
pub(crate) async fn delete_entry(
    State(st): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let (library, key) = segment(path)?;
    check_key(&key)?;
    if reheat(&st)?.delete(&library, &key).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError(Error::not_found(format!(
            "entry {key:?} of library {library}"
        ))))
    }
}

/// The query of the render route.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RenderQuery {
    /// The producer group of the entry (default: none).
    group: Option<String>,
}

/// `POST /v1/cache/{library}/{key}/render`: renders the key with the props now (one render
/// per key and props in the process), stores it and returns it.
#[utoipa::path(post, path = "/v1/cache/{library}/{key}/render", tag = "cache",
    params(
        ("library" = String, Path, description = "The library's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$"),
        ("key" = String, Path, description = "The entry's key: 1 to 512 characters, none a control character; may contain `/`", pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,512}$"),
        RenderQuery),
    request_body(content = Option<Object>, content_type = "application/json",
        description = "The props the renderer is sent (empty is `null`)"),
    responses(
        (status = 200, description = "The rendered entry, as `GET` answers it"),
        (status = 400, description = "A bad key or body", body = crate::error::Body),
        (status = 404, description = "No such library", body = crate::error::Body),
        (status = 502, description = "The renderer refused (a 4xx; its message is passed on)", body = crate::error::Body)))]
pub(crate) async fn render_entry(
    State(st): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<RenderQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (library, path) = segment(path)?;
    let Some(key) = path.strip_suffix(RENDER) else {
        return Err(ApiError(Error::not_found(format!(
            "route POST /v1/cache/{library}/{path} (POST renders: .../{{key}}/render)"
        ))));
    };
    check_key(key)?;
    let Query(q) = query.map_err(|e| ApiError::invalid(format!("invalid query: {e}")))?;
    let props: serde_json::Value = crate::body::optional_json(&body, "props")?;
    let reheat = reheat(&st)?;
    let entry = reheat
        .render(&library, key, q.group.as_deref().unwrap_or(""), &props)
        .await?;
    Ok(entry_response(reheat, entry, &headers))
}

/// The query of a listing.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only this producer group.
    group: Option<String>,
    /// Only keys that start with this.
    prefix: Option<String>,
    /// The `next` of the previous page.
    cursor: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A producer group and its live entries.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct GroupCount {
    /// The group.
    group: String,
    /// Its live entries.
    count: u64,
}

/// A page of a listing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ListView {
    /// The entries, sorted by key.
    items: Vec<EntryView>,
    /// The cursor of the next page; `null` at the end (a page may be short and still
    /// have a next one).
    next: Option<String>,
    /// Live entries per group, on the first page only (no `cursor`).
    groups: Option<Vec<GroupCount>>,
}

/// `GET /v1/cache/{library}`: the library's live entries, a page at a time.
#[utoipa::path(get, path = "/v1/cache/{library}", tag = "cache",
    params(
        ("library" = String, Path, description = "The library's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$"),
        ListParams),
    responses(
        (status = 200, description = "A page", body = ListView),
        (status = 400, description = "A bad query", body = crate::error::Body),
        (status = 404, description = "No such library", body = crate::error::Body)))]
pub(crate) async fn list_entries(
    State(st): State<AppState>,
    library: Result<Path<String>, PathRejection>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<ListView>, ApiError> {
    let library = segment(library)?;
    let Query(q) = query.map_err(|e| ApiError::invalid(format!("invalid query: {e}")))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit {limit}: expected 1 to 1000"
        )));
    }
    let reheat = reheat(&st)?;
    let groups = match q.cursor {
        Some(_) => None,
        None => Some(
            reheat
                .group_counts(&library)
                .await?
                .into_iter()
                .map(|(group, count)| GroupCount { group, count })
                .collect(),
        ),
    };
    let page = reheat
        .list(
            &library,
            &ListQuery {
                group: q.group,
                prefix: q.prefix,
                after: q.cursor,
                limit: limit as usize,
            },
        )
        .await?;
    Ok(Json(ListView {
        items: page.items.into_iter().map(EntryView::from).collect(),
        next: page.next,
        groups,
    }))
}

/// The body of `POST /v1/libraries/{library}/invalidate`: some keys, one producer group,
/// or the whole library.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum InvalidateRequest {
    /// These keys (each re-rendered at live priority).
    Keys(InvalidateKeys),
    /// One producer group (re-rendered by a group run).
    Group(InvalidateGroup),
    /// The whole library (re-rendered by a run).
    All(InvalidateAll),
}

/// `{"keys": [...]}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvalidateKeys {
    /// The keys.
    #[schema(max_items = 10000, inline = true, value_type = Vec<CacheKey>)]
    keys: Vec<String>,
}

/// `{"group": "..."}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvalidateGroup {
    /// The producer group.
    group: String,
}

/// `{"all": true}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvalidateAll {
    /// `true`.
    all: True,
}

/// The JSON value `true` (and nothing else).
#[derive(Debug)]
pub(crate) struct True;

impl<'de> Deserialize<'de> for True {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if bool::deserialize(d)? {
            Ok(True)
        } else {
            Err(serde::de::Error::custom("expected true"))
        }
    }
}

impl utoipa::PartialSchema for True {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Boolean)
            .enum_values(Some([true]))
            .into()
    }
}

impl utoipa::ToSchema for True {}

/// A cache key as the API takes it: 1 to 512 characters, none a control character.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,512}$")]
pub(crate) struct CacheKey(#[allow(dead_code)] String);

/// What an invalidation did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct InvalidateView {
    /// Live entries marked stale.
    marked: u64,
    /// Keys queued for a re-render at live priority.
    queued: u64,
    /// The run that re-renders a group or the library.
    run: Option<RunView>,
}

/// `POST /v1/libraries/{library}/invalidate`: marks entries stale (reads keep getting them,
/// with `x-kiln-stale: true`) and re-renders them.
#[utoipa::path(post, path = "/v1/libraries/{library}/invalidate", tag = "cache",
    params(("library" = String, Path, description = "The library's name", pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")),
    request_body(content = InvalidateRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Marked; the re-renders are queued", body = InvalidateView),
        (status = 400, description = "A bad body (not exactly one of keys, group, all)", body = crate::error::Body),
        (status = 404, description = "No such library", body = crate::error::Body)))]
pub(crate) async fn invalidate(
    State(st): State<AppState>,
    library: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<(StatusCode, Json<InvalidateView>), ApiError> {
    let library = segment(library)?;
    let req: InvalidateRequest = serde_json::from_slice(&body).map_err(|_| {
        ApiError::invalid(
            "invalidate body: give exactly one of {\"keys\": [..]}, {\"group\": \"..\"} or \
             {\"all\": true}",
        )
    })?;
    let scope = match req {
        InvalidateRequest::Keys(InvalidateKeys { keys }) => {
            if keys.len() > 10_000 {
                return Err(ApiError::invalid(format!(
                    "{} keys: at most 10000 per request",
                    keys.len()
                )));
            }
            for k in &keys {
                check_key(k)?;
            }
            StaleScope::Keys(keys)
        }
        InvalidateRequest::Group(InvalidateGroup { group }) => StaleScope::Group(group),
        InvalidateRequest::All(InvalidateAll { all: True }) => StaleScope::Library,
    };
    let reheat = reheat(&st)?;
    let done = reheat.invalidate(&library, scope).await?;
    let run = match done.run {
        Some(r) => Some(RunView::at(
            reheat.status(r.id).await?,
            reheat.clock().now(),
        )),
        None => None,
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(InvalidateView {
            marked: done.marked,
            queued: done.queued,
            run,
        }),
    ))
}
