//! Counters and latency histograms of the cache, kept as atomics and read as a snapshot
//! that the server renders (kiln-load itself knows no metrics format).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0,
];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut acc = 0;
        let buckets = BUCKETS
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| {
                acc += c.load(Ordering::Relaxed);
                (*b, acc)
            })
            .collect();
        HistogramSnapshot {
            buckets,
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

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

/// A histogram as read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound in seconds, cumulative count), ascending; `+Inf` is `count`.
    pub buckets: Vec<(f64, u64)>,
    /// How many observations.
    pub count: u64,
    /// Their sum in seconds.
    pub sum_seconds: f64,
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
    /// Bytes of files extracted to disk.
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
    /// Bytes of the chunk directories this process knows of.
    pub cache_bytes: u64,
    /// Chunk directories this process knows of.
    pub cache_chunks: u64,
    /// The byte budget.
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
