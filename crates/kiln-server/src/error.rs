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

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
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

/// The fallback: an unknown route, as JSON.
pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(Error::not_found(format!("route {}", uri.path())))
}
