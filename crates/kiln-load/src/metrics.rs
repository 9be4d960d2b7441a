//! Counters and latency histograms (kiln-core's) of the cache, kept as atomics and read as a
//! snapshot that the server renders (kiln-load itself knows no metrics format).

use std::sync::atomic::{AtomicU64, Ordering};

use kiln_core::histogram::{Histogram, HistogramSnapshot};

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) downloads: AtomicU64,
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) bytes_downloaded: AtomicU64,
    pub(crate) bytes_extracted: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) versions_removed: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) corrupt: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) healed: AtomicU64,
    pub(crate) prefetched: AtomicU64,
    pub(crate) prefetch_used: AtomicU64,
    pub(crate) ensure_latency: Histogram,
    pub(crate) download_latency: Histogram,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn snapshot(
        &self,
        cache_bytes: u64,
        cache_chunks: u64,
        budget_bytes: u64,
        leases_active: u64,
    ) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            downloads: get(&self.downloads),
            hits: get(&self.hits),
            misses: get(&self.misses),
            bytes_downloaded: get(&self.bytes_downloaded),
            bytes_extracted: get(&self.bytes_extracted),
            evictions: get(&self.evictions),
            versions_removed: get(&self.versions_removed),
            errors: get(&self.errors),
            corrupt: get(&self.corrupt),
            retries: get(&self.retries),
            healed: get(&self.healed),
            prefetched: get(&self.prefetched),
            prefetch_used: get(&self.prefetch_used),
            cache_bytes,
            cache_chunks,
            budget_bytes,
            bytes_over_budget: cache_bytes.saturating_sub(budget_bytes),
            leases_active,
            ensure_latency: self.ensure_latency.snapshot(),
            download_latency: self.download_latency.snapshot(),
        }
    }
}

/// The cache's counters as read at one moment (totals since the cache was opened).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// Chunks downloaded from the store (not counting ones another process fetched).
    pub downloads: u64,
    /// Chunk requests served from the local cache.
    pub hits: u64,
    /// Chunk requests that had to wait for a fetch.
    pub misses: u64,
    /// Compressed bytes read from the store.
    pub bytes_downloaded: u64,
    /// Bytes of files extracted to disk (their sizes; what they take on disk is
    /// [`MetricsSnapshot::cache_bytes`]'s measure).
    pub bytes_extracted: u64,
    /// Chunk directories evicted to stay within budget.
    pub evictions: u64,
    /// Old version directories removed after their grace period.
    pub versions_removed: u64,
    /// Failed fetches (each reported once, however many requests waited for it).
    pub errors: u64,
    /// Bundles whose content did not match their id (or would not unpack).
    pub corrupt: u64,
    /// Transient store errors retried.
    pub retries: u64,
    /// Chunks the index held present but that were missing on disk, fetched again.
    pub healed: u64,
    /// Chunks fetched ahead of any request (a new version's changes, `--prefetch`).
    pub prefetched: u64,
    /// Prefetched chunks that a request then found on disk.
    pub prefetch_used: u64,
    /// What the chunk directories this process knows of take on disk: their allocated
    /// blocks (what `du` sums) plus 512 bytes per inode; the budget's measure.
    pub cache_bytes: u64,
    /// Chunk directories this process knows of.
    pub cache_chunks: u64,
    /// The budget of `cache_bytes`.
    pub budget_bytes: u64,
    /// How far `cache_bytes` exceeds the budget: chunks that leases (or requests in flight)
    /// hold past it.
    pub bytes_over_budget: u64,
    /// Leases not yet released or expired.
    pub leases_active: u64,
    /// Latency of `ensure` calls.
    pub ensure_latency: HistogramSnapshot,
    /// Latency of chunk downloads (fetch, verify, extract).
    pub download_latency: HistogramSnapshot,
}
