//! An object store wrapper for tests of the loader and the server: it counts GETs, injects
//! queued faults (a transient failure, a flipped byte), runs a hook on each GET, and can serve
//! GETs slowly.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

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
