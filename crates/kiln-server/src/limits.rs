//! The limit on a request's header fields, answered as JSON like every other refusal.
//!
//! hyper refuses a request with more header fields than its parser holds with a bare 431 and
//! no body. The parser is given room for [`PARSE_HEADERS`], and this middleware refuses more
//! than [`MAX_HEADERS`] (hyper's own default) with kiln's `{error, message}`, naming the
//! count. Only a request beyond [`PARSE_HEADERS`] still gets hyper's bare answer.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::json_error;

/// Header fields a request may have.
pub(crate) const MAX_HEADERS: usize = 100;

/// Header fields the parser makes room for, so that a request over [`MAX_HEADERS`] reaches
/// [`check`].
pub(crate) const PARSE_HEADERS: usize = 1024;

/// Middleware: refuses a request with more than [`MAX_HEADERS`] header fields.
pub(crate) async fn check(req: Request, next: Next) -> Response {
    let n = req.headers().len();
    if n <= MAX_HEADERS {
        return next.run(req).await;
    }
    let meta = req
        .headers()
        .keys()
        .filter(|k| k.as_str().starts_with(kiln_reheat::http::META_PREFIX))
        .count();
    json_error(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "header_fields_too_large",
        format!(
            "the request has {n} header fields ({meta} of them x-kiln-meta-*): kiln takes at \
             most {MAX_HEADERS}, and at most {} metadata headers on a cache write",
            crate::cache_routes::MAX_META
        ),
    )
}
