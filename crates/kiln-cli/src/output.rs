//! Output: one JSON object on stdout with `--json`, a human summary otherwise.

use serde_json::Value;

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
