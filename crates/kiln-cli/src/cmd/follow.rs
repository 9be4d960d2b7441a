//! A server following the published head: the view reads it on its poll interval and when
//! the push channel says so; each course whose version moved is re-read by the cache at
//! once, told to a mount (its `current` link flips), and its changed chunks are prefetched
//! where this server held the old ones.

use std::sync::Arc;

use kiln_core::ids::CourseId;
use kiln_load::ChunkCache;
use kiln_publish::PublishedView;

use crate::backends::Env;

/// The tasks that follow the head; dropping it stops them.
pub(crate) struct Following {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Following {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts following: `changed` is notified on every change (a mount looks again), and
/// `prefetch` courses are fetched whole in the background.
pub(crate) fn follow(
    env: &Env,
    view: &PublishedView,
    cache: &ChunkCache,
    changed: &Arc<tokio::sync::Notify>,
    prefetch: Vec<CourseId>,
) -> anyhow::Result<Following> {
    let mut changes = view.subscribe();
    let poll = view.follow(env.head_announcements()?);
    let prefetch_changes = env.config.load.prefetch_changes.unwrap_or(true);
    let (c, n) = (cache.clone(), changed.clone());
    let apply = tokio::spawn(async move {
        loop {
            let change = match changes.recv().await {
                Ok(change) => change,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if let Err(e) = c.refresh_now(&change.course).await {
                tracing::warn!(course = %change.course, error = %e, "refreshing the current version");
            }
            n.notify_one();
            if let (true, Some(from), Some(to)) = (prefetch_changes, change.from, change.to) {
                let (c, course) = (c.clone(), change.course);
                tokio::spawn(async move {
                    match c.prefetch_changes(&course, &from, &to).await {
                        Ok(0) => {}
                        Ok(k) => {
                            tracing::info!(%course, %to, chunks = k, "prefetched the new version's changes")
                        }
                        Err(e) => tracing::debug!(%course, %to, "prefetch: {e}"),
                    }
                });
            }
        }
    });
    let mut tasks = vec![poll, apply];
    for course in prefetch {
        let c = cache.clone();
        tasks.push(tokio::spawn(async move {
            match c.prefetch_current(&course).await {
                Ok(k) => tracing::info!(%course, chunks = k, "prefetched the current version"),
                Err(e) => tracing::warn!(%course, "prefetching the current version: {e}"),
            }
        }));
    }
    Ok(Following { tasks })
}

/// The published view's counters for `/metrics`: what following the head costs the store,
/// and which head is in use (its sequence number, when it was written and applied, so that
/// a fleet's publish-to-served latency can be read off every server).
#[derive(Debug)]
pub(crate) struct PublishedCollector(pub(crate) PublishedView);

impl prometheus_client::collector::Collector for PublishedCollector {
    fn encode(
        &self,
        mut enc: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::{ConstCounter, Counter};
        use prometheus_client::metrics::family::Family;
        use prometheus_client::metrics::gauge::ConstGauge;
        let m = self.0.metrics();
        let requests = Family::<Vec<(String, String)>, Counter>::default();
        for (kind, n) in [
            ("head_changed", m.head_reads),
            ("head_unchanged", m.head_unchanged),
            ("head_failed", m.head_errors),
            ("object", m.object_gets),
            ("pointer", m.pointer_requests),
        ] {
            requests
                .get_or_create(&vec![("kind".to_string(), kind.to_string())])
                .inc_by(n);
        }
        requests.encode(enc.encode_descriptor(
            "kiln_published_requests",
            "Object store requests for the published view, by kind (head reads, roots and segments, version pointers)",
            None,
            requests.metric_type(),
        )?)?;
        let bytes = ConstCounter::new(m.object_bytes);
        bytes.encode(enc.encode_descriptor(
            "kiln_published_object_bytes",
            "Bytes of roots and segments read from the store",
            None,
            bytes.metric_type(),
        )?)?;
        for (name, help, v) in [
            (
                "kiln_published_head_seq",
                "Sequence number of the published head in use",
                m.head_seq as i64,
            ),
            (
                "kiln_published_head_written_at_ms",
                "When the head in use was written (ms since the epoch, the writer's clock)",
                m.head_written_at_ms,
            ),
            (
                "kiln_published_head_applied_at_ms",
                "When this server applied the head in use (ms since the epoch)",
                m.head_applied_at_ms,
            ),
        ] {
            let g = ConstGauge::new(v);
            g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}
