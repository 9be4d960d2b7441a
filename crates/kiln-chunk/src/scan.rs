//! Reading a stored bundle once for `kiln verify`: its chunk id and its entries' paths, in
//! one streaming pass (zstd decoder -> BLAKE3 hasher -> tar reader), so that checking what a
//! chunk holds costs no second decompression and never holds the tar whole.

use std::io::{self, Read};

use kiln_core::ids::ChunkId;

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// BLAKE3 of the decompressed bytes.
    pub id: ChunkId,
    /// Every entry's chunk-relative path, in the bundle's order; `None` if the bytes are not
    /// a tar (their id then differs from the chunk's).
    pub paths: Option<Vec<String>>,
}

/// Hashes everything read through it.
struct Hashing<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Scans a compressed bundle. An error means the bytes are not zstd (or the reader failed).
pub fn scan(compressed: impl Read) -> io::Result<Scanned> {
    let mut hashing = Hashing {
        inner: zstd::Decoder::new(compressed)?,
        hasher: blake3::Hasher::new(),
    };
    let paths = {
        let mut archive = tar::Archive::new(&mut hashing);
        let read: io::Result<Vec<String>> = (|| {
            let mut out = Vec::new();
            for entry in archive.entries()? {
                let entry = entry?;
                let raw = entry.path_bytes();
                out.push(
                    String::from_utf8_lossy(&raw)
                        .trim_end_matches('/')
                        .to_string(),
                );
            }
            Ok(out)
        })();
        read.ok()
    };
    // The tar reader stops at the end-of-archive marker (or at what it cannot parse); the
    // hash covers every byte.
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(Scanned {
        id: ChunkId(*hashing.hasher.finalize().as_bytes()),
        paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{BundleEntry, bundle_files, content_id};

    #[test]
    fn a_scan_gives_the_id_and_the_paths() {
        let files = vec![
            (
                "b/x.txt".to_string(),
                BundleEntry::File {
                    data: vec![1; 3_000],
                    exec: false,
                },
            ),
            (
                "a".to_string(),
                BundleEntry::Symlink {
                    target: "b/x.txt".into(),
                },
            ),
        ];
        let b = bundle_files(&files).unwrap();
        let s = scan(&b.out[..]).unwrap();
        assert_eq!(s.id, b.id);
        assert_eq!(s.id, content_id(&b.out[..]).unwrap());
        assert_eq!(s.paths.unwrap(), vec!["a", "b/x.txt"]);
    }

    #[test]
    fn bytes_that_are_no_tar_still_hash() {
        let junk = zstd::encode_all(&b"not a tar at all"[..], 3).unwrap();
        let s = scan(&junk[..]).unwrap();
        assert_eq!(s.id, content_id(&junk[..]).unwrap());
        assert!(s.paths.is_none());
        assert!(scan(&b"not zstd"[..]).is_err());
    }
}
