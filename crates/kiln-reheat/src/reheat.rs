//! The `Reheat` service: starting runs (generation, fence, floor, marks, the new-build job),
//! finishing them (state and pruning) and their status (waiting for them is `wait`); the
//! render cache as a service (writes, deletes, listings, soft invalidation); reads and
//! renders go to the [`ReadThrough`] it composes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kiln_core::ids::RunId;
use kiln_core::ledger::{BeginRun, Run, RunLedger, RunState, RunStats};
use kiln_core::queue::{JobQueue, Tally};
use kiln_core::render_cache::{CacheEntry, PruneScope, RenderCache};
use kiln_core::render_cache::{KeyPage, ListQuery, Meta, PutOutcome, StaleScope};
use kiln_core::time::SharedClock;
use kiln_core::{Error, Result};
use serde_json::Value;

use crate::config::Prune;
use crate::library::{Libraries, Library};
use crate::payload::{self, RunJobs, fence_key};
use crate::read::ReadThrough;

/// Options of [`Reheat::start`].
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// The build's label; by default the handler's (a course's current version) or
    /// `manual-<unix ms>`.
    pub build: Option<String>,
    /// Rewrite one producer group only.
    pub group: Option<String>,
}

/// A run with its job counts and stats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStatus {
    /// The run.
    pub run: Run,
    /// Its tallies.
    pub tally: Tally,
    /// Its render latency, failures by reason and entries pruned.
    pub stats: RunStats,
}

impl RunStatus {
    /// The run's wall time: start to finish, or to `now` while it runs.
    pub fn wall_time(&self, now: kiln_core::time::Timestamp) -> Duration {
        let end = self.run.finished_at.unwrap_or(now);
        Duration::from_millis((end.0 - self.run.created_at.0).max(0) as u64)
    }
}

/// An entry written through [`Reheat::put`] (the cache's `PUT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutEntry {
    /// The bytes.
    pub bytes: Bytes,
    /// Their media type.
    pub content_type: String,
    /// The producer group (empty for none).
    pub group: String,
    /// Expire it this long after the write.
    pub ttl: Option<Duration>,
    /// Named values stored beside it.
    pub meta: Meta,
}

/// What [`Reheat::invalidate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidated {
    /// Live entries marked stale.
    pub marked: u64,
    /// Keys queued for a re-render at live priority (a key scope).
    pub queued: u64,
    /// The run that re-renders a group or the library.
    pub run: Option<Run>,
}

/// When a run of a `prune = { ttl }` library marks its scope's older entries to expire:
/// its start plus the TTL, so that cancelling it can clear exactly those marks.
fn mark_time(run: &Run, ttl: Duration) -> kiln_core::time::Timestamp {
    run.created_at.plus(ttl)
}

/// A latency bucket's bound in seconds as milliseconds for JSON (`None` for the open
/// bucket above every bound).
pub fn seconds_to_ms(s: f64) -> Option<f64> {
    s.is_finite().then_some(s * 1000.0)
}

/// Runs reheats over a runs ledger, a queue and a render cache; cheap to clone.
#[derive(Debug, Clone)]
pub struct Reheat {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ledger: Arc<dyn RunLedger>,
    queue: Arc<dyn JobQueue>,
    cache: Arc<dyn RenderCache>,
    libraries: Libraries,
    clock: SharedClock,
    reader: ReadThrough,
}

impl Reheat {
    /// The service over these backends, for these libraries, reading the time (build
    /// labels, expiry marks, entries' write times) from `clock`: `SystemClock::shared()`
    /// in production.
    pub fn new(
        ledger: Arc<dyn RunLedger>,
        queue: Arc<dyn JobQueue>,
        cache: Arc<dyn RenderCache>,
        libraries: Libraries,
        clock: SharedClock,
    ) -> Self {
        let reader = ReadThrough::new(
            ledger.clone(),
            queue.clone(),
            cache.clone(),
            libraries.clone(),
            clock.clone(),
        );
        Reheat {
            inner: Arc::new(Inner {
                ledger,
                queue,
                cache,
                libraries,
                clock,
                reader,
            }),
        }
    }

    /// The runs ledger.
    pub fn ledger(&self) -> &Arc<dyn RunLedger> {
        &self.inner.ledger
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn JobQueue> {
        &self.inner.queue
    }

    /// The render cache.
    pub fn cache(&self) -> &Arc<dyn RenderCache> {
        &self.inner.cache
    }

    /// The libraries.
    pub fn libraries(&self) -> &Libraries {
        &self.inner.libraries
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// The entry of `key`, rendering through on a miss where the library allows it: see
    /// [`ReadThrough::read`].
    pub async fn read(&self, library: &str, key: &str) -> Result<Option<CacheEntry>> {
        self.inner.reader.read(library, key).await
    }

    /// Renders `key` of `group` with `props` now and stores it: see [`ReadThrough::render`].
    pub async fn render(
        &self,
        library: &str,
        key: &str,
        group: &str,
        props: &Value,
    ) -> Result<CacheEntry> {
        self.inner.reader.render(library, key, group, props).await
    }

    /// Writes `key` at the library's live generation (its newest build's), as a renderer
    /// that renders by itself would; the stored entry. A newer entry already stored (a
    /// build that started after the write was decided) is [`Error::Precondition`].
    pub async fn put(&self, library: &str, key: &str, put: PutEntry) -> Result<CacheEntry> {
        let lib = self.inner.libraries.get(library)?;
        let now = self.inner.clock.now();
        let generation = self.inner.reader.live_generation(&lib.name).await?;
        let entry = CacheEntry {
            key: key.to_string(),
            bytes: put.bytes,
            content_type: put.content_type,
            generation,
            group: put.group,
            written_at: now,
            expires_at: put.ttl.map(|t| now.plus(t)),
            meta: put.meta,
            stale: false,
        };
        let outcome = self.inner.cache.put(&lib.name, vec![entry.clone()]).await?;
        if outcome.first() != Some(&PutOutcome::Written) {
            return Err(Error::Precondition(format!(
                "entry {key:?} of library {library}: a newer generation than {generation} \
                 is stored"
            )));
        }
        self.inner.reader.forget_refusal(&lib.name, key);
        Ok(entry)
    }

    /// Deletes `key`; whether a live entry was there.
    pub async fn delete(&self, library: &str, key: &str) -> Result<bool> {
        let lib = self.inner.libraries.get(library)?;
        let gone = self.inner.cache.delete(&lib.name, key).await?;
        self.inner.reader.forget_refusal(&lib.name, key);
        Ok(gone)
    }

    /// A page of the library's live entries.
    pub async fn list(&self, library: &str, query: &ListQuery) -> Result<KeyPage> {
        let lib = self.inner.libraries.get(library)?;
        self.inner.cache.list(&lib.name, query).await
    }

    /// The library's live entries per producer group.
    pub async fn group_counts(&self, library: &str) -> Result<Vec<(String, u64)>> {
        let lib = self.inner.libraries.get(library)?;
        self.inner.cache.group_counts(&lib.name).await
    }

    /// Soft invalidation: marks the scope's entries stale (reads keep getting them, marked)
    /// and re-renders them: each key of a key scope at live priority (with the handler's
    /// live item, in the stored entry's group), a group or the library as a run of its own
    /// (which replaces the marked entries as it goes and prunes what it no longer produces).
    pub async fn invalidate(&self, library: &str, scope: StaleScope) -> Result<Invalidated> {
        let lib = self.inner.libraries.get(library)?;
        let marked = self.inner.cache.mark_stale(&lib.name, &scope).await?;
        let (queued, run) = match scope {
            StaleScope::Keys(keys) => {
                let generation = self.inner.reader.live_generation(&lib.name).await?;
                let mut jobs = Vec::with_capacity(keys.len());
                for key in keys {
                    let Some(mut item) = lib.handler.live_item(&key).await? else {
                        continue;
                    };
                    if let Some(e) = self.inner.cache.get(&lib.name, &key).await? {
                        item.group = e.group;
                    }
                    jobs.push(payload::live_render(lib, generation, item)?);
                }
                let queued = jobs.len() as u64;
                self.inner.queue.enqueue(jobs).await?;
                (queued, None)
            }
            StaleScope::Group(g) => {
                let opts = StartOptions {
                    build: None,
                    group: Some(g),
                };
                (0, Some(self.start(library, opts).await?))
            }
            StaleScope::Library => (0, Some(self.start(library, StartOptions::default()).await?)),
        };
        Ok(Invalidated {
            marked,
            queued,
            run,
        })
    }

    /// Starts a reheat of `library`: a new generation; for a library-wide run the cache's
    /// floor and the queue's fence move to it, so older runs' jobs are dropped (nothing is
    /// purged); with `prune = { ttl }` the scope's older entries are marked to expire; then
    /// the new-build job is enqueued. An unknown library is
    /// [`Error::NotFound`](kiln_core::Error::NotFound).
    pub async fn start(&self, library: &str, opts: StartOptions) -> Result<Run> {
        let lib = self.inner.libraries.get(library)?;
        self.check_ttl(lib).await?;
        let build = match opts.build {
            Some(b) => b,
            None => match lib.handler.default_build().await? {
                Some(b) => b,
                None => format!("manual-{}", self.inner.clock.now().0),
            },
        };
        // A library-wide run supersedes every running run in `begin_run`: note them first,
        // to send their events (two starts at once may both send one for the same run).
        let running: Vec<RunId> = if opts.group.is_none() && lib.settings.webhook.is_some() {
            let runs = self.inner.ledger.runs(Some(&lib.name), 1000).await?;
            runs.into_iter()
                .filter(|r| r.state == RunState::Running)
                .map(|r| r.id)
                .collect()
        } else {
            Vec::new()
        };
        let run = self
            .inner
            .ledger
            .begin_run(
                &lib.name,
                BeginRun {
                    build,
                    group: opts.group.clone(),
                },
            )
            .await?;
        for id in running {
            if self.inner.ledger.run(id).await?.state == RunState::Superseded {
                self.emit(lib, id).await;
            }
        }
        match self.prepare(lib, &run).await {
            Ok(()) => Ok(run),
            Err(e) => {
                // The run has no job that could ever finish it: close it now.
                if let Ok(true) = self.inner.ledger.finish_run(run.id, RunState::Failed).await {
                    self.emit(lib, run.id).await;
                }
                Err(e)
            }
        }
    }

    /// Refuses a run of a `prune = { ttl }` library whose TTL is shorter than its last
    /// complete run took: its entries would expire before the run re-rendered them, and
    /// reads would miss (a 5 s TTL on a 28 s reheat made half of all reads miss).
    async fn check_ttl(&self, lib: &Library) -> Result<()> {
        let Prune::Ttl(ttl) = lib.settings.prune else {
            return Ok(());
        };
        let runs = self.inner.ledger.runs(Some(&lib.name), 20).await?;
        let last = runs.iter().find_map(|r| match (r.state, r.finished_at) {
            (RunState::Complete, Some(end)) if r.group.is_none() => Some((r, end)),
            _ => None,
        });
        let Some((run, end)) = last else {
            return Ok(());
        };
        let took = Duration::from_millis((end.0 - run.created_at.0).max(0) as u64);
        if ttl < took {
            return Err(Error::Precondition(format!(
                "library {}: prune.ttl {} is shorter than its last run took ({:.1} s, run {}): \
                 entries would expire before they are re-rendered and reads would miss; raise \
                 prune.ttl well above it (e.g. {:.0} s) or use prune = \"on-complete\"",
                lib.name,
                humantime::format_duration(ttl),
                took.as_secs_f64(),
                run.id,
                took.as_secs_f64().ceil() * 2.0,
            )));
        }
        Ok(())
    }

    async fn prepare(&self, lib: &Library, run: &Run) -> Result<()> {
        let (ledger, queue, cache) = (&self.inner.ledger, &self.inner.queue, &self.inner.cache);
        let generation = run.generation;
        let jobs = RunJobs::new(lib, run.id, generation, run.group.clone());
        if run.group.is_none() {
            cache.set_floor(&lib.name, generation).await?;
        }
        let (fence, generation) = jobs.fence();
        queue.fence(&fence, generation).await?;
        // Older running runs that this one overrides: a library-wide run overrides all of
        // them (its floor refuses their writes), a group run those of its group. Their jobs
        // are fenced and they are closed here, since no job of theirs will finish them.
        for old in ledger.runs(Some(&lib.name), 1000).await? {
            let overridden = old.id != run.id
                && old.state == RunState::Running
                && old.generation < generation
                && (run.group.is_none() || old.group == run.group);
            if overridden {
                if old.group.is_some() {
                    queue
                        .fence(&fence_key(&lib.name, old.group.as_deref()), generation)
                        .await?;
                }
                if ledger.finish_run(old.id, RunState::Superseded).await? {
                    self.emit(lib, old.id).await;
                }
            }
        }
        if let Prune::Ttl(ttl) = lib.settings.prune {
            let scope = PruneScope {
                group: run.group.clone(),
                below_generation: generation,
            };
            let marked = cache
                .mark_expiring(&lib.name, &scope, mark_time(run, ttl))
                .await?;
            let pruned = RunStats {
                pruned: marked,
                ..RunStats::default()
            };
            ledger.add_run_stats(run.id, &pruned).await?;
        }
        queue
            .enqueue(vec![jobs.new_build(run.build.clone())?])
            .await?;
        Ok(())
    }

    /// Cancels a running run: its pending jobs are dropped (fenced at the generation after
    /// its own, so a later run is not touched), it is closed as `Cancelled`, and nothing is
    /// pruned: with `prune = { ttl }` the expiry marks it set on older entries are cleared.
    /// A run that is not running is [`Error::Precondition`].
    pub async fn cancel(&self, id: RunId) -> Result<RunStatus> {
        let run = self.inner.ledger.run(id).await?;
        if run.state != RunState::Running {
            return Err(Error::Precondition(format!(
                "run {id} is {}, not running",
                run.state.as_str()
            )));
        }
        let lib = self.inner.libraries.get(run.library.as_str())?;
        self.inner
            .queue
            .fence(
                &fence_key(&lib.name, run.group.as_deref()),
                run.generation + 1,
            )
            .await?;
        if !self
            .inner
            .ledger
            .finish_run(id, RunState::Cancelled)
            .await?
        {
            // It ended meanwhile (its last job settled first): report that state.
            return self.status(id).await;
        }
        if let Prune::Ttl(ttl) = lib.settings.prune {
            let scope = PruneScope {
                group: run.group.clone(),
                below_generation: run.generation,
            };
            let cleared = self
                .inner
                .cache
                .clear_marks(&lib.name, &scope, mark_time(&run, ttl))
                .await?;
            tracing::info!(run = %id, library = %run.library, cleared, "run cancelled");
        }
        self.emit(lib, id).await;
        self.status(id).await
    }

    /// Queues the event of run `id`'s end for `lib`'s webhook, if it has one: called by the
    /// one caller whose `finish_run` closed the run, so each end is sent once (and retried
    /// by the queue until delivered). A failure to queue it is logged, not returned: the
    /// run has ended either way.
    async fn emit(&self, lib: &Library, id: RunId) {
        if lib.settings.webhook.is_none() {
            return;
        }
        let queued = async {
            let s = self.status(id).await?;
            let event = format!("run.{}", s.run.state.as_str());
            let body = serde_json::json!({
                "event": event,
                "run": s.run.id.0,
                "library": s.run.library.as_str(),
                "build": s.run.build,
                "generation": s.run.generation,
                "group": s.run.group,
                "state": s.run.state.as_str(),
                "created_at": s.run.created_at.0,
                "finished_at": s.run.finished_at.map(|t| t.0),
                "wall_ms": s.run.finished_at.map(|t| (t.0 - s.run.created_at.0).max(0)),
                "jobs_enqueued": s.tally.enqueued,
                "jobs_done": s.tally.done,
                "jobs_failed": s.tally.failed,
                "jobs_dead": s.tally.dead,
                "jobs_dropped": s.tally.dropped,
                "pruned": s.stats.pruned,
                "renders": s.stats.renders(),
                "render_p50_ms": s.stats.latency_quantile(0.5).and_then(seconds_to_ms),
                "render_p99_ms": s.stats.latency_quantile(0.99).and_then(seconds_to_ms),
                "failures": s.stats.failures,
            });
            if let Some(job) = payload::event(lib, &event, body)? {
                self.inner.queue.enqueue(vec![job]).await?;
            }
            Ok::<(), Error>(())
        };
        if let Err(e) = queued.await {
            tracing::warn!(run = %id, library = %lib.name, "queueing the run's webhook: {e}");
        }
    }

    /// Pauses `library`: no worker leases its runs' jobs until [`Reheat::resume`] (jobs
    /// already leased finish; live renders and run events go on). Its runs stay running.
    /// Whether it was running before (false: it was paused already).
    pub async fn pause(&self, library: &str) -> Result<bool> {
        let was = self.is_paused(library).await?;
        self.inner.queue.pause(library).await?;
        Ok(!was)
    }

    /// Resumes a paused `library`; whether it was paused.
    pub async fn resume(&self, library: &str) -> Result<bool> {
        let lib = self.inner.libraries.get(library)?;
        self.inner.queue.resume(lib.name.as_str()).await
    }

    /// Whether `library` is paused.
    pub async fn is_paused(&self, library: &str) -> Result<bool> {
        let lib = self.inner.libraries.get(library)?;
        Ok(self
            .inner
            .queue
            .paused()
            .await?
            .iter()
            .any(|l| l == lib.name.as_str()))
    }

    /// A run and its tallies.
    pub async fn status(&self, run: RunId) -> Result<RunStatus> {
        let run = self.inner.ledger.run(run).await?;
        let tally = self.inner.queue.tally(run.id).await?;
        let stats = self.inner.ledger.run_stats(run.id).await?;
        Ok(RunStatus { run, tally, stats })
    }

    /// Finishes a running run whose jobs are all settled, and returns its state: dropped
    /// jobs mean a newer build fenced it (`Superseded`); dead letters make it `Failed`
    /// without pruning, since pruning would delete entries whose re-render failed; else
    /// `prune = "on-complete"` sweeps the scope's older entries and it is `Complete`.
    /// Idempotent: workers call it after settling a batch of the run's jobs, and
    /// [`Reheat::wait`] when it sees every job settled.
    pub(crate) async fn finalize(&self, id: RunId) -> Result<RunState> {
        let (ledger, queue, cache) = (&self.inner.ledger, &self.inner.queue, &self.inner.cache);
        // The tally first: it is the cheap check that fails on almost every call.
        let tally = queue.tally(id).await?;
        if tally.pending() > 0 {
            return Ok(RunState::Running);
        }
        let run = ledger.run(id).await?;
        if run.state != RunState::Running {
            return Ok(run.state);
        }
        let lib = self.inner.libraries.get(run.library.as_str())?;
        let state = if tally.dropped > 0 {
            RunState::Superseded
        } else if tally.dead > 0 {
            RunState::Failed
        } else {
            if lib.settings.prune == Prune::OnComplete {
                let scope = PruneScope {
                    group: run.group.clone(),
                    below_generation: run.generation,
                };
                let swept = cache.sweep(&run.library, &scope).await?;
                tracing::info!(run = %id, library = %run.library, swept, "run complete");
                let stats = RunStats {
                    pruned: swept,
                    ..RunStats::default()
                };
                ledger.add_run_stats(id, &stats).await?;
            }
            RunState::Complete
        };
        if ledger.finish_run(id, state).await? {
            self.emit(lib, id).await;
        }
        Ok(ledger.run(id).await?.state)
    }
}
