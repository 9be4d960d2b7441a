//! The worker runtime: leases batches of jobs, runs them under a concurrency limit, keeps
//! their leases alive, stores render results and acks in batches, retries with backoff,
//! finishes runs, and gives unfinished leases back on shutdown.
//!
//! Shape (from garage): [`Worker::work`] handles one batch and says `Busy` or `Idle`;
//! [`Worker::wait_for_work`] is cancel-safe; [`Worker::run`] drives both until shutdown.
//!
//! This file is the runtime (batches, lanes, heartbeat, shutdown). One job is run in
//! `execute` (decoding, permits, render jobs) and `spawn` (new-build and producer jobs:
//! the jobs they ask for); each ends as an `Outcome` (lease, run, action), and `outcome`
//! settles a batch of them, adding to the runs' stats before the acks (`stats`). A batch
//! that a backend outage kept from settling gives its leases back (`give_back`).

mod execute;
mod give_back;
mod outcome;
mod spawn;
mod stats;

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kiln_core::Result;
use kiln_core::backoff::Backoff;
use kiln_core::ids::JobId;
use kiln_core::queue::{JobQueue, Lease, LeaseOptions, Liveness};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::liveness;
use crate::metrics::{BackendCall, Metrics};
use crate::reheat::Reheat;

use self::outcome::Action;

/// Options of a [`Worker`].
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Handler calls (renders, listings) running at once.
    pub concurrency: NonZeroUsize,
    /// New-build and producer jobs running at once: each holds a page of jobs in memory
    /// until it has enqueued them, so this bounds the worker's memory.
    pub producer_concurrency: NonZeroUsize,
    /// Jobs leased per batch.
    pub batch: NonZeroUsize,
    /// Batches in flight at once (one leases while another renders or stores).
    pub lanes: NonZeroUsize,
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

/// `n`, known not to be zero.
fn nonzero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("a non-zero constant")
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: nonzero(64),
            producer_concurrency: nonzero(4),
            batch: nonzero(256),
            lanes: nonzero(2),
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
    /// A library's limits held its jobs back: lease again after this long.
    Throttled(Duration),
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
    /// Its libraries' throttle keys and limits, named by every lease.
    throttles: Vec<kiln_core::throttle::Throttle>,
}

impl Worker {
    /// A worker over `reheat`'s backends and libraries, reading the time from its clock.
    pub fn new(reheat: Reheat, opts: WorkerOptions) -> Self {
        let me = Liveness {
            worker: liveness::worker_id(),
            ttl: opts.liveness.max(Duration::from_millis(100)),
        };
        Worker {
            throttles: reheat.libraries().throttles(),
            reheat,
            limit: Semaphore::new(opts.concurrency.get()),
            producers: Semaphore::new(opts.producer_concurrency.get()),
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
        let leased = self
            .queue()
            .lease(&LeaseOptions {
                max_jobs: self.opts.batch,
                visibility: self.opts.visibility,
                worker: Some(self.me.clone()),
                throttles: self.throttles.clone(),
            })
            .await?;
        self.metrics.record_backend(BackendCall::Lease, t);
        let jobs = leased.jobs;
        if jobs.is_empty() {
            return Ok(leased
                .throttled
                .map_or(WorkerState::Idle, WorkerState::Throttled));
        }
        let leases: Vec<Lease> = jobs.iter().map(|j| j.lease).collect();
        self.held().extend(leases.iter().map(|l| (l.job, *l)));
        let mut running = futures::stream::iter(jobs)
            .map(|job| self.execute(job))
            .buffer_unordered(self.opts.concurrency.get());
        // Results are stored at the batch's end, or earlier once they pass the put budget:
        // memory stays under `concurrency × max_render_bytes` rendering plus the budget.
        let mut outcomes = Vec::new();
        let mut held_bytes = 0usize;
        let mut unsettled = Vec::new();
        let mut failed = None;
        while let Some(o) = running.next().await {
            if let Action::Put { entry, .. } = &o.action {
                held_bytes += entry.bytes.len();
            }
            outcomes.push(o);
            if held_bytes > self.opts.put_budget {
                if let Err(u) = self.settle(std::mem::take(&mut outcomes)).await {
                    unsettled.extend(u.leases);
                    failed.get_or_insert(u.error);
                }
                held_bytes = 0;
            }
        }
        drop(running);
        if let Err(u) = self.settle(outcomes).await {
            unsettled.extend(u.leases);
            failed.get_or_insert(u.error);
        }
        // A backend that failed for a while: the unsettled jobs are given back (their
        // leases stay held, and renewed, until then). Any other failure leaves them to
        // expire, which spends an attempt.
        if let Some(e) = &failed {
            let given_back = if e.is_transient() {
                self.give_back(&unsettled).await
            } else {
                None
            };
            match given_back {
                Some(n) => tracing::info!(jobs = n, "gave a failed batch's jobs back"),
                None => tracing::info!(
                    jobs = unsettled.len(),
                    "a failed batch's jobs come back after the visibility timeout"
                ),
            }
        }
        // Settled, given back or left to expire: either way this worker no longer holds
        // them. A cancelled batch leaves them here for `run` to give back.
        let mut held = self.held();
        for l in &leases {
            held.remove(&l.job);
        }
        drop(held);
        match failed {
            Some(e) => Err(e),
            None => Ok(WorkerState::Busy),
        }
    }

    /// Handles batches until no job is ready, waiting out the libraries' limits; returns how
    /// many batches it handled.
    pub async fn drain(&self) -> Result<u64> {
        let mut batches = 0;
        loop {
            match self.work().await? {
                WorkerState::Busy => batches += 1,
                WorkerState::Throttled(wait) => tokio::time::sleep(wait).await,
                WorkerState::Idle => return Ok(batches),
            }
        }
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
            (0..self.opts.lanes.get()).map(|_| self.lane(&stopping)),
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
                Ok(WorkerState::Throttled(wait)) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stopping.cancelled() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "worker batch failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = stopping.cancelled() => {}
                    }
                }
            }
        }
    }

    /// The heartbeat (extends held leases), the periodic purge of expired entries, and the
    /// libraries' schedules.
    async fn background(&self) {
        let mut schedules = tokio::time::interval(crate::schedule::POLL);
        schedules.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let scheduled = self
            .reheat
            .libraries()
            .iter()
            .any(|l| l.settings.schedule.is_some());
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
                _ = schedules.tick(), if scheduled => {
                    self.reheat.run_schedules().await;
                }
                _ = purge.tick() => {
                    let now = self.reheat.clock().now();
                    if let Err(e) = self.reheat.cache().purge_expired(now).await {
                        tracing::warn!(error = %e, "purging expired entries failed");
                    }
                }
            }
        }
    }
}
