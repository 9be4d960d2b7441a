//! The compact binary form a manifest is stored in: one blob per version, so that
//! publishing a 10,000-chunk manifest is one row write rather than 10,000.
//!
//! Layout (little-endian): `b"KM1"`, entry count (u32), then per entry: kind (u8 length +
//! name as `ChunkKind::as_str`), name (u32 length + UTF-8), chunk id (32 bytes), size (u64),
//! root (u32 length + UTF-8). Kinds are stored by name so that adding a kind never changes
//! the meaning of stored manifests.

use kiln_core::ids::ChunkId;
use kiln_core::manifest::{Manifest, ManifestEntry};

use crate::db::Error;

const MAGIC: &[u8; 3] = b"KM1";

/// Encodes a manifest.
pub(crate) fn encode(m: &Manifest) -> Vec<u8> {
    let mut out = Vec::with_capacity(7 + m.entries().len() * 96);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(m.entries().len() as u32).to_le_bytes());
    for e in m.entries() {
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
pub(crate) fn for_each_id(blob: &[u8], mut f: impl FnMut(ChunkId)) -> Result<(), Error> {
    let mut r = Reader::new(blob)?;
    for _ in 0..r.count {
        let e = r.entry()?;
        f(e.id);
    }
    Ok(())
}

/// Decodes a manifest written by [`encode`].
pub(crate) fn decode(blob: &[u8]) -> Result<Manifest, Error> {
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
    Error::Corrupt(format!("stored manifest is corrupt: {why}"))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    count: u32,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Result<Self, Error> {
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

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| corrupt("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn string(&mut self, len: usize) -> Result<String, Error> {
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| corrupt("invalid UTF-8"))
    }

    fn entry(&mut self) -> Result<ManifestEntry, Error> {
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
    use kiln_core::ids::ChunkKind;

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
