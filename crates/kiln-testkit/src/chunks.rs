//! Test chunks: bundles built by kiln-chunk's writer (the one sync uses, so ids and bytes are
//! what sync stores), with their manifest entries, ready to put into a store.

use std::collections::BTreeMap;

use bytes::Bytes;
use kiln_chunk::bundle::{BundleEntry, bundle_files};
use kiln_chunk::key::object_key;
use kiln_chunk::store_error::to_error;
use kiln_core::Result;
use kiln_core::ids::ChunkKind;
use kiln_core::manifest::ManifestEntry;
use object_store::ObjectStore;

/// Collects a chunk's files and symlinks, then bundles them with the real writer. Symlink
/// targets are not checked (tests use this to build hostile bundles: the loader must
/// refuse them).
#[derive(Debug, Clone, Default)]
pub struct BundleBuilder {
    items: BTreeMap<String, BundleEntry>,
}

/// A built bundle and its manifest entry.
#[derive(Debug, Clone)]
pub struct TestChunk {
    /// The manifest entry (id and size filled in).
    pub entry: ManifestEntry,
    /// The compressed bundle.
    pub bundle: Bytes,
    /// Its table of contents, as sync stores it in the catalog.
    pub toc: kiln_core::toc::Toc,
}

impl BundleBuilder {
    /// An empty bundle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a regular file.
    pub fn file(self, path: &str, data: impl Into<Vec<u8>>) -> Self {
        self.add(path, data.into(), false)
    }

    /// Adds an executable file.
    pub fn exec(self, path: &str, data: impl Into<Vec<u8>>) -> Self {
        self.add(path, data.into(), true)
    }

    fn add(mut self, path: &str, data: Vec<u8>, exec: bool) -> Self {
        self.items
            .insert(path.into(), BundleEntry::File { data, exec });
        self
    }

    /// Adds a symlink (not checked).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.items.insert(
            path.into(),
            BundleEntry::Symlink {
                target: target.into(),
            },
        );
        self
    }

    /// Builds the chunk `kind:name` mounted at `root` ("" for a gathered chunk).
    pub fn build(&self, kind: ChunkKind, name: &str, root: &str) -> TestChunk {
        let files: Vec<(String, BundleEntry)> = self
            .items
            .iter()
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect();
        // In-memory writes cannot fail; a path tar cannot hold is a test bug.
        let done = bundle_files(&files).expect("bundle a test chunk");
        TestChunk {
            entry: ManifestEntry {
                kind,
                name: name.into(),
                id: done.id,
                size: done.size,
                root: root.into(),
            },
            bundle: done.out.into(),
            toc: done.toc,
        }
    }
}

impl TestChunk {
    /// Uploads the bundle under its object key.
    pub async fn put(&self, store: &dyn ObjectStore) -> Result<()> {
        let key = object_key(&self.entry.id);
        store
            .put(&key, self.bundle.clone().into())
            .await
            .map_err(|e| to_error(&format!("writing {key}"), e))?;
        Ok(())
    }
}

/// A question chunk of `files` files of `file_size` bytes each (contents vary with `seed`).
pub fn question_chunk(qid: &str, files: usize, file_size: usize, seed: u64) -> TestChunk {
    let mut b = BundleBuilder::new().file("info.json", format!("{{\"uuid\":\"{seed}\"}}"));
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in 0..files.saturating_sub(1) {
        let data: Vec<u8> = (0..file_size)
            .map(|_| {
                // xorshift: cheap bytes that compress about as well as real content does not
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b"abcdefghijklmnopqrstuvwxyz <>/\n"[(x % 31) as usize]
            })
            .collect();
        b = b.file(&format!("file{i}.html"), data);
    }
    b.build(ChunkKind::Question, qid, &format!("questions/{qid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These ids were those of kiln-load's own test builder before it used the real writer:
    /// tests that know a chunk by its id keep knowing it.
    #[test]
    fn test_chunks_keep_their_ids() {
        let b = BundleBuilder::new()
            .file("info.json", "{\"uuid\":\"1\"}")
            .exec("run.sh", "#!/bin/sh\necho hi\n")
            .file("a/real.txt", "real")
            .symlink("alias.txt", "a/real.txt")
            .file(&format!("{}/deep.txt", "d".repeat(150)), "deep")
            .build(ChunkKind::Question, "q", "questions/q");
        assert_eq!(
            (b.entry.id.to_hex().as_str(), b.entry.size),
            (
                "442b6c471cb299ca33c764967697758e7691bb4470fe7e1673156945c9bbb3b2",
                6656
            )
        );
        for ((q, n, s, seed), id, size) in [
            (
                ("q1", 3, 1000, 1),
                "67ba407a014ad717d20ae458d0e788333a1ed6de0bea159b69fa22e091637a8a",
                5120,
            ),
            (
                ("q1", 5, 10_000, 1),
                "522f7236b08802cda129ed348e3e13a5452ce3273938400dd86b586a970aa7a4",
                45056,
            ),
            (
                ("t/q9", 20, 300_000, 7),
                "0762e6aac4038904dbd23275ab644b90c90f27fe71d1d5660023588b95755d60",
                5712384,
            ),
        ] {
            let c = question_chunk(q, n, s, seed);
            assert_eq!((c.entry.id.to_hex().as_str(), c.entry.size), (id, size));
            assert_eq!(
                kiln_chunk::bundle::content_id(&c.bundle[..]).unwrap(),
                c.entry.id
            );
        }
    }
}
