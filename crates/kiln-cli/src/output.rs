//! Output: one JSON object on stdout with `--json`, a human summary otherwise; a failure
//! is one line on stderr (and with `--json` also `{"error": kind, "message": text}` on stdout).

use serde_json::{Value, json};

/// Prints `json` when `as_json`, else the human text.
pub(crate) fn emit(as_json: bool, json: Value, human: impl FnOnce() -> String) {
    if as_json {
        println!("{json}");
    } else {
        let text = human();
        if !text.is_empty() {
            println!("{text}");
        }
    }
}

/// Bytes in a human unit.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Reports a failed command: `error: <message>` on stderr, and with `as_json` one JSON object
/// `{"error": <kind>, "message": <message>}` on stdout, for scripts that parse stdout.
pub(crate) fn error(as_json: bool, e: &anyhow::Error) {
    let message = message(e);
    eprintln!("error: {message}");
    if as_json {
        println!("{}", json!({ "error": kind(e), "message": message }));
    }
}

/// The error and its causes on one line (`context: cause: cause`), each cause once: a
/// cause whose text the line already holds is left out (many errors print their source in
/// their own message as well as returning it from `source()`).
pub(crate) fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let m = cause.to_string();
        if m.is_empty() || text.contains(&m) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&m);
    }
    text
}

/// The error's kind, from the first kiln error in its chain (the names of the HTTP API's
/// `error` field); `error` when there is none.
pub(crate) fn kind(e: &anyhow::Error) -> &'static str {
    use kiln_core::Error;
    let Some(k) = e.chain().find_map(|c| c.downcast_ref::<Error>()) else {
        return "error";
    };
    match k {
        Error::NotFound { .. } => "not_found",
        Error::AlreadyExists { .. } => "already_exists",
        Error::Precondition(_) => "precondition",
        Error::InvalidInput(_) => "invalid_input",
        Error::Unavailable { .. } => "unavailable",
        Error::Upstream(_) => "upstream",
        Error::Limit {
            kind: kiln_core::error::LimitKind::Count,
            ..
        } => "too_many",
        Error::Limit { .. } => "insufficient_storage",
        Error::Disk { .. } if k.is_disk_full() => "insufficient_storage",
        Error::Disk { .. } => "disk",
        Error::Backend { .. } => "backend",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let inner = std::io::Error::other("file is not a database");
        let e = anyhow::Error::new(kiln_core::Error::backend("sqlite", inner))
            .context("opening the catalog");
        assert_eq!(
            message(&e),
            "opening the catalog: sqlite: file is not a database"
        );
        assert_eq!(kind(&e), "backend");
    }
}
