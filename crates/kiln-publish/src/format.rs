//! The published objects' bytes: the head, roots, manifest segments and table-of-contents
//! segments (JSON, so that an operator can read them with any tool), and where a manifest is
//! cut into segments.
//!
//! **Invariant:** the bytes of a root and its segments are a function of the version's
//! manifest and its chunks' tables of contents only, so that publishing the same version
//! twice (a repair, a backfill) names the same objects.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use kiln_core::ids::{ChunkId, ChunkKind, CourseId, VersionId};
use kiln_core::manifest::{Manifest, ManifestEntry};
use kiln_core::toc::Toc;
use kiln_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The format every object carries; a reader refuses another.
pub const FORMAT: u32 = 1;

/// The BLAKE3 of an object's bytes: its name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&ChunkId(self.0).to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest> {
        ChunkId::from_str(s)
            .map(|c| Digest(c.0))
            .map_err(|_| Error::invalid(format!("invalid object id {s:?}: expected 64 hex digits")))
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The fleet-wide head: every course's current version, by course.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// [`FORMAT`].
    pub format: u32,
    /// One more than the head it replaced.
    pub seq: u64,
    /// When it was written (ms since the epoch, the writer's clock).
    pub written_at_ms: i64,
    /// The courses, by id.
    pub courses: BTreeMap<String, HeadCourse>,
}

impl Head {
    /// A stored head, in the format this kiln reads.
    pub fn decode(bytes: &[u8]) -> Result<Head> {
        let head: Head = from_slice("head", bytes)?;
        check_format("head", head.format)?;
        Ok(head)
    }

    /// The course's current version and root, if the head names the course.
    pub fn course(&self, course: &CourseId) -> Option<(VersionId, Digest)> {
        let c = self.courses.get(course.as_str())?;
        Some((VersionId::new(&c.version).ok()?, c.root))
    }

    /// The courses it names, sorted.
    pub fn course_ids(&self) -> Vec<CourseId> {
        self.courses
            .keys()
            .filter_map(|c| CourseId::new(c).ok())
            .collect()
    }
}

/// One course in the head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadCourse {
    /// Its current version.
    pub version: String,
    /// That version's root.
    pub root: Digest,
    /// When the catalog first published that version (ms since the epoch).
    pub created_at: i64,
}

/// A version's root: its manifest as segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// [`FORMAT`].
    pub format: u32,
    /// The course.
    pub course: String,
    /// The version.
    pub version: String,
    /// The manifest's segments, in manifest order.
    pub segments: Vec<SegmentRef>,
}

impl Root {
    /// A stored root, in the format this kiln reads.
    pub fn decode(bytes: &[u8]) -> Result<Root> {
        let root: Root = from_slice("root", bytes)?;
        check_format("root", root.format)?;
        Ok(root)
    }
}

/// One segment of a root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    /// The segment of manifest entries.
    pub manifest: Digest,
    /// The tables of contents of its chunks.
    pub tocs: Digest,
    /// How many entries it holds.
    pub chunks: u32,
}

/// A version's pointer to its root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// [`FORMAT`].
    pub format: u32,
    /// The root.
    pub root: Digest,
}

/// One manifest entry as stored: `[kind, name, id, size, root]`.
type EntryRow = (String, String, String, u64, String);

/// The segments of a manifest (kiln-core's rule, shared with the catalog's stored form).
pub fn cut(entries: &[ManifestEntry]) -> Vec<&[ManifestEntry]> {
    kiln_core::manifest::segments(entries)
}

/// A segment's bytes.
pub fn encode_segment(entries: &[ManifestEntry]) -> Vec<u8> {
    let rows: Vec<EntryRow> = entries
        .iter()
        .map(|e| {
            (
                e.kind.as_str().to_string(),
                e.name.clone(),
                e.id.to_hex(),
                e.size,
                e.root.clone(),
            )
        })
        .collect();
    to_vec(&rows)
}

/// A segment's entries.
pub fn decode_segment(bytes: &[u8]) -> Result<Vec<ManifestEntry>> {
    let rows: Vec<EntryRow> = from_slice("manifest segment", bytes)?;
    rows.into_iter()
        .map(|(kind, name, id, size, root)| {
            Ok(ManifestEntry {
                kind: ChunkKind::from_str(&kind).map_err(|e| corrupt("manifest segment", e))?,
                name,
                id: ChunkId::from_str(&id).map_err(|e| corrupt("manifest segment", e))?,
                size,
                root,
            })
        })
        .collect()
}

/// A table-of-contents segment's bytes: `[[chunk id, table of contents], ...]` in the
/// segment's order. Fails naming the chunk if `tocs` lacks one.
pub fn encode_tocs(entries: &[ManifestEntry], tocs: &HashMap<ChunkId, Toc>) -> Result<Vec<u8>> {
    let mut out = b"[".to_vec();
    for (i, e) in entries.iter().enumerate() {
        let toc = tocs.get(&e.id).ok_or_else(|| {
            Error::not_found(format!(
                "the table of contents of chunk {} ({})",
                e.id,
                e.chunk_ref()
            ))
        })?;
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(format!("[\"{}\",", e.id).as_bytes());
        out.extend_from_slice(&toc.encode());
        out.push(b']');
    }
    out.push(b']');
    Ok(out)
}

/// A table-of-contents segment's tables.
pub fn decode_tocs(bytes: &[u8]) -> Result<Vec<(ChunkId, Toc)>> {
    let rows: Vec<(String, Box<serde_json::value::RawValue>)> =
        from_slice("table-of-contents segment", bytes)?;
    rows.into_iter()
        .map(|(id, toc)| {
            let id = ChunkId::from_str(&id).map_err(|e| corrupt("table-of-contents segment", e))?;
            Ok((id, Toc::decode(toc.get().as_bytes())?))
        })
        .collect()
}

/// The manifest a root's decoded segments make.
pub fn manifest_of(segments: Vec<Vec<ManifestEntry>>) -> Result<Manifest> {
    Manifest::new(segments.into_iter().flatten().collect())
}

/// An object's bytes as JSON.
pub fn to_vec<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("published objects serialize")
}

/// Reads an object's JSON; an unreadable one is `Corrupt`-like (`Backend`), naming `what`.
pub fn from_slice<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(what, e))
}

/// Checks an object's format field.
pub fn check_format(what: &str, format: u32) -> Result<()> {
    if format == FORMAT {
        Ok(())
    } else {
        Err(corrupt(
            what,
            format!("format {format}, this kiln reads {FORMAT}"),
        ))
    }
}

fn corrupt(what: &str, why: impl fmt::Display) -> Error {
    Error::backend("published", format!("unreadable {what}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize, salt: u8) -> Vec<ManifestEntry> {
        (0..n)
            .map(|i| ManifestEntry {
                kind: ChunkKind::Question,
                name: format!("q{i:05}"),
                id: ChunkId([salt.wrapping_add(i as u8); 32]),
                size: i as u64,
                root: format!("questions/q{i:05}"),
            })
            .collect()
    }

    #[test]
    fn a_changed_entry_changes_one_segment() {
        let a = Manifest::new(entries(10_000, 0)).unwrap();
        let mut changed = entries(10_000, 0);
        changed[5_000].id = ChunkId([0xee; 32]);
        let b = Manifest::new(changed).unwrap();
        let ids = |m: &Manifest| -> Vec<Digest> {
            cut(m.entries())
                .iter()
                .map(|s| Digest::of(&encode_segment(s)))
                .collect()
        };
        let (sa, sb) = (ids(&a), ids(&b));
        assert_eq!(sa.len(), sb.len());
        assert!(sa.len() > 20 && sa.len() < 300, "{} segments", sa.len());
        assert_eq!(sa.iter().zip(&sb).filter(|(x, y)| x != y).count(), 1);
    }

    #[test]
    fn an_inserted_entry_changes_one_segment() {
        let mut more = entries(2_001, 0);
        let extra = more.remove(1_000);
        let a = Manifest::new(more.clone()).unwrap();
        more.push(extra);
        let b = Manifest::new(more).unwrap();
        let ids = |m: &Manifest| -> std::collections::HashSet<Digest> {
            cut(m.entries())
                .iter()
                .map(|s| Digest::of(&encode_segment(s)))
                .collect()
        };
        assert_eq!(ids(&b).difference(&ids(&a)).count(), 1);
    }

    #[test]
    fn segments_and_tables_round_trip() {
        let m = Manifest::new(entries(300, 7)).unwrap();
        let segs: Vec<Vec<ManifestEntry>> = cut(m.entries())
            .iter()
            .map(|s| decode_segment(&encode_segment(s)).unwrap())
            .collect();
        assert_eq!(manifest_of(segs).unwrap(), m);
        let tocs: HashMap<ChunkId, Toc> = m
            .entries()
            .iter()
            .map(|e| {
                (
                    e.id,
                    Toc {
                        entries: vec![kiln_core::toc::TocEntry {
                            path: format!("{}/x", e.name),
                            size: 3,
                            kind: kiln_core::toc::TocKind::File { exec: false },
                        }],
                    },
                )
            })
            .collect();
        let bytes = encode_tocs(m.entries(), &tocs).unwrap();
        let back: HashMap<ChunkId, Toc> = decode_tocs(&bytes).unwrap().into_iter().collect();
        assert_eq!(back, tocs);
    }

    #[test]
    fn a_missing_table_of_contents_is_named() {
        let m = Manifest::new(entries(2, 0)).unwrap();
        let err = encode_tocs(m.entries(), &HashMap::new()).unwrap_err();
        assert!(err.to_string().contains("question:q00000"), "{err}");
    }

    #[test]
    fn another_format_is_refused() {
        let err = check_format("head", 2).unwrap_err();
        assert!(err.to_string().contains("format 2"), "{err}");
    }
}
