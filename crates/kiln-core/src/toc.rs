//! A chunk's table of contents (as eStargz keeps one beside its layers): every file's
//! chunk-relative path, size, mode and link target, written at sync time and stored by the
//! catalog under the chunk's id, so that a chunk's files can be listed and stat'ed without
//! downloading it. A TOC is a function of the chunk's bytes, so it never changes and is
//! stored once for every version that holds the chunk.
//!
//! [`Toc::encode`] / [`Toc::decode`] are its one stored form (JSON lines of
//! `[path, size, exec, target]`), shared by every catalog backend.

use crate::{Error, Result};

/// What a TOC entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TocKind {
    /// A regular file (mode 0755 when `exec`, else 0644).
    File {
        /// Whether it is executable.
        exec: bool,
    },
    /// A symbolic link to `target` (relative, inside the chunk).
    Symlink {
        /// The link's target.
        target: String,
    },
}

/// One file of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    /// The path inside the chunk (for a gathered chunk, the course-relative path).
    pub path: String,
    /// Its size in bytes (a link's is its target's length, as `stat` gives it).
    pub size: u64,
    /// File or link.
    pub kind: TocKind,
}

impl TocEntry {
    /// The entry's Unix mode, type bits included.
    pub fn mode(&self) -> u32 {
        match self.kind {
            TocKind::File { exec: true } => 0o100_755,
            TocKind::File { exec: false } => 0o100_644,
            TocKind::Symlink { .. } => 0o120_777,
        }
    }
}

/// A chunk's files, in the bundle's (ascending byte) order of their paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toc {
    /// The entries.
    pub entries: Vec<TocEntry>,
}

impl Toc {
    /// The stored form: a JSON array of `[path, size, exec, target-or-null]`.
    pub fn encode(&self) -> Vec<u8> {
        let rows: Vec<serde_json::Value> = self
            .entries
            .iter()
            .map(|e| match &e.kind {
                TocKind::File { exec } => serde_json::json!([e.path, e.size, exec, null]),
                TocKind::Symlink { target } => serde_json::json!([e.path, e.size, false, target]),
            })
            .collect();
        serde_json::Value::Array(rows).to_string().into_bytes()
    }

    /// Reads the stored form; an unreadable one is an error quoting its start.
    pub fn decode(bytes: &[u8]) -> Result<Toc> {
        let bad = |why: String| {
            let start = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
            Error::invalid(format!("unreadable table of contents {start:?}: {why}"))
        };
        let rows: Vec<(String, u64, bool, Option<String>)> =
            serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let entries = rows
            .into_iter()
            .map(|(path, size, exec, target)| TocEntry {
                path,
                size,
                kind: match target {
                    Some(target) => TocKind::Symlink { target },
                    None => TocKind::File { exec },
                },
            })
            .collect();
        Ok(Toc { entries })
    }

    /// The bytes of its files.
    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toc_round_trips_its_stored_form() {
        let toc = Toc {
            entries: vec![
                TocEntry {
                    path: "a.sh".into(),
                    size: 12,
                    kind: TocKind::File { exec: true },
                },
                TocEntry {
                    path: "dir/b \"quoted\".html".into(),
                    size: 0,
                    kind: TocKind::File { exec: false },
                },
                TocEntry {
                    path: "link".into(),
                    size: 0,
                    kind: TocKind::Symlink {
                        target: "dir/b.html".into(),
                    },
                },
            ],
        };
        assert_eq!(Toc::decode(&toc.encode()).unwrap(), toc);
        assert_eq!(toc.entries[0].mode(), 0o100_755);
        assert_eq!(toc.entries[2].mode(), 0o120_777);
        let e = Toc::decode(b"[[1,2]]").unwrap_err().to_string();
        assert!(
            e.contains("unreadable table of contents \"[[1,2]]\""),
            "{e}"
        );
    }
}
