//! The `Reheat` service: starting runs (generation, fence, floor, marks, the new-build job),
//! finishing them (state and pruning), and their status.

use std::sync::{Arc, Mutex};

use kiln_core::Result;
use kiln_core::ids::{LibraryName, RunId};
use kiln_core::ledger::{BeginRun, Run, RunLedger, RunState};
use kiln_core::queue::{JobQueue, NewJob, Tally, priority};
use kiln_core::render_cache::{PruneScope, RenderCache};
use kiln_core::time::Timestamp;

use crate::config::Prune;
use crate::library::{Libraries, Library};
use crate::payload::{JobPayload, fence_key};
use crate::read::Flights;

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

/// Runs reheats over a runs ledger, a queue and a render cache; cheap to clone.
#[derive(Debug, Clone)]
pub struct Reheat {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) ledger: Arc<dyn RunLedger>,
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) cache: Arc<dyn RenderCache>,
    pub(crate) libraries: Libraries,
    pub(crate) flights: Mutex<Flights>,
}

impl Reheat {
    /// The service over these backends, for these libraries.
    pub fn new(
        ledger: Arc<dyn RunLedger>,
        queue: Arc<dyn JobQueue>,
        cache: Arc<dyn RenderCache>,
        libraries: Libraries,
    ) -> Self {
        Reheat {
            inner: Arc::new(Inner {
                ledger,
                queue,
                cache,
                libraries,
                flights: Mutex::new(Flights::default()),
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

    /// Starts a reheat of `library`: a new generation; for a library-wide run the cache's
    /// floor and the queue's fence move to it, so older runs' jobs are dropped (nothing is
    /// purged); with `prune = { ttl }` the scope's older entries are marked to expire; then
    /// the new-build job is enqueued. An unknown library is [`Error::NotFound`].
    pub async fn start(&self, library: &str, opts: StartOptions) -> Result<Run> {
        let lib = self.inner.libraries.get(library)?;
        let build = match opts.build {
            Some(b) => b,
            None => match lib.handler.default_build().await? {
                Some(b) => b,
                None => format!("manual-{}", Timestamp::now().0),
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
        if run.group.is_none() {
            cache.set_floor(&lib.name, generation).await?;
        }
        queue
            .fence(&fence_key(&lib.name, run.group.as_deref()), generation)
            .await?;
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
                .mark_expiring(&lib.name, &scope, Timestamp::now().plus(ttl))
                .await?;
        }
        let job = JobPayload::NewBuild {
            library: lib.name.to_string(),
            run: run.id.0,
            generation,
            build: run.build.clone(),
            group: run.group.clone(),
        };
        queue
            .enqueue(vec![NewJob {
                payload: job.encode()?,
                priority: priority::NEW_BUILD,
                not_before: None,
                max_attempts: lib.settings.max_attempts,
                run: Some(run.id),
                fence: Some((fence_key(&lib.name, run.group.as_deref()), generation)),
                dedupe: job.dedupe_key(),
            }])
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
    /// Idempotent: workers call it after settling a batch of the run's jobs.
    pub async fn finalize(&self, id: RunId) -> Result<RunState> {
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
