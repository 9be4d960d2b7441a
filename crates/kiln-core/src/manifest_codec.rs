//! The compact binary form a catalog stores a manifest in, shared between versions: a
//! version's row holds a list of segment ids (`KS1`), and each segment
//! ([`crate::manifest::segments`]) is stored once, named by the BLAKE3 of its bytes. Publishing a version that changed one question writes one segment and the
//! list, not the whole manifest.
//!
//! Layouts (little-endian): a segment is `b"KM1"`, entry count (u32), then per entry: kind
//! (u8 length + name as `ChunkKind::as_str`), name (u32 length + UTF-8), chunk id (32
//! bytes), size (u64), root (u32 length + UTF-8); kinds are stored by name so that adding a
//! kind never changes the meaning of stored manifests. A list is `b"KS1"`, segment count
//! (u32), then 32-byte segment ids. Versions published before segments hold a whole
//! manifest as one `KM1` blob, which still reads.

use crate::ids::ChunkId;
use crate::manifest::{Manifest, ManifestEntry};

use crate::{Error, Result};

const MAGIC: &[u8; 3] = b"KM1";
const SEGMENTED: &[u8; 3] = b"KS1";

/// A manifest as stored: the version's list and its segments, each with its id.
pub struct Segmented {
    /// The version's `KS1` list.
    pub list: Vec<u8>,
    /// Each segment's id and `KM1` bytes.
    pub segments: Vec<([u8; 32], Vec<u8>)>,
}

/// A segment's id: the BLAKE3 of its bytes.
pub fn segment_id(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// Cuts a manifest into stored segments.
pub fn encode_segmented(m: &Manifest) -> Segmented {
    let segments: Vec<([u8; 32], Vec<u8>)> = crate::manifest::segments(m.entries())
        .into_iter()
        .map(|s| {
            let bytes = encode_entries(s);
            (segment_id(&bytes), bytes)
        })
        .collect();
    let mut list = Vec::with_capacity(7 + 32 * segments.len());
    list.extend_from_slice(SEGMENTED);
    list.extend_from_slice(&(segments.len() as u32).to_le_bytes());
    for (id, _) in &segments {
        list.extend_from_slice(id);
    }
    Segmented { list, segments }
}

/// The segment ids of a version's `KS1` list; `None` for a whole `KM1` manifest.
pub fn segment_ids(blob: &[u8]) -> Result<Option<Vec<[u8; 32]>>> {
    if blob.len() < 7 || &blob[..3] != SEGMENTED {
        return Ok(None);
    }
    let n = u32::from_le_bytes(blob[3..7].try_into().expect("4 bytes")) as usize;
    let ids = &blob[7..];
    if ids.len() != n * 32 {
        return Err(corrupt("segment list of the wrong length"));
    }
    Ok(Some(
        ids.chunks(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect(),
    ))
}

/// Decodes a manifest from its segments' bytes, in order.
pub fn decode_segments<'a>(segments: impl IntoIterator<Item = &'a [u8]>) -> Result<Manifest> {
    let mut entries = Vec::new();
    for s in segments {
        let mut r = Reader::new(s)?;
        for _ in 0..r.count {
            entries.push(r.entry()?);
        }
        if r.pos != s.len() {
            return Err(corrupt("trailing bytes"));
        }
    }
    Manifest::new(entries).map_err(|e| corrupt(&e.to_string()))
}

/// Encodes a manifest whole (one `KM1` blob: versions stored before segments).
pub fn encode(m: &Manifest) -> Vec<u8> {
    encode_entries(m.entries())
}

/// Encodes a run of entries (a segment, or a whole manifest).
pub fn encode_entries(entries: &[ManifestEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(7 + entries.len() * 96);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        let kind = e.kind.as_str().as_bytes();
        // Kind names are short constants (< 32 bytes).
        out.push(kind.len() as u8);
        out.extend_from_slice(kind);
        put_str(&mut out, &e.name);
        out.extend_from_slice(&e.id.0);
        out.extend_from_slice(&e.size.to_le_bytes());
        put_str(&mut out, &e.root);
    }
    out
}

/// Calls `f` with each chunk id of an encoded manifest, without building the manifest.
pub fn for_each_id(blob: &[u8], mut f: impl FnMut(ChunkId)) -> Result<()> {
    let mut r = Reader::new(blob)?;
    for _ in 0..r.count {
        let e = r.entry()?;
        f(e.id);
    }
    Ok(())
}

/// Decodes a manifest written by [`encode`].
pub fn decode(blob: &[u8]) -> Result<Manifest> {
    let mut r = Reader::new(blob)?;
    let mut entries = Vec::with_capacity(r.count as usize);
    for _ in 0..r.count {
        entries.push(r.entry()?);
    }
    if r.pos != blob.len() {
        return Err(corrupt("trailing bytes"));
    }
    Manifest::new(entries).map_err(|e| corrupt(&e.to_string()))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn corrupt(why: &str) -> Error {
    Error::backend("catalog", format!("stored manifest is corrupt: {why}"))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    count: u32,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Result<Self> {
        if buf.len() < 7 || &buf[..3] != MAGIC {
            return Err(corrupt("bad header"));
        }
        let mut r = Reader {
            buf,
            pos: 3,
            count: 0,
        };
        r.count = u32::from_le_bytes(r.array()?);
        Ok(r)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| corrupt("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn string(&mut self, len: usize) -> Result<String> {
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| corrupt("invalid UTF-8"))
    }

    fn entry(&mut self) -> Result<ManifestEntry> {
        let klen = self.take(1)?[0] as usize;
        let kind = self.string(klen)?;
        let kind = kind
            .parse()
            .map_err(|_| corrupt(&format!("unknown kind {kind:?}")))?;
        let nlen = u32::from_le_bytes(self.array()?) as usize;
        let name = self.string(nlen)?;
        let id = ChunkId(self.array()?);
        let size = u64::from_le_bytes(self.array()?);
        let rlen = u32::from_le_bytes(self.array()?) as usize;
        let root = self.string(rlen)?;
        Ok(ManifestEntry {
            kind,
            name,
            id,
            size,
            root,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::ids::ChunkKind;

    use super::*;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let m = Manifest::new(vec![
            ManifestEntry {
                kind: ChunkKind::Question,
                name: "topic/q1".into(),
                id: ChunkId([7; 32]),
                size: 1234,
                root: "questions/topic/q1".into(),
            },
            ManifestEntry {
                kind: ChunkKind::CourseInfo,
                name: String::new(),
                id: ChunkId([9; 32]),
                size: u64::MAX,
                root: String::new(),
            },
        ])
        .unwrap();
        let blob = encode(&m);
        assert_eq!(decode(&blob).unwrap(), m);
        let mut ids = Vec::new();
        for_each_id(&blob, |id| ids.push(id)).unwrap();
        assert_eq!(ids.len(), 2);
        assert!(decode(&blob[..blob.len() - 1]).is_err());
        assert!(decode(b"nope").is_err());
    }
}

#[cfg(test)]
mod segment_tests {
    use crate::ids::ChunkKind;

    use super::*;

    fn manifest(n: usize, changed: Option<usize>) -> Manifest {
        Manifest::new(
            (0..n)
                .map(|i| ManifestEntry {
                    kind: ChunkKind::Question,
                    name: format!("t/q{i:05}"),
                    id: ChunkId([if Some(i) == changed { 0xee } else { 1 }; 32]),
                    size: i as u64,
                    root: format!("questions/t/q{i:05}"),
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn segments_round_trip_and_a_change_rewrites_one() {
        let a = encode_segmented(&manifest(5_000, None));
        let b = encode_segmented(&manifest(5_000, Some(2_500)));
        let back = decode_segments(a.segments.iter().map(|(_, s)| s.as_slice())).unwrap();
        assert_eq!(back, manifest(5_000, None));
        let ids = segment_ids(&a.list).unwrap().unwrap();
        assert_eq!(ids.len(), a.segments.len());
        let old: std::collections::HashSet<_> = a.segments.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            b.segments
                .iter()
                .filter(|(id, _)| !old.contains(id))
                .count(),
            1
        );
        // A version stored whole, from before segments, is not a list.
        assert!(segment_ids(&encode(&manifest(3, None))).unwrap().is_none());
        assert!(segment_ids(b"KS1\x02\0\0\0short").is_err());
    }
}
