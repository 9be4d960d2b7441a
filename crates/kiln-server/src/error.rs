//! [`ApiError`]: the one way a handler fails, as JSON `{error, message}` with a status
//! that follows the kiln error's meaning.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kiln_core::Error;
use kiln_core::error::LimitKind;
use serde::Serialize;

/// A failed request. 4xx carry the error's message (it names the culprit) and are not
/// logged as errors; 5xx log the cause and send a generic message, except a failure of this
/// server's disk ([`Error::Disk`]: 507 when it is full, else 500), whose message names the
/// chunk and the operating system's error (never a path of the machine), so that whoever
/// reads the answer knows what to fix.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    /// A 400 with `msg`.
    pub fn invalid(msg: impl Into<String>) -> Self {
        ApiError(Error::invalid(msg))
    }
}

/// Every error's body: the error's kind (`not_found`, `invalid_input`, `unavailable`, ...)
/// and a message for a person.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(crate) struct Body<'a> {
    /// The kind, stable for programs to match on.
    error: &'a str,
    /// What went wrong, naming the culprit.
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match &self.0 {
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found", self.0.to_string()),
            Error::InvalidInput(m) => (StatusCode::BAD_REQUEST, "invalid_input", m.clone()),
            Error::AlreadyExists { .. } => {
                (StatusCode::CONFLICT, "already_exists", self.0.to_string())
            }
            Error::Precondition(m) => (StatusCode::CONFLICT, "precondition", m.clone()),
            Error::Upstream(m) => (StatusCode::BAD_GATEWAY, "upstream", m.clone()),
            Error::Limit { kind, message } => match kind {
                LimitKind::Count => (StatusCode::TOO_MANY_REQUESTS, "too_many", message.clone()),
                LimitKind::Storage => (
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    message.clone(),
                ),
            },
            Error::Unavailable { what, source } => {
                tracing::warn!(%what, "unavailable: {source}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("{what} unavailable, retry later"),
                )
            }
            e @ Error::Disk { .. } => {
                tracing::error!(error = %e, "request failed on the local disk");
                if e.is_disk_full() {
                    (
                        StatusCode::INSUFFICIENT_STORAGE,
                        "insufficient_storage",
                        e.to_string(),
                    )
                } else {
                    (StatusCode::INTERNAL_SERVER_ERROR, "disk", e.to_string())
                }
            }
            e => {
                tracing::error!(error = %e, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".into(),
                )
            }
        };
        (
            status,
            Json(Body {
                error: code,
                message,
            }),
        )
            .into_response()
    }
}

/// An error answer whose status has no [`Error`] variant (405, 416), as JSON
/// `{error, message}` like every other.
pub(crate) fn json_error(status: StatusCode, code: &str, message: String) -> Response {
    let body = Body {
        error: code,
        message,
    };
    (status, Json(body)).into_response()
}

/// A known route asked with a method it does not have, as JSON.
pub(crate) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

/// Turns an error response that is not JSON (axum's own rejections: 413 for a body over
/// the limit, 415, 422, ...) into `{error, message}`, keeping its status and its text.
pub(crate) async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "invalid_input",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    let mut out = (
        status,
        Json(Body {
            error: code,
            message,
        }),
    )
        .into_response();
    for (k, v) in parts.headers.iter() {
        out.headers_mut().entry(k).or_insert(v.clone());
    }
    out
}

/// The fallback: an unknown route, as JSON.
pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(Error::not_found(format!("route {}", uri.path())))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(e: Error) -> (StatusCode, serde_json::Value) {
        let resp = ApiError(e).into_response();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_disk_failure_names_the_chunk_and_the_cause() {
        let what = "extracting chunk question:q1 (ab12) of course demo into the cache";
        let (status, body) = answer(Error::disk(what, std::io::Error::from_raw_os_error(36))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"], "disk");
        let msg = body["message"].as_str().unwrap();
        assert!(msg.starts_with(what), "{msg}");
        assert!(msg.contains("os error 36"), "{msg}");
    }

    #[tokio::test]
    async fn a_full_disk_is_507() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let (status, body) = answer(Error::disk("extracting chunk elements", full)).await;
        assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(body["error"], "insufficient_storage");
        assert!(body["message"].as_str().unwrap().contains("elements"));
    }

    #[tokio::test]
    async fn other_5xx_stay_generic() {
        let (status, body) = answer(Error::backend("sqlite", "secret detail")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["message"], "internal error");
    }
}
