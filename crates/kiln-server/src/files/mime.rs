//! The content type of a course file: one table for the kinds PrairieLearn courses hold,
//! `mime_guess` for the rest, and `; charset=utf-8` on every text type.
//!
//! The table exists because `mime_guess` answers wrongly or vaguely for much of what a
//! course contains: `.py`, `.c` and `.h` as `text/plain`, `.java` as
//! `application/octet-stream`, `.dot` as a Word template, `.ts` as a video stream, `.woff`
//! and `.otf` under pre-RFC 8081 names. Course files are UTF-8 text in practice (PrairieLearn
//! reads them as such), and a browser that is not told guesses the charset from the locale.

use std::path::Path;

/// Types by lower-cased extension, overriding `mime_guess`. Sorted by extension (a test
/// checks it) and looked up by binary search.
const TABLE: &[(&str, &str)] = &[
    ("c", "text/x-c"),
    ("cc", "text/x-c++"),
    ("cpp", "text/x-c++"),
    ("css", "text/css"),
    ("csv", "text/csv"),
    ("dot", "text/vnd.graphviz"),
    ("gv", "text/vnd.graphviz"),
    ("h", "text/x-c"),
    ("hpp", "text/x-c++"),
    ("htm", "text/html"),
    ("html", "text/html"),
    ("ipynb", "application/x-ipynb+json"),
    ("java", "text/x-java"),
    // RFC 9239: scripts and modules alike are text/javascript.
    ("js", "text/javascript"),
    ("json", "application/json"),
    ("md", "text/markdown"),
    ("mjs", "text/javascript"),
    // Mustache templates (PrairieLearn's question.html is one) are shown, not rendered.
    ("mustache", "text/x-mustache"),
    ("otf", "font/otf"),
    ("py", "text/x-python"),
    ("r", "text/x-r"),
    ("rmd", "text/markdown"),
    ("sh", "text/x-sh"),
    ("sql", "application/sql"),
    ("svg", "image/svg+xml"),
    ("tex", "text/x-tex"),
    ("toml", "application/toml"),
    ("ts", "text/x-typescript"),
    ("ttf", "font/ttf"),
    ("txt", "text/plain"),
    ("wasm", "application/wasm"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("xml", "application/xml"),
    ("yaml", "application/yaml"),
    ("yml", "application/yaml"),
];

/// Types outside `text/` whose content is text, so that they get a charset too.
const TEXT_APPLICATION: &[&str] = &[
    "application/ecmascript",
    "application/javascript",
    "application/json",
    "application/sql",
    "application/toml",
    "application/x-sh",
    "application/x-tex",
    "application/xml",
    "application/yaml",
];

/// The `Content-Type` for the file at `path` (only its extension counts): the table's type,
/// else `mime_guess`'s first guess, else `application/octet-stream`; with
/// `; charset=utf-8` when the type is text.
pub(crate) fn content_type(path: &str) -> String {
    let ext = Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let essence = match ext.as_deref().and_then(from_table) {
        Some(t) => t.to_string(),
        None => mime_guess::from_path(path)
            .first_or_octet_stream()
            .essence_str()
            .to_string(),
    };
    if is_text(&essence) {
        format!("{essence}; charset=utf-8")
    } else {
        essence
    }
}

fn from_table(ext: &str) -> Option<&'static str> {
    TABLE
        .binary_search_by(|(e, _)| (*e).cmp(ext))
        .ok()
        .map(|i| TABLE[i].1)
}

/// Whether a type (without parameters) is text: `text/*`, a `+json` or `+xml` type (SVG,
/// notebooks), or one of [`TEXT_APPLICATION`].
fn is_text(essence: &str) -> bool {
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || TEXT_APPLICATION.contains(&essence)
}

#[cfg(test)]
mod tests {
    use super::{TABLE, content_type};

    #[test]
    fn course_file_kinds_get_their_types() {
        for (path, want) in [
            ("server.py", "text/x-python; charset=utf-8"),
            ("analysis.R", "text/x-r; charset=utf-8"),
            ("lab.ipynb", "application/x-ipynb+json; charset=utf-8"),
            ("question.mustache", "text/x-mustache; charset=utf-8"),
            ("Main.java", "text/x-java; charset=utf-8"),
            ("graph.dot", "text/vnd.graphviz; charset=utf-8"),
            ("question.html", "text/html; charset=utf-8"),
            ("info.json", "application/json; charset=utf-8"),
            ("fig.svg", "image/svg+xml; charset=utf-8"),
            ("font.woff", "font/woff"),
            ("font.woff2", "font/woff2"),
            ("notes.pdf", "application/pdf"),
            ("clip.mp4", "video/mp4"),
            ("fig.PNG", "image/png"),
            ("noextension", "application/octet-stream"),
        ] {
            assert_eq!(content_type(path), want, "{path}");
        }
    }

    #[test]
    fn the_table_is_sorted_and_lower_case() {
        for w in TABLE.windows(2) {
            assert!(w[0].0 < w[1].0, "{} before {}", w[0].0, w[1].0);
        }
        assert!(TABLE.iter().all(|(e, _)| e.to_ascii_lowercase() == *e));
    }
}
