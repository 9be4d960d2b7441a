//! [`ApiError`]: the one way a handler fails, as JSON `{error, message}` with a status
//! that follows the kiln error's meaning.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kiln_core::Error;
use serde::Serialize;

/// A failed request. 4xx carry the error's message (it names the culprit) and are not
/// logged as errors; 5xx log the cause and send a generic message.
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
            Error::Unavailable { what, source } => {
                tracing::warn!(%what, "unavailable: {source}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("{what} unavailable, retry later"),
                )
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
