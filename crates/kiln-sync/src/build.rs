//! Building bundles on a small pool of threads: one job per chunk, each read from the source,
//! checked (size limit, paths and symlinks, JSON), tarred, hashed and compressed in one
//! streaming pass. Paths and symlinks are checked by [`kiln_chunk::entry`]'s rule, the one
//! the loader applies when it unpacks, so that a chunk it would refuse is refused here with
//! the file's name; a gathered chunk's links must also point to a member of the chunk.

use std::collections::{HashSet, VecDeque};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kiln_chunk::bundle::{BundleEntry, BundleWriter, read_bundle};
use kiln_chunk::entry::{Entries, Refused, resolve_lexical};
use kiln_core::ids::{ChunkId, ChunkKind};
use kiln_core::{Error, Result};

use crate::source::{NodeKind, Reader, Source, join};
use crate::walk::{DirChunk, Member, list_tree};

/// Compressed bundles larger than this go to a temporary file instead of memory, which keeps
/// the resident set bounded whatever the chunk sizes.
const SPILL_BYTES: usize = 8 << 20;

/// One chunk to bundle.
#[derive(Debug)]
pub(crate) enum Job {
    /// A whole directory.
    Dir(DirChunk),
    /// A gathered chunk from its full member list.
    Gathered {
        /// The chunk kind.
        kind: ChunkKind,
        /// Every member, sorted by path.
        members: Vec<Member>,
        /// The memo key of this member list.
        memo_key: Option<String>,
    },
    /// A gathered chunk made from the previous version's bundle: entries under `remove` are
    /// dropped (they were re-walked), `add` are read from the source.
    Patch {
        /// The chunk kind.
        kind: ChunkKind,
        /// The previous bundle's id.
        old_id: ChunkId,
        /// The previous bundle, compressed.
        old: bytes::Bytes,
        /// Paths of the previous bundle to drop.
        remove: HashSet<String>,
        /// Members to add.
        add: Vec<Member>,
    },
}

/// Where a compressed bundle is.
#[derive(Debug)]
pub(crate) enum Spilled {
    /// In memory.
    Mem(Vec<u8>),
    /// In an unlinked temporary file of this length, positioned anywhere.
    File(std::fs::File, u64),
}

/// A bundled chunk.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) kind: ChunkKind,
    pub(crate) name: String,
    pub(crate) root: String,
    pub(crate) memo_key: Option<String>,
    pub(crate) id: ChunkId,
    pub(crate) size: u64,
    /// How many files and symlinks the bundle holds.
    pub(crate) files: usize,
    /// Its table of contents.
    pub(crate) toc: kiln_core::toc::Toc,
    pub(crate) data: Spilled,
}

/// A writer that keeps bytes in memory until [`SPILL_BYTES`], then moves to a temp file.
struct SpillWriter {
    mem: Vec<u8>,
    file: Option<std::fs::File>,
    len: u64,
}

impl Write for SpillWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.file.is_none() && self.mem.len() + buf.len() > SPILL_BYTES {
            let mut f = tempfile::tempfile()?;
            f.write_all(&self.mem)?;
            self.mem = Vec::new();
            self.file = Some(f);
        }
        match &mut self.file {
            Some(f) => f.write_all(buf)?,
            None => self.mem.extend_from_slice(buf),
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl SpillWriter {
    fn into_spilled(self) -> Spilled {
        match self.file {
            Some(f) => Spilled::File(f, self.len),
            None => Spilled::Mem(self.mem),
        }
    }
}

fn io_err(what: &str, e: io::Error) -> Error {
    Error::backend("bundle", format!("{what}: {e}"))
}

fn new_writer(what: &str) -> Result<BundleWriter<SpillWriter>> {
    BundleWriter::new(SpillWriter {
        mem: Vec::new(),
        file: None,
        len: 0,
    })
    .map_err(|e| io_err(what, e))
}

/// A chunk's entry that [`kiln_chunk::entry`]'s rule refuses, as an error naming the file
/// (`root` is the chunk's course-relative root) and the chunk.
fn refusal(r: Refused, root: &str, chunk: &str) -> Error {
    Error::invalid(format!("{} (in chunk {chunk})", r.under(root)))
}

/// The UTF-8 byte order mark some editors put at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Checks a gathered member that is JSON: the error names the file and the line. A leading
/// UTF-8 BOM is accepted (and stored as it is: the bundle holds the file's bytes).
fn check_json(path: &str, data: &[u8]) -> Result<()> {
    if !path.ends_with(".json") {
        return Ok(());
    }
    let data = data.strip_prefix(BOM).unwrap_or(data);
    serde_json::from_slice::<serde_json::Value>(data)
        .map(|_| ())
        .map_err(|e| Error::invalid(format!("{path}:{}: malformed JSON: {e}", e.line())))
}

/// Builds one job with `reader`.
pub(crate) fn build(job: Job, reader: &mut dyn Reader, max_file_size: u64) -> Result<Built> {
    match job {
        Job::Dir(chunk) => build_dir(chunk, reader, max_file_size),
        Job::Gathered {
            kind,
            members,
            memo_key,
        } => {
            let entries = read_members(&members, reader, max_file_size)?;
            finish_gathered(kind, entries, memo_key)
        }
        Job::Patch {
            kind,
            old_id,
            old,
            remove,
            add,
        } => {
            let mut entries: Vec<(String, BundleEntry)> = read_bundle(&old, old_id)
                .map_err(|e| io_err(&format!("reading the previous {kind} bundle"), e))?
                .into_iter()
                .filter(|(p, _)| !remove.contains(p))
                .collect();
            entries.extend(read_members(&add, reader, max_file_size)?);
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.dedup_by(|a, b| a.0 == b.0);
            finish_gathered(kind, entries, None)
        }
    }
}

fn build_dir(chunk: DirChunk, reader: &mut dyn Reader, limit: u64) -> Result<Built> {
    let label = chunk_label(chunk.kind, &chunk.name);
    let files = list_tree(reader, &chunk.root, chunk.tree)?;
    let mut w = new_writer(&label)?;
    let mut buf = Vec::new();
    let mut entries = Entries::new();
    let refused = |r| refusal(r, &chunk.root, &label);
    for (rel, node) in &files {
        let course_path = join(&chunk.root, rel);
        match node.kind {
            NodeKind::Symlink => {
                let target = reader.link_target(&course_path, node)?;
                entries.symlink(rel, &target).map_err(refused)?;
                w.add_symlink(rel, &target)
            }
            NodeKind::File { exec } => {
                entries.entry(rel).map_err(refused)?;
                reader.read(&course_path, node, limit, &mut buf)?;
                reader.warnings().check_lfs(&course_path, &buf);
                w.add_file(rel, exec, &buf)
            }
            NodeKind::Dir | NodeKind::Submodule => continue,
        }
        .map_err(|e| io_err(&label, e))?;
    }
    entries.finish().map_err(refused)?;
    let done = w.finish().map_err(|e| io_err(&label, e))?;
    Ok(Built {
        kind: chunk.kind,
        memo_key: chunk.tree.map(crate::memo::git),
        name: chunk.name,
        root: chunk.root,
        id: done.id,
        size: done.size,
        files: files.len(),
        toc: done.toc,
        data: done.out.into_spilled(),
    })
}

fn read_members(
    members: &[Member],
    reader: &mut dyn Reader,
    limit: u64,
) -> Result<Vec<(String, BundleEntry)>> {
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        let entry = match m.node.kind {
            NodeKind::Symlink => BundleEntry::Symlink {
                target: reader.link_target(&m.path, &m.node)?,
            },
            NodeKind::File { exec } => {
                let mut data = Vec::new();
                reader.read(&m.path, &m.node, limit, &mut data)?;
                check_json(&m.path, &data)?;
                reader.warnings().check_lfs(&m.path, &data);
                BundleEntry::File { data, exec }
            }
            NodeKind::Dir | NodeKind::Submodule => continue,
        };
        out.push((m.path.clone(), entry));
    }
    Ok(out)
}

fn finish_gathered(
    kind: ChunkKind,
    entries: Vec<(String, BundleEntry)>,
    memo_key: Option<String>,
) -> Result<Built> {
    let label = kind.as_str();
    let paths: HashSet<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    let mut rule = Entries::new();
    let refused = |r| refusal(r, "", label);
    for (path, entry) in &entries {
        match entry {
            BundleEntry::Symlink { target } => {
                rule.symlink(path, target).map_err(refused)?;
                // The members of a gathered chunk come from all over the course: a link to
                // anything but another member would dangle once the chunk is unpacked.
                if !resolve_lexical(path, target).is_some_and(|t| paths.contains(t.as_str())) {
                    return Err(Error::invalid(format!(
                        "symlink {path} -> {target:?} points outside its chunk {label} \
                         (a gathered chunk's links must point to one of its files)"
                    )));
                }
            }
            BundleEntry::File { .. } => rule.entry(path).map_err(refused)?,
        }
    }
    rule.finish().map_err(refused)?;
    let mut w = new_writer(label)?;
    for (path, entry) in &entries {
        w.add(path, entry).map_err(|e| io_err(label, e))?;
    }
    let done = w.finish().map_err(|e| io_err(label, e))?;
    Ok(Built {
        kind,
        name: String::new(),
        root: String::new(),
        memo_key,
        id: done.id,
        size: done.size,
        files: entries.len(),
        toc: done.toc,
        data: done.out.into_spilled(),
    })
}

/// `kind:name`, or `kind` for a course-wide chunk.
pub(crate) fn chunk_label(kind: ChunkKind, name: &str) -> String {
    kiln_core::ids::ChunkRef {
        kind,
        name: name.to_string(),
    }
    .to_string()
}

/// The memo key of a gathered chunk's member list: a hash of (path, blob id, mode) of each.
pub(crate) fn members_key(kind: ChunkKind, members: &[Member]) -> Option<String> {
    let mut h = blake3::Hasher::new();
    h.update(kind.as_str().as_bytes());
    for m in members {
        let id = m.node.id?;
        let mode = match m.node.kind {
            NodeKind::File { exec: false } => "f",
            NodeKind::File { exec: true } => "x",
            NodeKind::Symlink => "l",
            NodeKind::Dir => "d",
            NodeKind::Submodule => "m",
        };
        h.update(format!("\0{}\0{id}\0{mode}", m.path).as_bytes());
    }
    Some(crate::memo::gathered(h.finalize().to_hex()))
}

/// Runs `jobs` on `threads` threads, each with its own reader, sending each result to `tx`
/// (a bounded channel: a slow upload holds the builders back). Stops early when `cancel` is
/// set or the receiver is gone.
pub(crate) fn spawn(
    source: Arc<dyn Source>,
    jobs: Vec<Job>,
    threads: usize,
    max_file_size: u64,
    tx: tokio::sync::mpsc::Sender<Result<Built>>,
    cancel: Arc<AtomicBool>,
) {
    let queue = Arc::new(Mutex::new(VecDeque::from(jobs)));
    for _ in 0..threads.max(1) {
        let (source, queue, tx, cancel) =
            (source.clone(), queue.clone(), tx.clone(), cancel.clone());
        std::thread::spawn(move || {
            let mut reader = match source.reader() {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            loop {
                if cancel.load(Ordering::Relaxed) {
                    return;
                }
                // The lock only guards a pop; a poisoned queue means a builder panicked.
                let job = match queue.lock() {
                    Ok(mut q) => q.pop_front(),
                    Err(_) => None,
                };
                let Some(job) = job else { return };
                let result = build(job, &mut *reader, max_file_size);
                let failed = result.is_err();
                if tx.blocking_send(result).is_err() || failed {
                    return;
                }
            }
        });
    }
}

/// Whether two member lists are the same files (path, kind, mode and blob id).
pub(crate) fn same_members(a: &[Member], b: &[Member]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.path == y.path && x.node.kind == y.node.kind && x.node.id == y.node.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_file_and_line() {
        let e = check_json("q/info.json", b"{\n  \"a\": 1,\n  oops\n}").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("q/info.json:3: malformed JSON"), "{msg}");
        assert!(check_json("q/info.json", b"{}").is_ok());
        assert!(check_json("q/notes.txt", b"{").is_ok());
    }

    #[test]
    fn json_may_start_with_a_bom() {
        assert!(check_json("q/info.json", b"\xEF\xBB\xBF{\"a\": 1}").is_ok());
        assert!(check_json("q/info.json", b"\xEF\xBB\xBF{oops").is_err());
    }
}
