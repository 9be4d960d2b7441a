//! What the cache knows of its backends' health: the outcome of its last call to each
//! (passive, free to read), and an active probe of each ([`ChunkCache::probe`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use kiln_core::ids::CourseId;
use kiln_core::{Error, Result};

use crate::cache::{ChunkCache, lock};
use crate::fetch::blocking;

/// A backend the cache depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The catalog (current versions, manifests).
    Catalog,
    /// The object store (bundles).
    ObjectStore,
    /// The cache directory on local disk.
    CacheDir,
}

impl Backend {
    /// Its name in reports: `catalog`, `object_store`, `cache_dir`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Catalog => "catalog",
            Backend::ObjectStore => "object_store",
            Backend::CacheDir => "cache_dir",
        }
    }
}

/// One backend's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendState {
    /// Which backend.
    pub backend: Backend,
    /// `None` when it answered; the error text otherwise.
    pub error: Option<String>,
    /// How long ago it was last seen answering (`None`: never, or not tracked).
    pub last_ok: Option<Duration>,
}

#[derive(Debug, Default, Clone)]
struct Seen {
    error: Option<String>,
    last_ok: Option<Instant>,
}

/// The last outcome per tracked backend.
#[derive(Debug, Default)]
pub(crate) struct Health {
    catalog: Mutex<Seen>,
    store: Mutex<Seen>,
}

impl Health {
    fn slot(&self, b: Backend) -> Option<&Mutex<Seen>> {
        match b {
            Backend::Catalog => Some(&self.catalog),
            Backend::ObjectStore => Some(&self.store),
            Backend::CacheDir => None,
        }
    }

    /// Records a call's outcome and passes it on. Not-found and bad input are answers.
    pub(crate) fn record<T>(&self, b: Backend, r: Result<T>) -> Result<T> {
        if let Some(slot) = self.slot(b) {
            let mut seen = lock(slot);
            match &r {
                Ok(_) | Err(Error::NotFound { .. } | Error::InvalidInput(_)) => {
                    seen.error = None;
                    seen.last_ok = Some(Instant::now());
                }
                Err(e) => seen.error = Some(error_text(e)),
            }
        }
        r
    }

    /// Whether the last call to the backend failed.
    pub(crate) fn failing(&self, b: Backend) -> bool {
        self.slot(b).is_some_and(|s| lock(s).error.is_some())
    }

    fn state(&self, b: Backend) -> BackendState {
        let seen = self.slot(b).map(|s| lock(s).clone()).unwrap_or_default();
        BackendState {
            backend: b,
            error: seen.error,
            last_ok: seen.last_ok.map(|t| t.elapsed()),
        }
    }
}

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
            inner.catalog.current(&course).await.map(drop)
        };
        let store = async {
            let key = object_store::path::Path::from(PROBE_COURSE);
            match inner.store.head(&key).await {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(Error::Unavailable {
                    what: "object store".into(),
                    source: Box::new(e),
                }),
            }
        };
        let tmp = inner.paths.tmp();
        let disk = blocking(move || std::fs::create_dir_all(&tmp));
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

/// An error with its source chain, for an operator (`Unavailable` hides the cause in
/// its source).
pub(crate) fn error_text(e: &Error) -> String {
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        src = s.source();
    }
    text
}
