//! The worker runtime: leases batches of jobs, runs them under a concurrency limit, keeps
//! their leases alive, stores render results and acks in batches, retries with backoff,
//! finishes runs, and gives unfinished leases back on shutdown.
//!
//! Shape (from garage): [`Worker::work`] handles one batch and says `Busy` or `Idle`;
//! [`Worker::wait_for_work`] is cancel-safe; [`Worker::run`] drives both until shutdown.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kiln_core::Result;
use kiln_core::backoff::Backoff;
use kiln_core::ids::{JobId, LibraryName, RunId};
use kiln_core::queue::{
    Job, JobQueue, Lease, LeaseOptions, Liveness, NewJob, RetryOptions, RetryOutcome, priority,
};
use kiln_core::render_cache::{CacheEntry, PutOutcome};
use kiln_core::time::Timestamp;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::chain::{self, Position};
use crate::handler::{BuildContext, RenderError, Work};
use crate::library::Library;
use crate::liveness;
use crate::metrics::{BackendCall, Metrics};
use crate::payload::{JobPayload, fence_key};
use crate::reheat::Reheat;

/// Options of a [`Worker`].
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Handler calls (renders, listings) running at once.
    pub concurrency: usize,
    /// New-build and producer jobs running at once: each holds a page of jobs in memory
    /// until it has enqueued them, so this bounds the worker's memory.
    pub producer_concurrency: usize,
    /// Jobs leased per batch.
    pub batch: usize,
    /// Batches in flight at once (one leases while another renders or stores).
    pub lanes: usize,
    /// The lease's visibility timeout; leases are extended every third of it.
    pub visibility: Duration,
    /// Retry delays.
    pub backoff: Backoff,
    /// On shutdown, how long batches in flight may take to finish before their leases are
    /// given back.
    pub shutdown_grace: Duration,
    /// How often expired cache entries are purged (backends without native expiry).
    pub purge_interval: Duration,
    /// How long the worker counts as alive after a heartbeat (it beats five times as often):
    /// when it stops (a crash), other workers reclaim its leases after this long rather than
    /// after the visibility timeout.
    pub liveness: Duration,
    /// Render results held before they are stored: a batch stores what it has as soon as
    /// its results pass this many bytes, so results waiting for the batch's end stay bounded.
    pub put_budget: usize,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 64,
            producer_concurrency: 4,
            batch: 256,
            lanes: 2,
            visibility: Duration::from_secs(30),
            backoff: Backoff::default(),
            shutdown_grace: Duration::from_secs(10),
            purge_interval: Duration::from_secs(60),
            liveness: Duration::from_secs(5),
            put_budget: 64 * 1024 * 1024,
        }
    }
}

/// What [`Worker::work`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// It handled a batch; there may be more.
    Busy,
    /// No job was ready.
    Idle,
}

/// Runs reheat jobs.
#[derive(Debug)]
pub struct Worker {
    reheat: Reheat,
    opts: WorkerOptions,
    metrics: Arc<Metrics>,
    limit: Semaphore,
    producers: Semaphore,
    /// Leases of jobs in flight: extended by the heartbeat, given back on shutdown. A std
    /// mutex: every section is a short map update with no await inside.
    held: Mutex<HashMap<JobId, Lease>>,
    /// This worker in the queue: its leases are reclaimed soon after it stops heartbeating.
    me: Liveness,
}

/// How one job ended, before the batch is settled.
enum Outcome {
    Put {
        lease: Lease,
        run: Option<RunId>,
        library: LibraryName,
        entry: CacheEntry,
    },
    /// A new-build or producer job whose jobs are enqueued.
    Ack { lease: Lease, run: Option<RunId> },
    Retry {
        lease: Lease,
        run: Option<RunId>,
        delay: Duration,
        reason: String,
    },
    Fail {
        lease: Lease,
        run: Option<RunId>,
        reason: String,
    },
}

impl Worker {
    /// A worker over `reheat`'s backends and libraries.
    pub fn new(reheat: Reheat, opts: WorkerOptions) -> Self {
        let opts = WorkerOptions {
            concurrency: opts.concurrency.max(1),
            batch: opts.batch.max(1),
            lanes: opts.lanes.max(1),
            ..opts
        };
        let me = Liveness {
            worker: liveness::worker_id(),
            ttl: opts.liveness.max(Duration::from_millis(100)),
        };
        Worker {
            reheat,
            limit: Semaphore::new(opts.concurrency),
            producers: Semaphore::new(opts.producer_concurrency.max(1)),
            opts,
            metrics: Arc::new(Metrics::default()),
            held: Mutex::new(HashMap::new()),
            me,
        }
    }

    /// The worker's id in the queue.
    pub fn id(&self) -> &str {
        &self.me.worker
    }

    /// The worker's counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    fn queue(&self) -> &Arc<dyn JobQueue> {
        self.reheat.queue()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Lease>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leases one batch and handles it.
    pub async fn work(&self) -> Result<WorkerState> {
        let t = Instant::now();
        let jobs = self
            .queue()
            .lease(&LeaseOptions {
                max_jobs: self.opts.batch,
                visibility: self.opts.visibility,
                worker: Some(self.me.clone()),
            })
            .await?;
        self.metrics.record_backend(BackendCall::Lease, t);
        if jobs.is_empty() {
            return Ok(WorkerState::Idle);
        }
        let leases: Vec<Lease> = jobs.iter().map(|j| j.lease).collect();
        self.held().extend(leases.iter().map(|l| (l.job, *l)));
        let mut running = futures::stream::iter(jobs)
            .map(|job| self.execute(job))
            .buffer_unordered(self.opts.concurrency);
        // Results are stored at the batch's end, or earlier once they pass the put budget:
        // memory stays under `concurrency × max_render_bytes` rendering plus the budget.
        let mut outcomes = Vec::new();
        let mut held_bytes = 0usize;
        let mut settled = Ok(());
        while let Some(o) = running.next().await {
            if let Outcome::Put { entry, .. } = &o {
                held_bytes += entry.bytes.len();
            }
            outcomes.push(o);
            if held_bytes > self.opts.put_budget {
                settled = settled.and(self.settle(std::mem::take(&mut outcomes)).await);
                held_bytes = 0;
            }
        }
        drop(running);
        let settled = settled.and(self.settle(outcomes).await);
        // Settled, or failed to settle (the leases then expire and the jobs come back):
        // either way this worker no longer holds them. A cancelled batch leaves them here
        // for `run` to give back.
        let mut held = self.held();
        for l in &leases {
            held.remove(&l.job);
        }
        drop(held);
        settled.map(|()| WorkerState::Busy)
    }

    /// Returns when work may be ready, or after a second; cancel-safe.
    pub async fn wait_for_work(&self) {
        self.queue().wait_for_work(Duration::from_secs(1)).await
    }

    /// Runs until `shutdown` resolves, then lets batches in flight finish within the grace
    /// period and gives the leases of the rest back.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let stopping = CancellationToken::new();
        // Boxed rather than pinned on the stack, so that dropping it below cancels the
        // batches still in flight (and their renders) before their leases are given back.
        let mut lanes = Box::pin(futures::future::join_all(
            (0..self.opts.lanes).map(|_| self.lane(&stopping)),
        ));
        let background = self.background();
        tokio::pin!(background, shutdown);
        tokio::select! {
            _ = &mut lanes => {}
            _ = &mut background => {}
            () = &mut shutdown => {}
        }
        stopping.cancel();
        tokio::select! {
            _ = tokio::time::timeout(self.opts.shutdown_grace, &mut lanes) => {}
            _ = &mut background => {}
        }
        drop(lanes);
        let leases: Vec<Lease> = self.held().drain().map(|(_, l)| l).collect();
        if !leases.is_empty() {
            let n = self.queue().release(&leases).await?;
            tracing::info!(released = n, "gave leases back on shutdown");
        }
        self.queue().retire(&self.me.worker).await?;
        Ok(())
    }

    async fn lane(&self, stopping: &CancellationToken) {
        while !stopping.is_cancelled() {
            match self.work().await {
                Ok(WorkerState::Busy) => {}
                Ok(WorkerState::Idle) => {
                    tokio::select! {
                        () = self.wait_for_work() => {}
                        () = stopping.cancelled() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "worker batch failed; its jobs come back after the visibility timeout");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = stopping.cancelled() => {}
                    }
                }
            }
        }
    }

    /// The heartbeat (extends held leases) and the periodic purge of expired entries.
    async fn background(&self) {
        let mut beat = tokio::time::interval(self.opts.visibility / 3);
        let mut purge = tokio::time::interval(self.opts.purge_interval);
        let mut alive = tokio::time::interval(liveness::interval(self.me.ttl));
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = alive.tick() => liveness::beat(&**self.queue(), &self.me).await,
                _ = beat.tick() => {
                    let leases: Vec<Lease> = self.held().values().copied().collect();
                    if leases.is_empty() {
                        continue;
                    }
                    if let Err(e) = self.queue().extend(&leases, self.opts.visibility).await {
                        tracing::warn!(error = %e, "heartbeat failed");
                    }
                }
                _ = purge.tick() => {
                    if let Err(e) = self.reheat.cache().purge_expired(Timestamp::now()).await {
                        tracing::warn!(error = %e, "purging expired entries failed");
                    }
                }
            }
        }
    }

    async fn execute(&self, job: Job) -> Outcome {
        let (lease, run) = (job.lease, job.run);
        let payload = match JobPayload::decode(&job.payload) {
            Ok(p) => p,
            Err(e) => {
                return Outcome::Fail {
                    lease,
                    run,
                    reason: e.to_string(),
                };
            }
        };
        if let JobPayload::Invalid { reason, .. } = &payload {
            return Outcome::Fail {
                lease,
                run,
                reason: reason.clone(),
            };
        }
        let lib = match self.reheat.libraries().get(payload.library()) {
            Ok(l) => l,
            Err(e) => {
                return Outcome::Fail {
                    lease,
                    run,
                    reason: e.to_string(),
                };
            }
        };
        // Permits bound producers and handler calls across lanes; the semaphores are never
        // closed, so acquiring cannot fail.
        let _producer = match payload {
            JobPayload::NewBuild { .. } | JobPayload::Producer { .. } => {
                self.producers.acquire().await.ok()
            }
            _ => None,
        };
        let Ok(_permit) = self.limit.acquire().await else {
            return Outcome::Retry {
                lease,
                run,
                delay: Duration::ZERO,
                reason: "worker stopping".into(),
            };
        };
        match payload {
            JobPayload::Render {
                generation,
                group,
                key,
                props,
                ..
            } => {
                let started = Instant::now();
                let result = lib.handler.render(&key, &props).await;
                self.metrics
                    .record_render(started.elapsed(), result.is_ok());
                match result {
                    // Declarative renderers stop reading at the cap; this holds any handler to it.
                    Ok(r) if r.bytes.len() > lib.settings.max_render_bytes => Outcome::Fail {
                        lease,
                        run,
                        reason: format!(
                            "library {}: the render of {key:?} is {} bytes, more than {} \
                             (max_render_bytes)",
                            lib.name,
                            r.bytes.len(),
                            lib.settings.max_render_bytes
                        ),
                    },
                    Ok(r) => Outcome::Put {
                        lease,
                        run,
                        library: lib.name.clone(),
                        entry: CacheEntry {
                            key,
                            bytes: r.bytes,
                            content_type: r.content_type,
                            generation,
                            group,
                            written_at: Timestamp::now(),
                            expires_at: None,
                        },
                    },
                    Err(RenderError::Retry { after, reason }) => {
                        let delay = self
                            .opts
                            .backoff
                            .delay(job.attempt)
                            .max(after.unwrap_or_default());
                        Outcome::Retry {
                            lease,
                            run,
                            delay,
                            reason: format!("library {}: {reason}", lib.name),
                        }
                    }
                    Err(RenderError::Fail(reason)) => Outcome::Fail {
                        lease,
                        run,
                        reason: format!("library {}: {reason}", lib.name),
                    },
                }
            }
            JobPayload::NewBuild {
                run: run_id,
                generation,
                build,
                group,
                ..
            } => {
                let ctx = self.context(lib, run_id, generation, build, group);
                let out = lib.handler.new_build(&ctx).await;
                self.spawned(lib, &ctx, &job, None, out).await
            }
            JobPayload::Producer {
                run: run_id,
                generation,
                group,
                cursor,
                page,
                mark,
                ..
            } => {
                let ctx = self.context(lib, run_id, generation, String::new(), group);
                let out = lib.handler.produce(&ctx, &cursor).await;
                let at = Position {
                    page,
                    cursor: &cursor,
                    mark: mark.as_ref(),
                };
                self.spawned(lib, &ctx, &job, Some(at), out).await
            }
            JobPayload::Invalid { .. } => Outcome::Fail {
                lease,
                run,
                reason: "invalid job".into(),
            },
        }
    }

    fn context(
        &self,
        lib: &Library,
        run: i64,
        generation: u64,
        build: String,
        group: Option<String>,
    ) -> BuildContext {
        BuildContext {
            library: lib.name.clone(),
            run: RunId(run),
            generation,
            build,
            group,
            page_size: lib.settings.page_size,
        }
    }

    /// Enqueues the jobs a new-build or producer job (the latter at `at` in its listing)
    /// asked for, before the job is acked so a run never looks settled while it has work
    /// left, or turns its error into a retry or a permanent failure. Each job carries its
    /// dedupe key, so a redelivered job creates nothing twice; a listing past `max_pages`
    /// or one that cycles fails the job.
    async fn spawned(
        &self,
        lib: &Library,
        ctx: &BuildContext,
        job: &Job,
        at: Option<Position<'_>>,
        out: Result<Vec<Work>>,
    ) -> Outcome {
        let (lease, run) = (job.lease, job.run);
        let work = match out {
            Ok(w) => w,
            Err(e) if e.is_transient() => {
                let delay = self.opts.backoff.delay(job.attempt);
                return Outcome::Retry {
                    lease,
                    run,
                    delay,
                    reason: e.to_string(),
                };
            }
            Err(e) => {
                return Outcome::Fail {
                    lease,
                    run,
                    reason: e.to_string(),
                };
            }
        };
        let fence = Some((fence_key(&lib.name, ctx.group.as_deref()), ctx.generation));
        let producers = work
            .iter()
            .filter(|w| matches!(w, Work::Producer { .. }))
            .count() as u64;
        if producers > lib.settings.max_pages {
            return Outcome::Fail {
                lease,
                run,
                reason: format!(
                    "library {}: one job asked for {producers} producer jobs, more than the \
                     {} pages a listing may have (max_pages)",
                    lib.name, lib.settings.max_pages
                ),
            };
        }
        let mut payloads = Vec::with_capacity(work.len());
        for w in work {
            payloads.push(match w {
                Work::Producer { cursor } => {
                    let (page, mark) = match chain::follow(at, &cursor, lib.settings.max_pages) {
                        Ok(next) => next,
                        Err(why) => {
                            return Outcome::Fail {
                                lease,
                                run,
                                reason: format!("library {}: {why}", lib.name),
                            };
                        }
                    };
                    (
                        JobPayload::Producer {
                            library: lib.name.to_string(),
                            run: ctx.run.0,
                            generation: ctx.generation,
                            group: ctx.group.clone(),
                            cursor,
                            page,
                            mark: Some(mark),
                        },
                        priority::PRODUCER,
                    )
                }
                Work::Render(item) => (
                    JobPayload::Render {
                        library: lib.name.to_string(),
                        run: Some(ctx.run.0),
                        generation: ctx.generation,
                        group: item.group,
                        key: item.key,
                        props: item.props,
                    },
                    priority::RENDER,
                ),
            });
        }
        let jobs = payloads
            .into_iter()
            .map(|(payload, prio)| {
                let dedupe = payload.dedupe_key();
                // An oversized job is enqueued as an `Invalid` marker instead: it becomes a
                // dead letter naming the key and the size, and the rest of the page goes on.
                let bytes = payload.encode().or_else(|e| {
                    JobPayload::Invalid {
                        library: lib.name.to_string(),
                        what: payload.describe(),
                        reason: e.to_string(),
                    }
                    .encode()
                });
                bytes.map(|payload| NewJob {
                    payload,
                    priority: prio,
                    not_before: None,
                    max_attempts: lib.settings.max_attempts,
                    run: Some(ctx.run),
                    fence: fence.clone(),
                    dedupe,
                })
            })
            .collect::<Result<Vec<_>>>();
        let jobs = match jobs {
            Ok(jobs) => jobs,
            Err(e) => {
                return Outcome::Fail {
                    lease,
                    run,
                    reason: e.to_string(),
                };
            }
        };
        if jobs.is_empty() {
            return Outcome::Ack { lease, run };
        }
        match self.queue().enqueue(jobs).await {
            Ok(_) => Outcome::Ack { lease, run },
            Err(e) => Outcome::Retry {
                lease,
                run,
                delay: self.opts.backoff.delay(job.attempt),
                reason: format!("enqueueing its jobs: {e}"),
            },
        }
    }

    /// Stores, acks, retries and fails a batch's outcomes, in that order (a job is
    /// acked only once its result is stored or its jobs are enqueued), then finishes runs.
    async fn settle(&self, outcomes: Vec<Outcome>) -> Result<()> {
        let mut runs = BTreeSet::new();
        let mut puts: HashMap<LibraryName, (Vec<Lease>, Vec<CacheEntry>)> = HashMap::new();
        let mut to_ack = Vec::new();
        let mut retries = Vec::new();
        let mut fails = Vec::new();
        for o in outcomes {
            match o {
                Outcome::Put {
                    lease,
                    run,
                    library,
                    entry,
                } => {
                    runs.extend(run);
                    let slot = puts.entry(library).or_default();
                    slot.0.push(lease);
                    slot.1.push(entry);
                }
                Outcome::Ack { lease, run } => {
                    runs.extend(run);
                    to_ack.push(lease);
                }
                Outcome::Retry {
                    lease,
                    run,
                    delay,
                    reason,
                } => {
                    runs.extend(run);
                    retries.push((lease, delay, reason));
                }
                Outcome::Fail { lease, run, reason } => {
                    runs.extend(run);
                    fails.push((lease, reason));
                }
            }
        }
        for (library, (leases, entries)) in puts {
            let t = Instant::now();
            let outcomes = self.reheat.cache().put(&library, entries).await?;
            self.metrics.record_backend(BackendCall::Put, t);
            let stale = outcomes.iter().filter(|o| **o == PutOutcome::Stale).count();
            self.metrics.add_stale(stale as u64);
            to_ack.extend(leases);
        }
        if !to_ack.is_empty() {
            let t = Instant::now();
            let acked = self.queue().ack(&to_ack).await?;
            self.metrics.record_backend(BackendCall::Ack, t);
            self.metrics.add_done(acked);
            self.metrics
                .add_lost(to_ack.len() as u64 - acked.min(to_ack.len() as u64));
        }
        for (lease, delay, reason) in retries {
            tracing::debug!(job = %lease.job, %reason, "retrying");
            match self
                .queue()
                .retry(
                    lease,
                    RetryOptions {
                        delay,
                        error: reason,
                    },
                )
                .await?
            {
                RetryOutcome::Retrying => self.metrics.add_retried(),
                RetryOutcome::Dead => self.metrics.add_dead(),
                RetryOutcome::LeaseLost => self.metrics.add_lost(1),
            }
        }
        for (lease, reason) in fails {
            tracing::warn!(job = %lease.job, %reason, "job failed permanently");
            if self.queue().fail(lease, &reason).await? {
                self.metrics.add_dead();
            } else {
                self.metrics.add_lost(1);
            }
        }
        let t = Instant::now();
        for run in runs {
            if let Err(e) = self.reheat.finalize(run).await {
                tracing::warn!(%run, error = %e, "finishing the run failed");
            }
        }
        self.metrics.record_backend(BackendCall::Finalize, t);
        Ok(())
    }
}
