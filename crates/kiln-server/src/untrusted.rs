//! The headers of bytes kiln serves but did not write: course files (anything in a course's
//! git repository) and render-cache entries (what a renderer or a `write`-scope client
//! stored, with the type it gave).
//!
//! Such bytes may be HTML or SVG with scripts in them. Served on kiln's origin as they are,
//! a script would run there and act on kiln with the browser's standing: read courses, pause
//! a library. So they go out under `Content-Security-Policy: sandbox`: the document gets an
//! opaque origin of its own and runs no script, submits no form and opens no window, while
//! it still renders. `X-Content-Type-Options: nosniff` keeps a browser from reading a
//! `text/plain` file as HTML, and a state-changing request from a sandboxed document carries
//! `Origin: null`, which [`crate::hosts`] refuses.

use axum::http::{HeaderMap, HeaderValue, header};

/// The sandbox policy of every course file and render-cache entry.
pub(crate) const SANDBOX: &str = "sandbox";

/// Adds the sandbox and `nosniff` to a response carrying untrusted bytes.
pub(crate) fn sandbox(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SANDBOX),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}
