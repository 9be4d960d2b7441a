//! The read path: a cache get that, on a miss of a `render_through` library, renders the
//! key at once (one render per key in the process, however many readers wait) and stores it;
//! and an explicit render of a key with its props (`POST .../render`), single-flight too.
//!
//! A render the renderer refuses (a 4xx, [`RenderError::Fail`]) is an
//! [`Error::Upstream`] carrying its message, and a read-through remembers it for the
//! library's `failure_ttl`, so that a miss of a key the renderer refuses does not call the
//! renderer on every read.
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
use kiln_core::time::{SharedClock, Timestamp};
use kiln_core::{Error, Result};
use serde_json::Value;

use crate::handler::{RenderError, RenderItem};
use crate::library::Libraries;
use crate::payload;

type Flight = Shared<BoxFuture<'static, Result<Option<CacheEntry>, Failed>>>;

/// Why a shared render failed, cloneable for every waiter.
#[derive(Debug, Clone)]
enum Failed {
    /// Transient (the renderer or a backend is down): 503.
    Unavailable(String),
    /// The renderer refused: 502 with its message.
    Refused(String),
    /// Anything else.
    Other(String),
}

impl Failed {
    fn of(e: Error) -> Self {
        match e {
            Error::Unavailable { .. } => Failed::Unavailable(e.to_string()),
            Error::Upstream(m) => Failed::Refused(m),
            e => Failed::Other(e.to_string()),
        }
    }

    fn into_error(self, what: String) -> Error {
        match self {
            Failed::Unavailable(msg) => Error::Unavailable {
                what,
                source: msg.into(),
            },
            Failed::Refused(msg) => Error::Upstream(msg),
            Failed::Other(msg) => Error::backend("render", msg),
        }
    }
}

/// What a flight renders: a read's miss (the handler's live item) or given props.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Ask {
    Miss,
    /// The props as JSON text, and the group.
    Props(String, String),
}

/// Renders in flight, by (library, key, what is asked), and recent refusals.
#[derive(Default)]
struct Flights {
    by_key: HashMap<(LibraryName, String, Ask), Flight>,
    /// (library, key) -> until when, and the renderer's message.
    refused: HashMap<(LibraryName, String), (Timestamp, String)>,
}

/// Refusals remembered at most; past it, expired ones are dropped, then all.
const MAX_REFUSED: usize = 10_000;

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
    /// `render_through` renders the key now (single-flight) and returns the stored entry;
    /// a key the renderer refused within `failure_ttl` is that refusal again, without asking.
    /// An unknown library is [`Error::NotFound`].
    pub async fn read(&self, library: &str, key: &str) -> Result<Option<CacheEntry>> {
        let lib = self.inner.libraries.get(library)?;
        if let Some(e) = self.inner.cache.get(&lib.name, key).await? {
            return Ok(Some(e));
        }
        if !lib.settings.render_through {
            return Ok(None);
        }
        let now = self.inner.clock.now();
        let refused = self
            .flights()
            .refused
            .get(&(lib.name.clone(), key.to_string()))
            .filter(|(until, _)| *until > now)
            .map(|(_, msg)| msg.clone());
        if let Some(msg) = refused {
            return Err(Error::Upstream(msg));
        }
        self.fly(&lib.name, key, Ask::Miss, &Value::Null).await
    }

    /// Renders `key` of `group` with `props` now, through the library's renderer, stores it
    /// and returns it (one render per key and props in the process, however many ask). A
    /// renderer that is down queues the render at live priority and is
    /// [`Error::Unavailable`]; one that refuses is [`Error::Upstream`].
    pub async fn render(
        &self,
        library: &str,
        key: &str,
        group: &str,
        props: &Value,
    ) -> Result<CacheEntry> {
        let lib = self.inner.libraries.get(library)?;
        let ask = Ask::Props(props.to_string(), group.to_string());
        let entry = self.fly(&lib.name, key, ask, props).await?;
        entry.ok_or_else(|| Error::not_found(format!("entry {key:?} of library {library}")))
    }

    /// Forgets a remembered refusal of `key` (a write replaced the entry).
    pub(crate) fn forget_refusal(&self, library: &LibraryName, key: &str) {
        self.flights()
            .refused
            .remove(&(library.clone(), key.to_string()));
    }

    /// Joins or starts the flight of `ask` for `key`; `props` are a `Props` ask's own.
    async fn fly(
        &self,
        library: &LibraryName,
        key: &str,
        ask: Ask,
        props: &Value,
    ) -> Result<Option<CacheEntry>> {
        let id = (library.clone(), key.to_string(), ask);
        let flight = self
            .flights()
            .by_key
            .entry(id.clone())
            .or_insert_with(|| {
                let this = self.clone();
                let props = props.clone();
                async move {
                    let (library, key, ask) = &id;
                    let out = match ask {
                        Ask::Miss => this.render_through(library, key).await,
                        Ask::Props(_, group) => {
                            let item = RenderItem {
                                key: key.clone(),
                                group: group.clone(),
                                props,
                            };
                            this.render_item(library, item).await
                        }
                    };
                    let mut flights = this.flights();
                    flights.by_key.remove(&id);
                    match &out {
                        Err(Error::Upstream(msg)) if *ask == Ask::Miss => {
                            this.remember_refusal(&mut flights, library, key, msg)
                        }
                        Ok(Some(_)) => {
                            flights.refused.remove(&(library.clone(), key.clone()));
                        }
                        _ => {}
                    }
                    drop(flights);
                    out.map_err(Failed::of)
                }
                .boxed()
                .shared()
            })
            .clone();
        flight
            .await
            .map_err(|f| f.into_error(format!("library {library}: render of {key:?}")))
    }

    fn remember_refusal(&self, flights: &mut Flights, library: &LibraryName, key: &str, msg: &str) {
        let Ok(lib) = self.inner.libraries.get(library.as_str()) else {
            return;
        };
        let ttl = lib.settings.failure_ttl;
        if ttl.is_zero() {
            return;
        }
        let now = self.inner.clock.now();
        if flights.refused.len() >= MAX_REFUSED {
            flights.refused.retain(|_, (until, _)| *until > now);
            if flights.refused.len() >= MAX_REFUSED {
                flights.refused.clear();
            }
        }
        flights.refused.insert(
            (library.clone(), key.to_string()),
            (now.plus(ttl), msg.to_string()),
        );
    }

    async fn render_through(&self, library: &LibraryName, key: &str) -> Result<Option<CacheEntry>> {
        let lib = self.inner.libraries.get(library.as_str())?;
        let Some(item) = lib.handler.live_item(key).await? else {
            return Ok(None);
        };
        self.render_item(library, item).await
    }

    /// Renders `item` and stores it at the library's live generation; the stored entry.
    async fn render_item(
        &self,
        library: &LibraryName,
        item: RenderItem,
    ) -> Result<Option<CacheEntry>> {
        let lib = self.inner.libraries.get(library.as_str())?;
        let generation = self.live_generation(&lib.name).await?;
        let key = item.key.clone();
        match lib.handler.render(&item.key, &item.props).await {
            Ok(r) => {
                let entry = r.into_entry(item.key, item.group, generation, self.inner.clock.now());
                let outcome = self.inner.cache.put(&lib.name, vec![entry.clone()]).await?;
                if outcome.first() == Some(&PutOutcome::Written) {
                    Ok(Some(entry))
                } else {
                    // A newer entry landed meanwhile: that one is the answer.
                    self.inner.cache.get(&lib.name, &key).await
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
            Err(RenderError::Fail(reason)) => Err(Error::Upstream(reason)),
        }
    }

    /// The generation a live render-through writes at: the library's newest build's.
    pub(crate) async fn live_generation(&self, library: &LibraryName) -> Result<u64> {
        Ok(self
            .inner
            .ledger
            .runs(Some(library), 1)
            .await?
            .first()
            .map_or(0, |r| r.generation))
    }
}
