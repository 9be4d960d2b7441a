//! Which bytes of a file a request asks for: `Range` (one byte range), gated by `If-Range`.
//!
//! Parsing is `http-range-header`'s (strict RFC 9110 grammar); this file decides what each
//! outcome means here. Multiple ranges are answered with the whole file (200): RFC 9110
//! lets a server ignore `Range`, and the clients that read course files (a PDF viewer, a
//! `<video>` element) ask for one range at a time, so `multipart/byteranges` would be code
//! nobody exercises.

use std::ops::RangeInclusive;

use axum::http::{HeaderMap, header};
use http_range_header::RangeUnsatisfiableError;

/// The part of a file an answer carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Span {
    /// All of it (no range, a range ignored, or several ranges): 200.
    Whole,
    /// These bytes, inclusive, within the file: 206.
    Part(RangeInclusive<u64>),
    /// A well-formed range that selects nothing of a file this long: 416.
    Unsatisfiable,
}

/// The span `headers` ask for of a file of `len` bytes whose strong ETag is `etag`.
///
/// - No `Range`, or an `If-Range` that is not exactly `etag` (a weak tag or a date never
///   is: the file has no `Last-Modified`): the whole file, since the client's partial copy
///   is of other bytes.
/// - A `Range` that does not parse, or names a unit other than `bytes`: ignored (RFC 9110
///   section 14.2 lets a server ignore one it does not understand).
/// - More than one range: the whole file (see the module docs).
/// - One range: clamped to the file (`bytes=0-999999` of a short file is all of it), or
///   [`Span::Unsatisfiable`] when it starts at or past the end, or is `bytes=-0`.
pub(crate) fn requested(headers: &HeaderMap, etag: &str, len: u64) -> Span {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Span::Whole;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE)
        && if_range.as_bytes() != etag.as_bytes()
    {
        return Span::Whole;
    }
    let Ok(parsed) = http_range_header::parse_range_header(range) else {
        return Span::Whole;
    };
    if parsed.len() != 1 {
        return Span::Whole;
    }
    match parsed.validate(len) {
        // Empty only for a suffix range of an empty file: the whole (empty) file.
        Ok(mut v) => v.pop().map_or(Span::Whole, Span::Part),
        Err(RangeUnsatisfiableError::Unsatisfiable) => Span::Unsatisfiable,
        Err(_) => Span::Whole,
    }
}
