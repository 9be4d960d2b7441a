//! Worker metrics: job counters and a render-latency histogram (kiln-core's), as lock-free
//! atomics read through [`Metrics::snapshot`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kiln_core::histogram::{Histogram, HistogramSnapshot};

/// The backend calls whose time [`Metrics`] sums.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BackendCall {
    Lease = 0,
    Put = 1,
    Ack = 2,
    Finalize = 3,
}

/// A worker's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    jobs_done: AtomicU64,
    jobs_retried: AtomicU64,
    jobs_dead: AtomicU64,
    leases_lost: AtomicU64,
    renders: AtomicU64,
    render_errors: AtomicU64,
    stale_puts: AtomicU64,
    backend_us: [AtomicU64; 4],
    render_latency: Histogram,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Jobs acked.
    pub jobs_done: u64,
    /// Failed attempts scheduled again.
    pub jobs_retried: u64,
    /// Jobs that became dead letters.
    pub jobs_dead: u64,
    /// Acks, retries or fails refused because the lease was stale.
    pub leases_lost: u64,
    /// Renders attempted.
    pub renders: u64,
    /// Renders that failed.
    pub render_errors: u64,
    /// Puts refused because a newer generation was stored.
    pub stale_puts: u64,
    /// Time spent in backend calls, in microseconds: lease, cache put, ack, finishing runs.
    pub backend_us: [u64; 4],
    /// Render latencies.
    pub render_latency: HistogramSnapshot,
}

impl Metrics {
    pub(crate) fn add_done(&self, n: u64) {
        self.jobs_done.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_retried(&self) {
        self.jobs_retried.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_dead(&self) {
        self.jobs_dead.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_lost(&self, n: u64) {
        self.leases_lost.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_stale(&self, n: u64) {
        self.stale_puts.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn record_backend(&self, call: BackendCall, since: std::time::Instant) {
        let us = since.elapsed().as_micros().min(u64::MAX as u128) as u64;
        self.backend_us[call as usize].fetch_add(us, Ordering::Relaxed);
    }

    pub(crate) fn record_render(&self, took: Duration, ok: bool) {
        self.renders.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.render_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.render_latency.observe(took);
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            jobs_done: get(&self.jobs_done),
            jobs_retried: get(&self.jobs_retried),
            jobs_dead: get(&self.jobs_dead),
            leases_lost: get(&self.leases_lost),
            renders: get(&self.renders),
            render_errors: get(&self.render_errors),
            stale_puts: get(&self.stale_puts),
            backend_us: [0, 1, 2, 3].map(|i| get(&self.backend_us[i])),
            render_latency: self.render_latency.snapshot(),
        }
    }
}
