//! Unpacking a bundle into a directory while checking it against its id (blocking code).
//!
//! The stream is read once: store bytes -> zstd decoder -> BLAKE3 hasher -> tar reader ->
//! files in the new directory. Only entries a sync can produce are accepted: regular files,
//! directories and symlinks, each allowed by [`crate::entry`]'s rule. Files are created
//! read-only (0444, or 0555 when executable); the caller seals the directories.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kiln_core::ids::ChunkId;

use crate::entry::Entries;

/// Why an unpack failed, which decides what the caller does next.
#[derive(Debug)]
pub enum UnpackError {
    /// Reading the source failed (the store's stream broke): the bytes may be fine, so
    /// retrying may succeed.
    Source(io::Error),
    /// The bytes are not the chunk: a hash mismatch, bad zstd or tar, more bytes than
    /// announced, or an entry the rule refuses.
    Corrupt(String),
    /// Writing the directory failed (a full disk, say).
    Local(io::Error),
}

impl fmt::Display for UnpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnpackError::Source(e) => write!(f, "reading the bundle: {e}"),
            UnpackError::Corrupt(why) => write!(f, "corrupt bundle: {why}"),
            UnpackError::Local(e) => write!(f, "writing the chunk: {e}"),
        }
    }
}

impl std::error::Error for UnpackError {}

/// What an unpack produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    /// Compressed bytes read from the source.
    pub bytes_in: u64,
    /// Bytes of files written.
    pub size: u64,
}

/// Counts the bytes read from the source and remembers whether the source failed, so that
/// a read error further down can be told apart from corrupt data.
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

/// Unpacks the bundle read from `source` into the new directory `dir`, and checks that the
/// uncompressed tar hashes to `expected` (and holds at most about `size` bytes, the size
/// the manifest gives). On error, `dir` may hold part of the chunk: remove it.
pub fn unpack_verified(
    source: impl Read,
    expected: &ChunkId,
    size: u64,
    dir: &Path,
) -> Result<Unpacked, UnpackError> {
    let bytes = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let source = Source {
        inner: source,
        bytes: bytes.clone(),
        failed: failed.clone(),
    };
    let read_err = |e: io::Error| {
        if failed.load(Ordering::Relaxed) {
            UnpackError::Source(e)
        } else {
            UnpackError::Corrupt(e.to_string())
        }
    };
    let local = UnpackError::Local;
    let corrupt = |why: String| UnpackError::Corrupt(why);

    let decoder = zstd::stream::read::Decoder::new(source).map_err(read_err)?;
    let hashing = Hashing {
        inner: decoder,
        hasher: blake3::Hasher::new(),
        len: 0,
        // The manifest's size is the tar's size; twice that plus 1 MiB is generous slack
        // against a miscount while still stopping a decompression bomb early.
        limit: size.saturating_mul(2).saturating_add(1 << 20),
    };
    fs::create_dir(dir).map_err(local)?;
    let mut archive = tar::Archive::new(hashing);
    let mut written = 0u64;
    let mut entries = Entries::new();
    let mut buf = vec![0u8; 64 * 1024];
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = entry.path_bytes();
        let rel = std::str::from_utf8(&raw)
            .map_err(|_| corrupt("an entry path is not UTF-8".into()))?
            .trim_end_matches('/')
            .to_string();
        let dest = dir.join(&rel);
        let kind = entry.header().entry_type();
        let exists = |e: io::Error| match e.kind() {
            io::ErrorKind::AlreadyExists => corrupt(format!("duplicate entry {rel:?}")),
            _ => local(e),
        };
        if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| corrupt(format!("symlink {rel:?} has no target")))?;
            let target = std::str::from_utf8(&target)
                .map_err(|_| corrupt(format!("symlink {rel:?} target is not UTF-8")))?
                .to_string();
            entries
                .symlink(&rel, &target)
                .map_err(|r| corrupt(r.to_string()))?;
            make_parent(&dest)?;
            std::os::unix::fs::symlink(&target, &dest).map_err(exists)?;
            continue;
        }
        entries.entry(&rel).map_err(|r| corrupt(r.to_string()))?;
        if kind.is_dir() {
            fs::create_dir_all(&dest).map_err(local)?;
            continue;
        }
        if !kind.is_file() {
            return Err(corrupt(format!(
                "entry {rel:?} has an unsupported type {kind:?}"
            )));
        }
        make_parent(&dest)?;
        let exec = entry.header().mode().map_err(read_err)? & 0o111 != 0;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if exec { 0o555 } else { 0o444 })
            .open(&dest)
            .map_err(exists)?;
        loop {
            let n = entry.read(&mut buf).map_err(read_err)?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(local)?;
            written += n as u64;
        }
    }
    // The tar reader stops at the end-of-archive marker; the hash covers every byte.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(read_err)?;
    let got = rest.hasher.finalize();
    if got.as_bytes() != &expected.0 {
        return Err(corrupt(format!(
            "content hashes to {}, not to its id",
            got.to_hex()
        )));
    }
    // Each link was checked on its own; now where each really lands, through the others.
    entries.finish().map_err(|r| corrupt(r.to_string()))?;
    Ok(Unpacked {
        bytes_in: bytes.load(Ordering::Relaxed),
        size: written,
    })
}

fn make_parent(dest: &Path) -> Result<(), UnpackError> {
    match dest.parent() {
        Some(parent) => fs::create_dir_all(parent).map_err(UnpackError::Local),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{BundleEntry, bundle_files};

    fn file(s: &str) -> BundleEntry {
        BundleEntry::File {
            data: s.as_bytes().to_vec(),
            exec: false,
        }
    }

    fn link(t: &str) -> BundleEntry {
        BundleEntry::Symlink { target: t.into() }
    }

    fn unpack(files: &[(&str, BundleEntry)]) -> (tempfile::TempDir, Result<Unpacked, UnpackError>) {
        let files: Vec<(String, BundleEntry)> = files
            .iter()
            .map(|(p, e)| (p.to_string(), e.clone()))
            .collect();
        let b = bundle_files(&files).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let r = unpack_verified(&b.out[..], &b.id, b.size, &tmp.path().join("c"));
        (tmp, r)
    }

    #[test]
    fn unpacks_files_modes_and_links() {
        let (tmp, r) = unpack(&[
            ("a/real.txt", file("real")),
            ("alias.txt", link("a/real.txt")),
            (
                "run.sh",
                BundleEntry::File {
                    data: b"#!/bin/sh\n".to_vec(),
                    exec: true,
                },
            ),
        ]);
        let u = r.unwrap();
        assert_eq!(u.size, 4 + 10);
        let dir = tmp.path().join("c");
        assert_eq!(fs::read_to_string(dir.join("alias.txt")).unwrap(), "real");
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("a/real.txt"), mode("run.sh")), (0o444, 0o555));
    }

    #[test]
    fn refuses_what_the_rule_refuses() {
        for (files, why) in [
            (
                vec![("passwd", link("../../etc/passwd"))],
                "points outside the chunk",
            ),
            (vec![("a", link("b")), ("b", link("a"))], "loop"),
            (
                vec![("here", link(".")), ("up", link("here/.."))],
                "points outside the chunk",
            ),
            (vec![("x", link("a\\b"))], "backslash"),
            (
                vec![("d", link("sub")), ("d/x", file("x"))],
                "goes through the symlink d",
            ),
        ] {
            let (_tmp, r) = unpack(&files);
            match r {
                Err(UnpackError::Corrupt(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{files:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_wrong_id_or_broken_bytes_are_corrupt() {
        let b = bundle_files(&[("a".to_string(), file("a"))]).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let wrong = ChunkId([7; 32]);
        let r = unpack_verified(&b.out[..], &wrong, b.size, &tmp.path().join("w"));
        assert!(matches!(r, Err(UnpackError::Corrupt(m)) if m.contains("hashes to")));
        let r = unpack_verified(&b"garbage"[..], &b.id, b.size, &tmp.path().join("g"));
        assert!(matches!(r, Err(UnpackError::Corrupt(_))), "{r:?}");
    }

    #[test]
    fn a_failing_source_is_not_corruption() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("connection reset"))
            }
        }
        let tmp = tempfile::tempdir().unwrap();
        let r = unpack_verified(Broken, &ChunkId([0; 32]), 10, &tmp.path().join("c"));
        assert!(matches!(r, Err(UnpackError::Source(_))), "{r:?}");
    }
}
