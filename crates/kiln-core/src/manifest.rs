//! Manifests: a version's list of chunks, and finding the chunk that holds a path.

use crate::ids::{ChunkId, ChunkKind, ChunkRef};
use crate::{Error, Result};

/// One chunk of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// The chunk's kind.
    pub kind: ChunkKind,
    /// The chunk's name within its kind (empty for a course-wide chunk).
    pub name: String,
    /// The content address of its bundle.
    pub id: ChunkId,
    /// The size of the uncompressed bundle in bytes.
    pub size: u64,
    /// The course-relative directory the chunk is mounted at; empty for a chunk of files
    /// gathered from across the course (`questionThumbnails`, `courseInfo`), whose paths
    /// inside the bundle are course-relative.
    pub root: String,
}

impl ManifestEntry {
    /// The chunk's kind and name.
    pub fn chunk_ref(&self) -> ChunkRef {
        ChunkRef {
            kind: self.kind,
            name: self.name.clone(),
        }
    }

    /// Whether the chunk gathers files from across the course rather than one directory.
    pub fn is_gathered(&self) -> bool {
        self.root.is_empty()
    }
}

/// A version's chunks, sorted by (kind, name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// A manifest of `entries`; fails on a duplicate (kind, name).
    pub fn new(mut entries: Vec<ManifestEntry>) -> Result<Self> {
        entries.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        if let Some(w) = entries
            .windows(2)
            .find(|w| w[0].kind == w[1].kind && w[0].name == w[1].name)
        {
            return Err(Error::invalid(format!(
                "duplicate chunk {}",
                w[0].chunk_ref()
            )));
        }
        Ok(Manifest { entries })
    }

    /// The entries, sorted by (kind, name).
    pub fn entries(&self) -> &[ManifestEntry] {
        &self.entries
    }

    /// The entry for a chunk, if the version has it.
    pub fn get(&self, chunk: &ChunkRef) -> Option<&ManifestEntry> {
        self.entries
            .binary_search_by(|e| (e.kind, e.name.as_str()).cmp(&(chunk.kind, chunk.name.as_str())))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The total size of all bundles.
    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// The chunks that may hold the course-relative file `path`, best first: the directory
    /// chunk whose root is the longest prefix of the path, else every gathered chunk.
    /// The path must already be normalised ([`normalize_path`]).
    pub fn candidates_for_path(&self, path: &str) -> Vec<&ManifestEntry> {
        let dir = self
            .entries
            .iter()
            .filter(|e| !e.is_gathered())
            .filter(|e| {
                path.len() > e.root.len()
                    && path.starts_with(&e.root)
                    && path.as_bytes()[e.root.len()] == b'/'
            })
            .max_by_key(|e| e.root.len());
        match dir {
            Some(e) => vec![e],
            None => self.entries.iter().filter(|e| e.is_gathered()).collect(),
        }
    }
}

/// A segment ends after an entry whose (kind, name) hashes to 0 modulo this: ~128 entries.
const SEGMENT_EVERY: u32 = 128;
/// The longest segment, whatever the hashes say.
const SEGMENT_MAX: usize = 1024;

/// Cuts manifest entries (in manifest order) into segments: runs ending after an entry whose
/// (kind, name) hashes to a boundary, so that an entry's new chunk id, or an inserted or
/// removed entry, changes one segment and moves no other cut. The one rule for every stored
/// form of a manifest that is shared between versions (the catalog's, the published view's).
pub fn segments(entries: &[ManifestEntry]) -> Vec<&[ManifestEntry]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, e) in entries.iter().enumerate() {
        if boundary(e) || i + 1 - start >= SEGMENT_MAX {
            out.push(&entries[start..=i]);
            start = i + 1;
        }
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    out
}

/// FNV-1a of `kind \0 name`: stable across versions of kiln, and cheap.
fn boundary(e: &ManifestEntry) -> bool {
    let mut h: u32 = 0x811c_9dc5;
    let bytes = e.kind.as_str().bytes().chain([0u8]).chain(e.name.bytes());
    for b in bytes {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h.is_multiple_of(SEGMENT_EVERY)
}

/// Checks a course-relative path from a request and returns it in canonical form: `/`
/// separated, no empty, `.` or `..` segments, no backslash, NUL or control characters,
/// not absolute. The error names the path.
pub fn normalize_path(path: &str) -> Result<String> {
    let bad = |why: &str| Error::invalid(format!("invalid path {path:?}: {why}"));
    if path.starts_with('/') {
        return Err(bad("absolute"));
    }
    if path.contains('\0') {
        return Err(bad("holds a NUL byte"));
    }
    if path.contains('\\') {
        return Err(bad("holds a backslash"));
    }
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return Err(bad(&format!(
            "holds a control character (U+{:04X})",
            c as u32
        )));
    }
    let mut out = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" => return Err(bad("empty segment")),
            "." | ".." => return Err(bad("dot segment")),
            s => out.push(s),
        }
    }
    Ok(out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: ChunkKind, name: &str, root: &str) -> ManifestEntry {
        ManifestEntry {
            kind,
            name: name.into(),
            id: ChunkId([0; 32]),
            size: 1,
            root: root.into(),
        }
    }

    #[test]
    fn longest_root_wins_and_gathered_chunks_come_last() {
        let m = Manifest::new(vec![
            entry(ChunkKind::Question, "topic/q1", "questions/topic/q1"),
            entry(ChunkKind::Question, "topic/q10", "questions/topic/q10"),
            entry(ChunkKind::CourseInfo, "", ""),
        ])
        .unwrap();
        let c = m.candidates_for_path("questions/topic/q10/a.png");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name, "topic/q10");
        let c = m.candidates_for_path("infoCourse.json");
        assert_eq!(c[0].kind, ChunkKind::CourseInfo);
    }

    #[test]
    fn duplicate_chunks_are_refused() {
        let e = entry(ChunkKind::Question, "q", "questions/q");
        assert!(matches!(
            Manifest::new(vec![e.clone(), e]),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn traversal_forms_are_refused() {
        for p in [
            "../x",
            "a/../b",
            "/etc/passwd",
            "a\\b",
            "a\0b",
            "a//b",
            "./a",
            "",
        ] {
            assert!(normalize_path(p).is_err(), "{p:?}");
        }
        assert_eq!(
            normalize_path("questions/q1/x.png").unwrap(),
            "questions/q1/x.png"
        );
    }

    #[test]
    fn each_bad_character_is_named_for_what_it_is() {
        for (p, why) in [
            ("a\0b", "NUL byte"),
            ("a\\b", "backslash"),
            ("a\u{7}b", "control character (U+0007)"),
        ] {
            let err = normalize_path(p).unwrap_err().to_string();
            assert!(err.contains(why), "{p:?}: {err}");
            let others = ["NUL byte", "backslash", "control character"];
            for other in others.iter().filter(|o| !why.starts_with(**o)) {
                assert!(!err.contains(other), "{p:?}: {err}");
            }
        }
    }
}
