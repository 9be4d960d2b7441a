//! Open files: opening ensures the file's chunk and holds it (a pin in the chunk cache, as
//! a lease holds one) until the last file of that chunk and version is released; reads come
//! from the extracted file on local disk, through the descriptor opened at open time.
//!
//! A chunk another open file holds opens at once, on the FUSE thread. Otherwise the ensure
//! starts on the FUSE thread and runs there as long as it does not wait (a chunk present on
//! disk: a few `stat`s); one that waits (a download) moves to the tokio runtime and replies
//! from there, so a download never holds up a FUSE thread (nor `ls` or `stat` behind it).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Waker};

use fuser::{Errno, FileHandle, FopenFlags, ReplyData, ReplyOpen};
use kiln_core::Error;
use kiln_load::{ChunkCache, Pin};

use crate::metrics::MountMetrics;
use crate::namespace::Loaded;

/// A held chunk: the tree it belongs to (by its inode base) and its index there.
type HeldKey = (u64, u32);

/// A chunk held for open files.
struct Held {
    /// Its directory inside the version directory.
    dir: PathBuf,
    /// Open files reading it.
    open: usize,
    /// Keeps it on disk; dropped with the last open file.
    _pin: Pin,
}

/// An open file.
struct OpenFile {
    file: Arc<File>,
    held: HeldKey,
}

/// Open files and the chunks they hold.
pub(crate) struct Opens {
    cache: ChunkCache,
    rt: tokio::runtime::Handle,
    metrics: Arc<MountMetrics>,
    held: Mutex<HashMap<HeldKey, Held>>,
    files: Mutex<HashMap<u64, OpenFile>>,
    next_fh: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Files never change while mounted (a version is immutable): keep their pages across
/// opens, and send no flush on close.
fn open_flags() -> FopenFlags {
    FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_NOFLUSH
}

impl Opens {
    pub(crate) fn new(
        cache: ChunkCache,
        rt: tokio::runtime::Handle,
        metrics: Arc<MountMetrics>,
    ) -> Arc<Opens> {
        Arc::new(Opens {
            cache,
            rt,
            metrics,
            held: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        })
    }

    /// Opens file `rel` of chunk `chunk` of a loaded tree and replies.
    pub(crate) fn open(
        self: &Arc<Self>,
        tree: Arc<Loaded>,
        chunk: u32,
        rel: Box<str>,
        reply: ReplyOpen,
    ) {
        let key = (tree.base, chunk);
        // Held already: open at once, here.
        let dir = {
            let mut held = lock(&self.held);
            held.get_mut(&key).map(|h| {
                h.open += 1;
                h.dir.clone()
            })
        };
        if let Some(dir) = dir {
            match File::open(dir.join(&*rel)) {
                Ok(file) => return reply.opened(FileHandle(self.insert(file, key)), open_flags()),
                // Removed from outside (another process sharing the cache evicted it): let
                // the ensure below fetch it again.
                Err(e) => {
                    tracing::debug!(path = %dir.join(&*rel).display(), "held chunk file did not open ({e}); ensuring it again");
                    self.release_held(key);
                }
            }
        }
        let this = self.clone();
        self.run(async move {
            let r = this.ensure_and_open(&tree, chunk, &rel).await;
            this.answer(&tree, chunk, &rel, r, reply);
        });
    }

    /// Runs `work` here until it would wait (a chunk present on disk: a few `stat`s), and
    /// the rest on the runtime (a download), so no download holds up a FUSE thread.
    fn run(&self, work: impl Future<Output = ()> + Send + 'static) {
        let mut work = Box::pin(work);
        let _rt = self.rt.enter();
        if work
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
        {
            self.rt.spawn(work);
        }
    }

    /// Reads file `rel` of chunk `chunk` without an open file (a mount that does not hold
    /// files, see [`crate::MountOptions::hold_open_files`]): the kernel asks only on a page
    /// cache miss; the chunk is ensured and pinned for this read only.
    pub(crate) fn read_unheld(
        self: &Arc<Self>,
        tree: Arc<Loaded>,
        chunk: u32,
        rel: Box<str>,
        offset: u64,
        size: u32,
        reply: ReplyData,
    ) {
        let this = self.clone();
        self.run(async move {
            let entry = &tree.tree.chunks[chunk as usize];
            let ensured = this
                .cache
                .ensure_at(&tree.course, &tree.version, std::slice::from_ref(&entry.chunk_ref()))
                .await;
            let read = ensured.and_then(|e| {
                let path = e.paths.first().map(|d| d.join(&*rel)).ok_or_else(|| {
                    Error::not_found(format!("chunk {}", entry.chunk_ref()))
                })?;
                let file = File::open(&path).map_err(|err| {
                    Error::backend("mount", io::Error::new(err.kind(), format!("opening {}: {err}", path.display())))
                })?;
                read_full(&file, offset, size)
                    .map_err(|err| Error::backend("mount", io::Error::new(err.kind(), format!("reading {}: {err}", path.display()))))
            });
            match read {
                Ok(buf) => reply.data(&buf),
                Err(e) => {
                    tracing::warn!(course = %tree.course, version = %tree.version, chunk = %entry.chunk_ref(), file = %rel, "read failed, the chunk could not be loaded: {e}");
                    this.metrics.open_failed(&e);
                    reply.error(Errno::EIO);
                }
            }
        });
    }

    fn answer(
        &self,
        tree: &Loaded,
        chunk: u32,
        rel: &str,
        r: kiln_core::Result<u64>,
        reply: ReplyOpen,
    ) {
        match r {
            Ok(fh) => reply.opened(FileHandle(fh), open_flags()),
            Err(e) => {
                let entry = &tree.tree.chunks[chunk as usize];
                tracing::warn!(course = %tree.course, version = %tree.version, chunk = %entry.chunk_ref(), file = %rel, "open failed, the chunk could not be loaded: {e}");
                self.metrics.open_failed(&e);
                reply.error(Errno::EIO);
            }
        }
    }

    async fn ensure_and_open(
        &self,
        tree: &Loaded,
        chunk: u32,
        rel: &str,
    ) -> kiln_core::Result<u64> {
        let key = (tree.base, chunk);
        let entry = &tree.tree.chunks[chunk as usize];
        let ensured = self
            .cache
            .ensure_at(
                &tree.course,
                &tree.version,
                std::slice::from_ref(&entry.chunk_ref()),
            )
            .await?;
        let dir = ensured
            .paths
            .first()
            .cloned()
            .ok_or_else(|| Error::not_found(format!("chunk {}", entry.chunk_ref())))?;
        {
            let mut held = lock(&self.held);
            let h = held.entry(key).or_insert_with(|| Held {
                dir: dir.clone(),
                open: 0,
                _pin: ensured.pin,
            });
            h.open += 1;
            self.metrics.held(held.len());
        }
        let path = dir.join(rel);
        match File::open(&path) {
            Ok(file) => Ok(self.insert(file, key)),
            Err(e) => {
                self.release_held(key);
                Err(Error::backend(
                    "mount",
                    io::Error::new(e.kind(), format!("opening {}: {e}", path.display())),
                ))
            }
        }
    }

    fn insert(&self, file: File, held: HeldKey) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.files).insert(
            fh,
            OpenFile {
                file: Arc::new(file),
                held,
            },
        );
        self.metrics.opened();
        fh
    }

    /// Reads from an open file.
    pub(crate) fn read(&self, fh: u64, offset: u64, size: u32, reply: ReplyData) {
        let Some(file) = lock(&self.files).get(&fh).map(|f| f.file.clone()) else {
            return reply.error(Errno::EBADF);
        };
        match read_full(&file, offset, size) {
            Ok(buf) => reply.data(&buf),
            Err(e) => {
                tracing::warn!("read failed: {e}");
                reply.error(Errno::EIO)
            }
        }
    }

    /// Closes an open file; the last one of a chunk lets the chunk go.
    pub(crate) fn release(&self, fh: u64) {
        let Some(f) = lock(&self.files).remove(&fh) else {
            return;
        };
        self.metrics.closed();
        self.release_held(f.held);
    }

    fn release_held(&self, key: HeldKey) {
        let gone = {
            let mut held = lock(&self.held);
            match held.get_mut(&key) {
                Some(h) if h.open > 1 => {
                    h.open -= 1;
                    None
                }
                Some(_) => {
                    let gone = held.remove(&key);
                    self.metrics.held(held.len());
                    gone
                }
                None => None,
            }
        };
        // The pin drops outside the lock (unpinning may evict); an open that finds no
        // entry meanwhile ensures and pins the chunk afresh.
        drop(gone);
    }
}

/// Up to `size` bytes at `offset` (fewer only at the end of the file).
fn read_full(file: &File, offset: u64, size: u32) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; size as usize];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}
