//! The mount's counters: opens, open files, chunks held, and failed opens by reason (the
//! chunk cache's own counters, downloads among them, are the cache's), and their Prometheus
//! collector for a `/metrics` that serves them (`kiln serve --mount`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kiln_core::Error;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;

/// Counters of one mount; made before it (see [`crate::MountOptions::metrics`]) so that a
/// registry can hold them first.
#[derive(Debug, Default)]
pub struct MountMetrics {
    opens: AtomicU64,
    closes: AtomicU64,
    held: AtomicU64,
    failed: Mutex<BTreeMap<&'static str, u64>>,
    last_error: Mutex<Option<String>>,
}

/// A reading of [`MountMetrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountSnapshot {
    /// Files opened.
    pub opens: u64,
    /// Files open now.
    pub open_files: u64,
    /// Chunks held (pinned) by open files now.
    pub held_chunks: u64,
    /// Opens that failed with EIO because the chunk could not be loaded, by reason
    /// (`not_found`, `unavailable`, `corrupt`, `disk`, `backend`, `other`).
    pub open_errors: BTreeMap<&'static str, u64>,
    /// The last such failure's message.
    pub last_error: Option<String>,
}

/// A failed load's reason, as a metric label.
pub(crate) fn reason(e: &Error) -> &'static str {
    match e {
        _ if e.to_string().contains("corrupt") => "corrupt",
        Error::NotFound { .. } => "not_found",
        Error::Unavailable { .. } => "unavailable",
        Error::Disk { .. } => "disk",
        Error::Backend { .. } => "backend",
        _ => "other",
    }
}

impl MountMetrics {
    pub(crate) fn opened(&self) {
        self.opens.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self) {
        self.closes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn held(&self, n: usize) {
        self.held.store(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn open_failed(&self, e: &Error) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        *failed.entry(reason(e)).or_default() += 1;
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
    }

    /// The counters now.
    pub fn snapshot(&self) -> MountSnapshot {
        let opens = self.opens.load(Ordering::Relaxed);
        MountSnapshot {
            opens,
            open_files: opens.saturating_sub(self.closes.load(Ordering::Relaxed)),
            held_chunks: self.held.load(Ordering::Relaxed),
            open_errors: self
                .failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// Renders a mount's counters at each scrape.
#[derive(Debug)]
pub struct MountCollector(pub Arc<MountMetrics>);

impl Collector for MountCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = self.0.snapshot();
        let c = ConstCounter::new(m.opens);
        c.encode(enc.encode_descriptor(
            "kiln_mount_opens",
            "Files opened through the mount",
            None,
            c.metric_type(),
        )?)?;
        for (name, help, v) in [
            (
                "kiln_mount_open_files",
                "Files open through the mount now",
                m.open_files,
            ),
            (
                "kiln_mount_held_chunks",
                "Chunks held (pinned) by open files now",
                m.held_chunks,
            ),
        ] {
            let g = ConstGauge::new(v as i64);
            g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let failed =
            Family::<Vec<(String, String)>, prometheus_client::metrics::counter::Counter>::default(
            );
        for (reason, n) in &m.open_errors {
            failed
                .get_or_create(&vec![("reason".to_string(), reason.to_string())])
                .inc_by(*n);
        }
        failed.encode(enc.encode_descriptor(
            "kiln_mount_open_errors",
            "Opens that failed with EIO because the chunk could not be loaded, by reason",
            None,
            failed.metric_type(),
        )?)?;
        Ok(())
    }
}
