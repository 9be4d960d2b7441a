//! What the cache knows of its backends' health: the outcome of its last call to each
//! (passive, free to read). The fetcher records the store's outcomes here, the cache the
//! catalog's; the active probe of each is [`crate::ChunkCache::probe`] (`probe.rs`).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kiln_core::{Error, Result};

/// A backend the cache depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// What current versions and manifests are read from: the published view (or the
    /// catalog itself); reported as `catalog`.
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

    pub(crate) fn state(&self, b: Backend) -> BackendState {
        let seen = self.slot(b).map(|s| lock(s).clone()).unwrap_or_default();
        BackendState {
            backend: b,
            error: seen.error,
            last_ok: seen.last_ok.map(|t| t.elapsed()),
        }
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

fn lock(m: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    // A record is one assignment: a panic elsewhere cannot leave it half written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
