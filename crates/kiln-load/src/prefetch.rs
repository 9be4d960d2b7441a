//! Warming before the first request: when a course's current version moves, the chunks of
//! the new version that replace chunks this cache holds of the old one are fetched in the
//! background, so that the first request after the flip finds them on disk; and a new server
//! can be told to fetch a course's whole current version (`kiln serve --prefetch`).
//!
//! Prefetching yields to requests: each fetch waits (up to [`YIELD_AT_MOST`]) until no
//! ensure is in flight, runs [`AT_ONCE`] fetches at most, and stops where the chunk would
//! not fit the budget without evicting. A prefetched chunk is an ordinary unpinned chunk:
//! the LRU may evict it. Metrics count the chunks prefetched and those a request then used.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kiln_core::Result;
use kiln_core::ids::{CourseId, VersionId};
use kiln_core::manifest::ManifestEntry;

use crate::cache::{ChunkCache, lock};
use crate::metrics::inc;

/// Prefetches running at once per call.
const AT_ONCE: usize = 2;
/// The longest a prefetch waits for requests in flight to finish before it fetches anyway.
const YIELD_AT_MOST: Duration = Duration::from_secs(1);

impl ChunkCache {
    /// After the course's current version moved from `from` to `to`: fetches the chunks of
    /// `to` whose (kind, name) had another chunk in `from` that this cache holds. Returns
    /// how many it fetched.
    pub async fn prefetch_changes(
        &self,
        course: &CourseId,
        from: &VersionId,
        to: &VersionId,
    ) -> Result<u64> {
        let (old, new) = (
            self.manifest(course, from).await?,
            self.manifest(course, to).await?,
        );
        let held: Vec<ManifestEntry> = {
            let ix = self.inner().index();
            new.entries()
                .iter()
                .filter(|e| {
                    old.get(&e.chunk_ref())
                        .is_some_and(|o| o.id != e.id && ix.is_present(&(course.clone(), o.id)))
                        && !ix.is_present(&(course.clone(), e.id))
                })
                .cloned()
                .collect()
        };
        self.prefetch_entries(course, to, held).await
    }

    /// Fetches the course's current version whole, as far as the budget allows without
    /// evicting anything. Returns how many chunks it fetched.
    pub async fn prefetch_current(&self, course: &CourseId) -> Result<u64> {
        let version = self.current_version(course).await?;
        let manifest = self.manifest(course, &version).await?;
        let entries = manifest.entries().to_vec();
        self.prefetch_entries(course, &version, entries).await
    }

    async fn prefetch_entries(
        &self,
        course: &CourseId,
        version: &VersionId,
        entries: Vec<ManifestEntry>,
    ) -> Result<u64> {
        let budget = self.config().budget_bytes;
        let fetched = futures::stream::iter(entries)
            .map(|e| async move {
                self.yield_to_requests().await;
                let key = (course.clone(), e.id);
                {
                    let ix = self.inner().index();
                    if ix.is_present(&key) || ix.total + e.size > budget {
                        return Ok(false);
                    }
                }
                let ensured = self
                    .ensure_entries(course, &self.at(course, Some(version)).await?, vec![e])
                    .await?;
                let fetched = !ensured.downloaded.is_empty();
                if fetched {
                    inc(&self.inner().metrics.prefetched);
                    lock(&self.inner().prefetched).insert(key);
                }
                Ok::<bool, kiln_core::Error>(fetched)
            })
            .buffer_unordered(AT_ONCE)
            .collect::<Vec<_>>()
            .await;
        let mut n = 0;
        for r in fetched {
            match r {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => tracing::debug!(%course, %version, "prefetch: {e}"),
            }
        }
        Ok(n)
    }

    /// Waits while requests are in flight, at most [`YIELD_AT_MOST`].
    async fn yield_to_requests(&self) {
        let started = Instant::now();
        while self.inner().in_flight.load(Ordering::Relaxed) > 0
            && started.elapsed() < YIELD_AT_MOST
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
