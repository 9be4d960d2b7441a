//! The active probe of the cache's backends ([`ChunkCache::probe`]) and the passive view of
//! their last outcomes ([`ChunkCache::health`]).

use std::time::Duration;

use kiln_chunk::store_error::to_error;
use kiln_core::ids::CourseId;
use kiln_core::{Error, Result};

use crate::cache::ChunkCache;
use crate::fsutil::blocking;
use crate::health::{Backend, BackendState, error_text};

/// A course id no course has: probing the catalog with it reads one index entry.
const PROBE_COURSE: &str = "kiln-health-probe";

impl ChunkCache {
    /// The outcome of the cache's last call to each backend, without calling any.
    pub fn health(&self) -> Vec<BackendState> {
        let h = &self.inner().health;
        vec![h.state(Backend::Catalog), h.state(Backend::ObjectStore)]
    }

    /// Asks each backend now, each bounded by `timeout`: the catalog (one current-version
    /// lookup), the object store (one HEAD, not-found is an answer) and the cache directory
    /// (staging exists or can be made again).
    pub async fn probe(&self, timeout: Duration) -> Vec<BackendState> {
        let inner = self.inner().clone();
        let catalog = async {
            let course = CourseId::new(PROBE_COURSE)?;
            inner.content.current(&course).await.map(drop)
        };
        let store = async {
            let key = object_store::path::Path::from(PROBE_COURSE);
            match inner.store.head(&key).await {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(to_error(&format!("probing {key}"), e)),
            }
        };
        let tmp = inner.paths.tmp();
        let disk = blocking("making the cache's staging directory", move || {
            std::fs::create_dir_all(&tmp)
        });
        let bounded = |b: Backend, r: std::result::Result<Result<()>, _>| match r {
            Ok(r) => r,
            Err(_) => Err(Error::Unavailable {
                what: b.as_str().into(),
                source: format!("no answer within {} ms", timeout.as_millis()).into(),
            }),
        };
        let (c, s, d) = tokio::join!(
            tokio::time::timeout(timeout, catalog),
            tokio::time::timeout(timeout, store),
            tokio::time::timeout(timeout, disk),
        );
        let h = &inner.health;
        let c = h.record(Backend::Catalog, bounded(Backend::Catalog, c));
        let s = h.record(Backend::ObjectStore, bounded(Backend::ObjectStore, s));
        let d = bounded(Backend::CacheDir, d);
        [
            (Backend::Catalog, c),
            (Backend::ObjectStore, s),
            (Backend::CacheDir, d),
        ]
        .into_iter()
        .map(|(backend, r)| BackendState {
            backend,
            error: r.err().map(|e| error_text(&e)),
            last_ok: None,
        })
        .collect()
    }
}
