//! The bundle format: a deterministic tar of a chunk's files, compressed with zstd.
//!
//! A bundle's tar holds regular files and symlinks only, in ascending byte order of their
//! paths, with mtime 0, uid/gid 0, empty user and group names, and mode 0644 or 0755. Its chunk
//! id is the BLAKE3 of the uncompressed tar, so the same files always give the same id. The
//! writer streams: the tar is hashed and compressed as it is written and never held whole.
//!
//! The writer does not judge symlink targets: that is [`crate::entry`]'s rule, which sync
//! applies before it writes (and tests may skip, to build hostile bundles). Readers: sync
//! reads a previous bundle back with [`read_bundle`], `kiln verify` checks an object with
//! [`content_id`], and kiln-load unpacks with [`crate::unpack::unpack_verified`].

use std::io::{self, Write};

use kiln_core::ids::ChunkId;
use kiln_core::toc::{Toc, TocEntry, TocKind};

/// The zstd level of stored bundles, the only one. Changing it changes the stored bytes (not
/// the ids, which hash the uncompressed tar) and sync's basis fingerprint, so every course
/// would be re-bundled once.
pub const ZSTD_LEVEL: i32 = 3;

/// What one entry of a bundle is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleEntry {
    /// A regular file; `exec` gives mode 0755 instead of 0644.
    File {
        /// The file's bytes.
        data: Vec<u8>,
        /// Whether the file is executable.
        exec: bool,
    },
    /// A symbolic link to `target` (relative, inside the chunk).
    Symlink {
        /// The link's target as stored.
        target: String,
    },
}

/// A finished bundle: its id, the uncompressed size, its table of contents, and the
/// compressed output.
#[derive(Debug)]
pub struct Finished<W> {
    /// BLAKE3 of the uncompressed tar.
    pub id: ChunkId,
    /// Size of the uncompressed tar in bytes.
    pub size: u64,
    /// Every entry's path, size, mode and link target, in the bundle's order.
    pub toc: Toc,
    /// The writer the compressed bundle went to.
    pub out: W,
}

/// The table of contents of a bundle's entries (as [`read_bundle`] gives them), sorted by
/// path as the bundle holds them.
pub fn toc_of(entries: &[(String, BundleEntry)]) -> Toc {
    let mut toc: Vec<TocEntry> = entries.iter().map(|(p, e)| toc_entry(p, e)).collect();
    toc.sort_by(|a, b| a.path.cmp(&b.path));
    Toc { entries: toc }
}

fn toc_entry(path: &str, entry: &BundleEntry) -> TocEntry {
    match entry {
        BundleEntry::File { data, exec } => TocEntry {
            path: path.to_string(),
            size: data.len() as u64,
            kind: TocKind::File { exec: *exec },
        },
        BundleEntry::Symlink { target } => TocEntry {
            path: path.to_string(),
            size: target.len() as u64,
            kind: TocKind::Symlink {
                target: target.clone(),
            },
        },
    }
}

/// Bundles up to this size are compressed in one call with the thread's reusable zstd
/// context (zstd then sizes its tables to the input, which makes the many small question
/// bundles of a course much cheaper); larger ones are compressed as a stream.
const ONE_SHOT_BYTES: usize = 4 << 20;

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress_one_shot(data: &[u8]) -> io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?);
        }
        match c.as_mut() {
            Some(c) => c.compress(data),
            None => unreachable!("set just above"),
        }
    })
}

/// Where the uncompressed tar goes: a buffer while it is small, then a zstd stream.
enum Sink<W: Write> {
    Buffer { buf: Vec<u8>, out: Option<W> },
    Stream(zstd::Encoder<'static, W>),
}

/// Hashes and counts the uncompressed tar on its way to the compressor.
struct Tee<W: Write> {
    hasher: blake3::Hasher,
    size: u64,
    sink: Sink<W>,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Sink::Buffer { buf: held, out } = &mut self.sink
            && held.len() + buf.len() > ONE_SHOT_BYTES
        {
            let out = out
                .take()
                .ok_or_else(|| io::Error::other("bundle output already taken"))?;
            let mut enc = zstd::Encoder::new(out, ZSTD_LEVEL)?;
            enc.write_all(held)?;
            self.sink = Sink::Stream(enc);
        }
        match &mut self.sink {
            Sink::Buffer { buf: held, .. } => held.extend_from_slice(buf),
            Sink::Stream(enc) => enc.write_all(buf)?,
        }
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Buffer { .. } => Ok(()),
            Sink::Stream(enc) => enc.flush(),
        }
    }
}

impl<W: Write> Tee<W> {
    fn finish(self) -> io::Result<W> {
        match self.sink {
            Sink::Buffer { buf, out } => {
                let mut out = out.ok_or_else(|| io::Error::other("bundle output already taken"))?;
                out.write_all(&compress_one_shot(&buf)?)?;
                Ok(out)
            }
            Sink::Stream(enc) => enc.finish(),
        }
    }
}

/// Writes one bundle, entry by entry, in ascending path order.
pub struct BundleWriter<W: Write> {
    tar: tar::Builder<Tee<W>>,
    last: Option<String>,
    toc: Vec<TocEntry>,
}

impl<W: Write> BundleWriter<W> {
    /// A writer whose compressed output goes to `out`.
    pub fn new(out: W) -> io::Result<Self> {
        let tee = Tee {
            hasher: blake3::Hasher::new(),
            size: 0,
            sink: Sink::Buffer {
                buf: Vec::new(),
                out: Some(out),
            },
        };
        let mut tar = tar::Builder::new(tee);
        tar.follow_symlinks(false);
        Ok(BundleWriter {
            tar,
            last: None,
            toc: Vec::new(),
        })
    }

    fn check_order(&mut self, path: &str) -> io::Result<()> {
        if let Some(last) = &self.last
            && last.as_str() >= path
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bundle paths out of order: {path:?} after {last:?}"),
            ));
        }
        self.last = Some(path.to_string());
        Ok(())
    }

    fn header(mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    /// Appends a regular file; paths must come in ascending byte order.
    pub fn add_file(&mut self, path: &str, exec: bool, data: &[u8]) -> io::Result<()> {
        self.check_order(path)?;
        let mut h = Self::header(if exec { 0o755 } else { 0o644 });
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        self.tar.append_data(&mut h, path, data)?;
        self.toc.push(TocEntry {
            path: path.to_string(),
            size: data.len() as u64,
            kind: TocKind::File { exec },
        });
        Ok(())
    }

    /// Appends a symlink; paths must come in ascending byte order.
    pub fn add_symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.check_order(path)?;
        let mut h = Self::header(0o777);
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        self.tar.append_link(&mut h, path, target)?;
        self.toc.push(TocEntry {
            path: path.to_string(),
            size: target.len() as u64,
            kind: TocKind::Symlink {
                target: target.to_string(),
            },
        });
        Ok(())
    }

    /// Appends an entry of either kind.
    pub fn add(&mut self, path: &str, entry: &BundleEntry) -> io::Result<()> {
        match entry {
            BundleEntry::File { data, exec } => self.add_file(path, *exec, data),
            BundleEntry::Symlink { target } => self.add_symlink(path, target),
        }
    }

    /// Ends the tar and the zstd frame; returns the id, the size and the output.
    pub fn finish(self) -> io::Result<Finished<W>> {
        let tee = self.tar.into_inner()?;
        let id = ChunkId(*tee.hasher.finalize().as_bytes());
        let size = tee.size;
        let out = tee.finish()?;
        Ok(Finished {
            id,
            size,
            toc: Toc { entries: self.toc },
            out,
        })
    }
}

/// Bundles `files` (any order) into memory: the id, the uncompressed size and the compressed
/// bytes, exactly as sync stores them.
pub fn bundle_files(files: &[(String, BundleEntry)]) -> io::Result<Finished<Vec<u8>>> {
    let mut sorted: Vec<&(String, BundleEntry)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut w = BundleWriter::new(Vec::new())?;
    for (path, entry) in sorted {
        w.add(path, entry)?;
    }
    w.finish()
}

/// The chunk id of a compressed bundle: BLAKE3 of its decompressed bytes, streamed (the
/// content is never held whole). An error means the bytes are not zstd.
pub fn content_id(compressed: impl io::Read) -> io::Result<ChunkId> {
    let mut decoder = zstd::Decoder::new(compressed)?;
    let mut hasher = blake3::Hasher::new();
    io::copy(&mut decoder, &mut hasher)?;
    Ok(ChunkId(*hasher.finalize().as_bytes()))
}

/// Reads a compressed bundle back into its entries, checking that its BLAKE3 is `expected`.
pub fn read_bundle(compressed: &[u8], expected: ChunkId) -> io::Result<Vec<(String, BundleEntry)>> {
    let tar_bytes = zstd::decode_all(compressed)?;
    let actual = ChunkId(*blake3::hash(&tar_bytes).as_bytes());
    if actual != expected {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bundle {expected} has the content of {actual}"),
        ));
    }
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            let target = entry
                .link_name()?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((path, BundleEntry::Symlink { target }));
        } else {
            let exec = entry.header().mode()? & 0o111 != 0;
            let mut data = Vec::with_capacity(entry.size() as usize);
            io::Read::read_to_end(&mut entry, &mut data)?;
            out.push((path, BundleEntry::File { data, exec }));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(s: &str) -> BundleEntry {
        BundleEntry::File {
            data: s.as_bytes().to_vec(),
            exec: false,
        }
    }

    #[test]
    fn same_files_same_id_in_any_order() {
        let a = vec![
            ("b.txt".to_string(), file("b")),
            ("a.txt".to_string(), file("a")),
        ];
        let mut b = a.clone();
        b.reverse();
        let (x, y) = (bundle_files(&a).unwrap(), bundle_files(&b).unwrap());
        assert_eq!(x.id, y.id);
        assert_eq!(x.out, y.out);
        let back = read_bundle(&x.out, x.id).unwrap();
        assert_eq!(back[0].0, "a.txt");
        assert_eq!(back[1].1, file("b"));
    }

    #[test]
    fn the_writer_s_table_of_contents_is_the_one_read_back() {
        let files = vec![
            (
                "z/run.sh".to_string(),
                BundleEntry::File {
                    data: b"#!/bin/sh".to_vec(),
                    exec: true,
                },
            ),
            ("a.html".to_string(), file("<p>hi</p>")),
            (
                "link.html".to_string(),
                BundleEntry::Symlink {
                    target: "a.html".into(),
                },
            ),
        ];
        let done = bundle_files(&files).unwrap();
        let paths: Vec<&str> = done.toc.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["a.html", "link.html", "z/run.sh"],
            "the bundle's order"
        );
        assert_eq!(done.toc.entries[0].size, 9);
        assert_eq!(done.toc.entries[1].mode(), 0o120_777);
        assert_eq!(
            done.toc.entries[1].size, 6,
            "a link's size is its target's length"
        );
        assert_eq!(done.toc.entries[2].mode(), 0o100_755);
        assert_eq!(toc_of(&read_bundle(&done.out, done.id).unwrap()), done.toc);
    }

    #[test]
    fn mode_and_content_change_the_id() {
        let plain = bundle_files(&[("run.sh".into(), file("x"))]).unwrap();
        let exec = bundle_files(&[(
            "run.sh".into(),
            BundleEntry::File {
                data: b"x".to_vec(),
                exec: true,
            },
        )])
        .unwrap();
        assert_ne!(plain.id, exec.id);
        assert!(
            read_bundle(&plain.out, exec.id).is_err(),
            "a wrong id is detected"
        );
    }

    #[test]
    fn large_bundles_stream_and_read_back() {
        let mut big = vec![0u8; ONE_SHOT_BYTES + 10_000];
        for (i, b) in big.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let files = vec![(
            "big.bin".to_string(),
            BundleEntry::File {
                data: big,
                exec: false,
            },
        )];
        let b = bundle_files(&files).unwrap();
        assert_eq!(read_bundle(&b.out, b.id).unwrap(), files);
    }

    /// The format is persisted: these ids and bytes were produced before kiln-chunk existed
    /// (by kiln-sync's writer, and the same ids by kiln-load's test builder) and must never
    /// change.
    #[test]
    fn known_content_keeps_its_id_and_bytes() {
        let f = |s: &[u8], exec| BundleEntry::File {
            data: s.to_vec(),
            exec,
        };
        let small = vec![
            ("info.json".to_string(), f(b"{\"uuid\":\"1\"}", false)),
            ("run.sh".to_string(), f(b"#!/bin/sh\necho hi\n", true)),
            ("a/real.txt".to_string(), f(b"real", false)),
            (
                "alias.txt".to_string(),
                BundleEntry::Symlink {
                    target: "a/real.txt".into(),
                },
            ),
            (format!("{}/deep.txt", "d".repeat(150)), f(b"deep", false)),
        ];
        let mut big = vec![0u8; ONE_SHOT_BYTES + 10_000];
        for (i, b) in big.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let large = vec![
            ("big.bin".to_string(), f(&big, false)),
            ("x.txt".to_string(), f(b"x", true)),
        ];
        for (files, id, size, bytes) in [
            (
                small,
                "442b6c471cb299ca33c764967697758e7691bb4470fe7e1673156945c9bbb3b2",
                6656,
                "16c0853be772120330e6f6c70b87c71bf440142bb68272df5d0d2a880691eac7",
            ),
            (
                large,
                "61562db2fdaca79b879da4f716981204c521eaea38563ad88dabc58c1b25ef70",
                4207104,
                "1d1a4342347681fbc012930f1a83263f274f481fe984c75ff13c2f769aeb9b8a",
            ),
            (
                vec![],
                "d6fd9de5bccf223f523b316c9cd1cf9a9d87ea42473d68e011dad13f09bf8917",
                1024,
                "fe53c1f8799e5222339e40d3d8049b9bf070afbbcfee53ee040cb0e4c670b02e",
            ),
        ] {
            let b = bundle_files(&files).unwrap();
            assert_eq!(b.id.to_hex(), id);
            assert_eq!(b.size, size);
            assert_eq!(
                blake3::hash(&b.out).to_hex().as_str(),
                bytes,
                "bundle bytes of {id}"
            );
            assert_eq!(content_id(&b.out[..]).unwrap(), b.id);
        }
    }

    #[test]
    fn content_id_refuses_what_is_not_zstd() {
        assert!(content_id(&b"not a bundle"[..]).is_err());
    }

    #[test]
    fn out_of_order_paths_are_refused() {
        let mut w = BundleWriter::new(Vec::new()).unwrap();
        w.add_file("b", false, b"").unwrap();
        assert!(w.add_file("a", false, b"").is_err());
    }

    #[test]
    fn long_paths_and_symlinks_round_trip() {
        let long = format!("{}/file.txt", "d".repeat(150));
        let files = vec![
            (long.clone(), file("deep")),
            (
                "link".to_string(),
                BundleEntry::Symlink {
                    target: "x/y".into(),
                },
            ),
        ];
        let b = bundle_files(&files).unwrap();
        let back = read_bundle(&b.out, b.id).unwrap();
        assert_eq!(back[0].0, long);
        assert_eq!(back[1].1, files[1].1);
    }
}
