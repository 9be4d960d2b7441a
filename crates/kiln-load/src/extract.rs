//! Unpacking a bundle into staging while checking it against its id (blocking code).
//!
//! The stream is read once: store bytes -> zstd decoder -> BLAKE3 hasher -> tar reader ->
//! files in the staging directory. Only entries a sync can produce are accepted: regular
//! files, directories, and relative symlinks that stay inside the chunk.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kiln_core::Error;
use kiln_core::ids::ChunkId;
use kiln_core::manifest::normalize_path;

/// Why an attempt to fetch a chunk failed, which decides what happens next.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The store failed; retry with backoff.
    Transient(Error),
    /// The bytes are not the chunk (hash mismatch, bad zstd or tar, unsafe entry): delete
    /// and fetch once more.
    Corrupt(String),
    /// Retrying cannot help (not found, local disk error).
    Final(Error),
}

/// What an unpack produced.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unpacked {
    /// Compressed bytes read from the store.
    pub(crate) bytes_in: u64,
    /// Bytes of files written.
    pub(crate) size: u64,
}

/// Counts the bytes read from the store and remembers whether the store failed, so that a
/// read error further down can be told apart from corrupt data.
struct Source<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.bytes.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                self.failed.store(true, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

/// Hashes everything read through it and refuses to read past `limit` bytes (a corrupt
/// object must not fill the disk before its hash is checked).
struct Hashing<R> {
    inner: R,
    hasher: blake3::Hasher,
    len: u64,
    limit: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        if self.len > self.limit {
            return Err(io::Error::other("bundle is larger than the manifest says"));
        }
        Ok(n)
    }
}

/// Unpacks the zstd-compressed tar read from `source` into the new directory `staging`,
/// and checks that the uncompressed tar hashes to `expected` (at most `size` bytes).
pub(crate) fn unpack_verified(
    source: impl Read,
    expected: &ChunkId,
    size: u64,
    staging: &Path,
) -> Result<Unpacked, Fault> {
    let bytes = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let source = Source {
        inner: source,
        bytes: bytes.clone(),
        failed: failed.clone(),
    };
    let read_fault = |e: io::Error| {
        if failed.load(Ordering::Relaxed) {
            Fault::Transient(Error::Unavailable {
                what: "object store".into(),
                source: Box::new(e),
            })
        } else {
            Fault::Corrupt(e.to_string())
        }
    };
    let local = |e: io::Error| Fault::Final(Error::backend("kiln-load", e));

    let decoder = zstd::stream::read::Decoder::new(source).map_err(read_fault)?;
    let hashing = Hashing {
        inner: decoder,
        hasher: blake3::Hasher::new(),
        len: 0,
        // The manifest's size is the tar's size; twice that plus 1 MiB is generous slack
        // against a miscount while still stopping a decompression bomb early.
        limit: size.saturating_mul(2).saturating_add(1 << 20),
    };
    fs::create_dir(staging).map_err(local)?;
    let mut archive = tar::Archive::new(hashing);
    let mut written = 0u64;
    let mut symlinks: HashSet<String> = HashSet::new();
    let mut buf = vec![0u8; 64 * 1024];
    for entry in archive.entries().map_err(read_fault)? {
        let mut entry = entry.map_err(read_fault)?;
        let raw = entry.path_bytes();
        let name = std::str::from_utf8(&raw)
            .map_err(|_| Fault::Corrupt("an entry path is not UTF-8".into()))?
            .trim_end_matches('/')
            .to_string();
        let rel = normalize_path(&name).map_err(|e| Fault::Corrupt(e.to_string()))?;
        if ancestors(&rel).any(|a| symlinks.contains(a)) {
            return Err(Fault::Corrupt(format!(
                "entry {rel:?} goes through a symlink"
            )));
        }
        let dest = staging.join(&rel);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            fs::create_dir_all(&dest).map_err(local)?;
            continue;
        }
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(local)?;
        }
        if kind.is_file() {
            let exec = entry.header().mode().map_err(read_fault)? & 0o111 != 0;
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(if exec { 0o555 } else { 0o444 })
                .open(&dest)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists => {
                        Fault::Corrupt(format!("duplicate entry {rel:?}"))
                    }
                    _ => local(e),
                })?;
            loop {
                let n = entry.read(&mut buf).map_err(read_fault)?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n]).map_err(local)?;
                written += n as u64;
            }
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| Fault::Corrupt(format!("symlink {rel:?} has no target")))?;
            let target = std::str::from_utf8(&target)
                .map_err(|_| Fault::Corrupt(format!("symlink {rel:?} target is not UTF-8")))?
                .to_string();
            if !link_stays_inside(&rel, &target) {
                return Err(Fault::Corrupt(format!(
                    "symlink {rel:?} points outside the chunk ({target:?})"
                )));
            }
            std::os::unix::fs::symlink(&target, &dest).map_err(local)?;
            symlinks.insert(rel);
        } else {
            return Err(Fault::Corrupt(format!(
                "entry {rel:?} has an unsupported type {kind:?}"
            )));
        }
    }
    // The tar reader stops at the end-of-archive marker; the hash covers every byte.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(read_fault)?;
    let got = rest.hasher.finalize();
    if got.as_bytes() != &expected.0 {
        return Err(Fault::Corrupt(format!(
            "content hashes to {}, not to its id",
            got.to_hex()
        )));
    }
    // Lexical checks passed; also check where each symlink really lands.
    for rel in &symlinks {
        if let Ok(real) = fs::canonicalize(staging.join(rel))
            && !real.starts_with(staging)
        {
            return Err(Fault::Corrupt(format!(
                "symlink {rel:?} points outside the chunk"
            )));
        }
    }
    Ok(Unpacked {
        bytes_in: bytes.load(Ordering::Relaxed),
        size: written,
    })
}

/// The proper ancestors of a normalised relative path: `a/b/c` gives `a`, `a/b`.
fn ancestors(rel: &str) -> impl Iterator<Item = &str> {
    rel.match_indices('/').map(move |(i, _)| &rel[..i])
}

/// Whether a relative symlink at `link` (chunk-relative) pointing to `target` resolves,
/// lexically, inside the chunk.
pub(crate) fn link_stays_inside(link: &str, target: &str) -> bool {
    if target.is_empty()
        || target.starts_with('/')
        || target.chars().any(|c| c == '\\' || c.is_control())
    {
        return false;
    }
    let mut stack: Vec<&str> = link.split('/').collect();
    stack.pop();
    for seg in target.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if stack.pop().is_none() {
                    return false;
                }
            }
            s => stack.push(s),
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_targets_must_stay_inside() {
        assert!(link_stays_inside("a/b", "c"));
        assert!(link_stays_inside("a/b", "../c"));
        assert!(!link_stays_inside("a/b", "../../c"));
        assert!(!link_stays_inside("a", "/etc/passwd"));
        assert!(!link_stays_inside("a", ".."));
        assert!(link_stays_inside("a/b/c", "../../x/./y"));
    }
}
