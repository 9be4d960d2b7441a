//! The `Reheat` service: starting runs (generation, fence, floor, marks, the new-build job),
//! finishing them (state and pruning), their status and waiting for them; reads go to the
//! [`ReadThrough`] it composes.

use std::sync::Arc;
use std::time::Duration;

use kiln_core::Result;
use kiln_core::ids::RunId;
use kiln_core::ledger::{BeginRun, Run, RunLedger, RunState};
use kiln_core::queue::{JobQueue, Tally};
use kiln_core::render_cache::{CacheEntry, PruneScope, RenderCache};
use kiln_core::time::SharedClock;

use crate::config::Prune;
use crate::library::{Libraries, Library};
use crate::payload::{RunJobs, fence_key};
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

/// A run with its job counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStatus {
    /// The run.
    pub run: Run,
    /// Its tallies.
    pub tally: Tally,
}

/// How often [`Reheat::wait`] looks at its run.
const WAIT_POLL: Duration = Duration::from_millis(100);

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

    /// Starts a reheat of `library`: a new generation; for a library-wide run the cache's
    /// floor and the queue's fence move to it, so older runs' jobs are dropped (nothing is
    /// purged); with `prune = { ttl }` the scope's older entries are marked to expire; then
    /// the new-build job is enqueued. An unknown library is
    /// [`Error::NotFound`](kiln_core::Error::NotFound).
    pub async fn start(&self, library: &str, opts: StartOptions) -> Result<Run> {
        let lib = self.inner.libraries.get(library)?;
        let build = match opts.build {
            Some(b) => b,
            None => match lib.handler.default_build().await? {
                Some(b) => b,
                None => format!("manual-{}", self.inner.clock.now().0),
            },
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
        match self.prepare(lib, &run).await {
            Ok(()) => Ok(run),
            Err(e) => {
                // The run has no job that could ever finish it: close it now.
                let _ = self.inner.ledger.finish_run(run.id, RunState::Failed).await;
                Err(e)
            }
        }
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
                ledger.finish_run(old.id, RunState::Superseded).await?;
            }
        }
        if let Prune::Ttl(ttl) = lib.settings.prune {
            let scope = PruneScope {
                group: run.group.clone(),
                below_generation: generation,
            };
            cache
                .mark_expiring(&lib.name, &scope, self.inner.clock.now().plus(ttl))
                .await?;
        }
        queue
            .enqueue(vec![jobs.new_build(run.build.clone())?])
            .await?;
        Ok(())
    }

    /// A run and its tallies.
    pub async fn status(&self, run: RunId) -> Result<RunStatus> {
        let run = self.inner.ledger.run(run).await?;
        let tally = self.inner.queue.tally(run.id).await?;
        Ok(RunStatus { run, tally })
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
        let state = if tally.dropped > 0 {
            RunState::Superseded
        } else if tally.dead > 0 {
            RunState::Failed
        } else {
            let lib = self.inner.libraries.get(run.library.as_str())?;
            if lib.settings.prune == Prune::OnComplete {
                let scope = PruneScope {
                    group: run.group.clone(),
                    below_generation: run.generation,
                };
                let swept = cache.sweep(&run.library, &scope).await?;
                tracing::info!(run = %id, library = %run.library, swept, "run complete");
            }
            RunState::Complete
        };
        ledger.finish_run(id, state).await?;
        Ok(ledger.run(id).await?.state)
    }

    /// Waits until run `run` is no longer running, calling `on_progress` with its status
    /// every 100 ms and once at the end, and returns the final status. A run whose jobs
    /// are all settled is finished here (finishing is idempotent), so that waiting does
    /// not depend on a worker having done it.
    pub async fn wait(
        &self,
        run: RunId,
        mut on_progress: impl FnMut(&RunStatus),
    ) -> Result<RunStatus> {
        loop {
            let s = self.status(run).await?;
            on_progress(&s);
            if s.run.state != RunState::Running {
                return Ok(s);
            }
            if s.tally.pending() == 0 {
                self.finalize(run).await?;
                continue;
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }
}
