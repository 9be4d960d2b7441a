//! Helpers for tests and benchmarks of kiln-load and its callers: bundles built the way
//! sync builds them, and an object store wrapper that counts GETs and injects faults. Not
//! for production use. (The in-memory catalog is kiln-testkit's `MemCatalog`.)

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use kiln_core::ids::{ChunkId, ChunkKind};
use kiln_core::manifest::ManifestEntry;
use kiln_core::{Error, Result};
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// One entry of a test bundle.
#[derive(Debug, Clone)]
enum Item {
    File { data: Vec<u8>, exec: bool },
    Symlink(String),
}

/// Builds a bundle as sync does: a tar in sorted path order, mtime 0, uid/gid 0, mode
/// 0644/0755, compressed with zstd; its id is the BLAKE3 of the tar.
#[derive(Debug, Clone, Default)]
pub struct BundleBuilder {
    items: BTreeMap<String, Item>,
}

/// A built bundle and its manifest entry.
#[derive(Debug, Clone)]
pub struct TestChunk {
    /// The manifest entry (id and size filled in).
    pub entry: ManifestEntry,
    /// The compressed bundle.
    pub bundle: Bytes,
}

impl BundleBuilder {
    /// An empty bundle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a regular file.
    pub fn file(mut self, path: &str, data: impl Into<Vec<u8>>) -> Self {
        self.items.insert(
            path.into(),
            Item::File {
                data: data.into(),
                exec: false,
            },
        );
        self
    }

    /// Adds an executable file.
    pub fn exec(mut self, path: &str, data: impl Into<Vec<u8>>) -> Self {
        self.items.insert(
            path.into(),
            Item::File {
                data: data.into(),
                exec: true,
            },
        );
        self
    }

    /// Adds a symlink (not checked: tests use this to build hostile bundles).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.items.insert(path.into(), Item::Symlink(target.into()));
        self
    }

    /// The uncompressed tar.
    pub fn tar(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, item) in &self.items {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            match item {
                Item::File { data, exec } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(if *exec { 0o755 } else { 0o644 });
                    h.set_size(data.len() as u64);
                    // In-memory writes cannot fail; a path tar cannot hold is a test bug.
                    b.append_data(&mut h, path, data.as_slice())
                        .expect("append a file to a test bundle");
                }
                Item::Symlink(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    b.append_link(&mut h, path, target)
                        .expect("append a symlink to a test bundle");
                }
            }
        }
        b.into_inner().expect("finish a test bundle")
    }

    /// Builds the chunk `kind:name` mounted at `root` ("" for a gathered chunk).
    pub fn build(&self, kind: ChunkKind, name: &str, root: &str) -> TestChunk {
        let tar = self.tar();
        let id = ChunkId(*blake3::hash(&tar).as_bytes());
        let bundle = zstd::encode_all(tar.as_slice(), 3).expect("compress a test bundle");
        TestChunk {
            entry: ManifestEntry {
                kind,
                name: name.into(),
                id,
                size: tar.len() as u64,
                root: root.into(),
            },
            bundle: bundle.into(),
        }
    }
}

impl TestChunk {
    /// Uploads the bundle under its object key.
    pub async fn put(&self, store: &dyn ObjectStore) -> Result<()> {
        let key = Path::from(self.entry.id.object_key());
        store
            .put(&key, self.bundle.clone().into())
            .await
            .map_err(|e| Error::backend("object store", e))?;
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

/// A fault [`CountingStore`] injects into the next GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFault {
    /// The GET fails with a transient error.
    Transient,
    /// The GET returns the object with one byte flipped.
    Corrupt,
}

type Hook = Box<dyn Fn() + Send + Sync>;

/// Wraps a store: counts GETs, injects queued faults, runs a hook on each GET, and can
/// serve GETs slowly (a stream of 16 KiB pieces, each after a delay).
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    gets: AtomicU64,
    faults: Mutex<VecDeque<StoreFault>>,
    hook: Mutex<Option<Hook>>,
    delay: Mutex<Option<Duration>>,
}

impl CountingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(CountingStore {
            inner,
            gets: AtomicU64::new(0),
            faults: Mutex::new(VecDeque::new()),
            hook: Mutex::new(None),
            delay: Mutex::new(None),
        })
    }

    /// GETs so far.
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    /// Queues a fault for a coming GET.
    pub fn push_fault(&self, f: StoreFault) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(f);
    }

    /// Runs `f` at the start of every GET.
    pub fn on_get(&self, f: impl Fn() + Send + Sync + 'static) {
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(f));
    }

    /// Serves GETs as a stream of 16 KiB pieces, each after `delay`.
    pub fn set_slow(&self, delay: Duration) {
        *self.delay.lock().unwrap_or_else(|e| e.into_inner()) = Some(delay);
    }
}

impl fmt::Debug for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({:?})", self.inner)
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

fn stream_result(meta: ObjectMeta, data: Bytes, delay: Option<Duration>) -> GetResult {
    let len = data.len() as u64;
    let pieces: Vec<Bytes> = (0..data.len())
        .step_by(16 * 1024)
        .map(|i| data.slice(i..(i + 16 * 1024).min(data.len())))
        .collect();
    let stream = futures::stream::iter(pieces).then(move |p| async move {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        Ok(p)
    });
    GetResult {
        payload: GetResultPayload::Stream(stream.boxed()),
        meta,
        range: Range { start: 0, end: len },
        attributes: Default::default(),
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for CountingStore {
    async fn put(&self, location: &Path, payload: PutPayload) -> object_store::Result<PutResult> {
        self.inner.put(location, payload).await
    }

    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart(
        &self,
        location: &Path,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart(location).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get(&self, location: &Path) -> object_store::Result<GetResult> {
        self.get_opts(location, GetOptions::default()).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        if let Some(h) = &*self.hook.lock().unwrap_or_else(|e| e.into_inner()) {
            h();
        }
        let fault = self
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        let delay = *self.delay.lock().unwrap_or_else(|e| e.into_inner());
        match fault {
            Some(StoreFault::Transient) => Err(object_store::Error::Generic {
                store: "counting",
                source: "injected transient failure".into(),
            }),
            Some(StoreFault::Corrupt) => {
                let got = self.inner.get_opts(location, options).await?;
                let meta = got.meta.clone();
                let mut data = got.bytes().await?.to_vec();
                let mid = data.len() / 2;
                data[mid] ^= 0x55;
                Ok(stream_result(meta, data.into(), delay))
            }
            None if delay.is_some() => {
                let got = self.inner.get_opts(location, options).await?;
                let meta = got.meta.clone();
                let data = got.bytes().await?;
                Ok(stream_result(meta, data, delay))
            }
            None => self.inner.get_opts(location, options).await,
        }
    }

    async fn get_range(&self, location: &Path, range: Range<u64>) -> object_store::Result<Bytes> {
        self.inner.get_range(location, range).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    async fn head(&self, location: &Path) -> object_store::Result<ObjectMeta> {
        self.inner.head(location).await
    }

    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.inner.delete(location).await
    }

    fn delete_stream<'a>(
        &'a self,
        locations: BoxStream<'a, object_store::Result<Path>>,
    ) -> BoxStream<'a, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy(from, to).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.rename(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }

    async fn rename_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.rename_if_not_exists(from, to).await
    }
}
