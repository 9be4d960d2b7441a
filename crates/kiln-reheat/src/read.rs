//! The read path: a cache get that, on a miss of a `render_through` library, renders the
//! key at once (one render per key in the process, however many readers wait) and stores it.
//!
//! [`ReadThrough`] owns the renders in flight and what a render-through needs; the
//! [`Reheat`](crate::Reheat) service composes one and hands reads to it. A render-through
//! that fails transiently enqueues a render job at [`priority::LIVE`], so a worker retries
//! it ahead of any reheat work.
//!
//! [`priority::LIVE`]: kiln_core::queue::priority::LIVE

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kiln_core::ids::LibraryName;
use kiln_core::ledger::RunLedger;
use kiln_core::queue::JobQueue;
use kiln_core::render_cache::{CacheEntry, PutOutcome, RenderCache};
use kiln_core::time::SharedClock;
use kiln_core::{Error, Result};

use crate::handler::RenderError;
use crate::library::Libraries;
use crate::payload;

type Flight = Shared<BoxFuture<'static, Result<Option<CacheEntry>, String>>>;

/// Renders in flight, by (library, key).
#[derive(Default)]
struct Flights {
    by_key: HashMap<(LibraryName, String), Flight>,
}

impl std::fmt::Debug for Flights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field("in_flight", &self.by_key.len())
            .finish()
    }
}

/// The read path over a render cache, rendering through on a miss where the library
/// allows it; cheap to clone (clones share the renders in flight).
#[derive(Debug, Clone)]
pub struct ReadThrough {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The runs, for the generation a render-through writes at.
    ledger: Arc<dyn RunLedger>,
    /// Where a render-through that failed transiently goes to be retried.
    queue: Arc<dyn JobQueue>,
    cache: Arc<dyn RenderCache>,
    libraries: Libraries,
    clock: SharedClock,
    /// A std mutex: every section only looks up, inserts or removes, with no await inside.
    flights: Mutex<Flights>,
}

impl ReadThrough {
    /// The read path over these backends, for these libraries, stamping entries it renders
    /// with `clock`'s time.
    pub fn new(
        ledger: Arc<dyn RunLedger>,
        queue: Arc<dyn JobQueue>,
        cache: Arc<dyn RenderCache>,
        libraries: Libraries,
        clock: SharedClock,
    ) -> Self {
        ReadThrough {
            inner: Arc::new(Inner {
                ledger,
                queue,
                cache,
                libraries,
                clock,
                flights: Mutex::new(Flights::default()),
            }),
        }
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, Flights> {
        self.inner.flights.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry of `key`, unless missing or expired. On a miss, a library with
    /// `render_through` renders the key now (single-flight) and returns the stored entry.
    /// An unknown library is [`Error::NotFound`].
    pub async fn read(&self, library: &str, key: &str) -> Result<Option<CacheEntry>> {
        let lib = self.inner.libraries.get(library)?;
        if let Some(e) = self.inner.cache.get(&lib.name, key).await? {
            return Ok(Some(e));
        }
        if !lib.settings.render_through {
            return Ok(None);
        }
        let id = (lib.name.clone(), key.to_string());
        let flight = self
            .flights()
            .by_key
            .entry(id.clone())
            .or_insert_with(|| {
                let this = self.clone();
                async move {
                    let out = this
                        .render_through(&id.0, &id.1)
                        .await
                        .map_err(|e| e.to_string());
                    this.flights().by_key.remove(&id);
                    out
                }
                .boxed()
                .shared()
            })
            .clone();
        flight.await.map_err(|msg| Error::Unavailable {
            what: format!("library {library}: render-through of {key:?}"),
            source: msg.into(),
        })
    }

    async fn render_through(&self, library: &LibraryName, key: &str) -> Result<Option<CacheEntry>> {
        let lib = self.inner.libraries.get(library.as_str())?;
        let Some(item) = lib.handler.live_item(key).await? else {
            return Ok(None);
        };
        let generation = self.live_generation(&lib.name).await?;
        match lib.handler.render(&item.key, &item.props).await {
            Ok(r) => {
                let entry = r.into_entry(item.key, item.group, generation, self.inner.clock.now());
                let outcome = self.inner.cache.put(&lib.name, vec![entry.clone()]).await?;
                if outcome.first() == Some(&PutOutcome::Written) {
                    Ok(Some(entry))
                } else {
                    // A newer entry landed meanwhile: that one is the answer.
                    self.inner.cache.get(&lib.name, key).await
                }
            }
            Err(RenderError::Retry { reason, .. }) => {
                let job = payload::live_render(lib, generation, item)?;
                self.inner.queue.enqueue(vec![job]).await?;
                Err(Error::Unavailable {
                    what: format!("library {library}: renderer"),
                    source: format!("{reason}; queued at live priority").into(),
                })
            }
            Err(RenderError::Fail(reason)) => Err(Error::backend("renderer", reason)),
        }
    }

    /// The generation a live render-through writes at: the library's newest build's.
    async fn live_generation(&self, library: &LibraryName) -> Result<u64> {
        Ok(self
            .inner
            .ledger
            .runs(Some(library), 1)
            .await?
            .first()
            .map_or(0, |r| r.generation))
    }
}
