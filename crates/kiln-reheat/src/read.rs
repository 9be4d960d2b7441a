//! The read path: a cache get that, on a miss of a `render_through` library, renders the
//! key at once (one render per key in the process, however many readers wait) and stores it.
//!
//! A render-through that fails transiently enqueues a render job at [`priority::LIVE`], so
//! a worker retries it ahead of any reheat work.

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kiln_core::queue::{NewJob, priority};
use kiln_core::render_cache::{CacheEntry, PutOutcome};
use kiln_core::time::Timestamp;
use kiln_core::{Error, Result};

use crate::handler::RenderError;
use crate::payload::JobPayload;
use crate::reheat::Reheat;

type Flight = Shared<BoxFuture<'static, Result<Option<CacheEntry>, String>>>;

/// Renders in flight, by (library, key).
#[derive(Default)]
pub(crate) struct Flights {
    by_key: HashMap<(String, String), Flight>,
}

impl std::fmt::Debug for Flights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field("in_flight", &self.by_key.len())
            .finish()
    }
}

impl Reheat {
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
        let id = (lib.name.to_string(), key.to_string());
        let flight = {
            // A std mutex: the section only looks up or inserts, with no await inside.
            let mut flights = self.inner.flights.lock().unwrap_or_else(|p| p.into_inner());
            flights
                .by_key
                .entry(id.clone())
                .or_insert_with(|| {
                    let this = self.clone();
                    let (library, key) = id.clone();
                    async move {
                        let out = this
                            .render_through(&library, &key)
                            .await
                            .map_err(|e| e.to_string());
                        let mut flights =
                            this.inner.flights.lock().unwrap_or_else(|p| p.into_inner());
                        flights.by_key.remove(&(library, key));
                        out
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        flight.await.map_err(|msg| Error::Unavailable {
            what: format!("library {library}: render-through of {key:?}"),
            source: msg.into(),
        })
    }

    async fn render_through(&self, library: &str, key: &str) -> Result<Option<CacheEntry>> {
        let lib = self.inner.libraries.get(library)?;
        let Some(item) = lib.handler.live_item(key).await? else {
            return Ok(None);
        };
        let generation = self.live_generation(&lib.name).await?;
        match lib.handler.render(&item.key, &item.props).await {
            Ok(r) => {
                let entry = CacheEntry {
                    key: item.key.clone(),
                    bytes: r.bytes,
                    content_type: r.content_type,
                    generation,
                    group: item.group,
                    written_at: Timestamp::now(),
                    expires_at: None,
                };
                let outcome = self.inner.cache.put(&lib.name, vec![entry.clone()]).await?;
                if outcome.first() == Some(&PutOutcome::Written) {
                    Ok(Some(entry))
                } else {
                    // A newer entry landed meanwhile: that one is the answer.
                    self.inner.cache.get(&lib.name, key).await
                }
            }
            Err(RenderError::Retry { reason, .. }) => {
                let job = JobPayload::Render {
                    library: lib.name.to_string(),
                    run: None,
                    generation,
                    group: item.group,
                    key: item.key,
                    props: item.props,
                };
                self.inner
                    .queue
                    .enqueue(vec![NewJob {
                        payload: job.encode()?,
                        priority: priority::LIVE,
                        not_before: None,
                        max_attempts: lib.settings.max_attempts,
                        run: None,
                        fence: None,
                        dedupe: None,
                    }])
                    .await?;
                Err(Error::Unavailable {
                    what: format!("library {library}: renderer"),
                    source: format!("{reason}; queued at live priority").into(),
                })
            }
            Err(RenderError::Fail(reason)) => Err(Error::backend("renderer", reason)),
        }
    }
}
