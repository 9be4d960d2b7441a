//! Backends that fail on demand: a queue and a runs ledger that pass every call to a real
//! backend, except while the test has them refuse every call (a database that went away)
//! or has named calls fail a number of times (one ack, one stats write lost in a cut).
//! Their errors are `Error::Unavailable`, as the backends' refused connections are.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kiln_core::ids::{JobId, LibraryName, RunId};
use kiln_core::ledger::{BeginRun, Run, RunLedger, RunState, RunStats};
use kiln_core::queue::{
    DeadLetter, Depth, Enqueued, JobQueue, Lease, LeaseOptions, Leased, Liveness, NewJob,
    RetryOptions, RetryOutcome, Tally,
};
use kiln_core::time::Timestamp;
use kiln_core::{Error, Result};

use crate::support::Backends;

/// What fails, shared by the wrappers of one set of backends.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Every call fails while this is set.
    refusing: AtomicBool,
    /// Calls by method name that fail before any succeeds again.
    fail_next: Mutex<HashMap<&'static str, u32>>,
    /// Calls refused, by either.
    refused: AtomicU64,
}

impl Faults {
    /// Refuses every call from now on (`true`) or none (`false`).
    pub(crate) fn refuse(&self, on: bool) {
        self.refusing.store(on, Ordering::SeqCst);
    }

    /// Fails the next `n` calls of `method` (e.g. `"ack"`, `"add_run_stats"`).
    pub(crate) fn fail_next(&self, method: &'static str, n: u32) {
        self.fail_next.lock().unwrap().insert(method, n);
    }

    /// Calls failed so far.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// Whether `method` may go through; counts a refusal.
    fn check(&self, method: &'static str) -> Result<()> {
        let named = {
            let mut next = self.fail_next.lock().unwrap();
            match next.get_mut(method) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            }
        };
        if named || self.refusing.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(Error::Unavailable {
                what: format!("test backend ({method})"),
                source: "connection refused".into(),
            });
        }
        Ok(())
    }
}

/// `backends` with their queue and ledger failing as `faults` says.
pub(crate) fn wrap(backends: Backends, faults: &Arc<Faults>) -> Backends {
    Backends::from_parts(
        Arc::new(FaultyLedger {
            inner: backends.ledger.clone(),
            faults: faults.clone(),
        }),
        backends.catalog.clone(),
        Arc::new(FaultyQueue {
            inner: backends.queue.clone(),
            faults: faults.clone(),
        }),
        backends.cache.clone(),
    )
    .keeping(backends)
}

/// A queue that fails as its [`Faults`] say.
#[derive(Debug)]
pub(crate) struct FaultyQueue {
    inner: Arc<dyn JobQueue>,
    faults: Arc<Faults>,
}

impl fmt::Display for FaultyQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl JobQueue for FaultyQueue {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        self.faults.check("enqueue")?;
        self.inner.enqueue(jobs).await
    }
    async fn lease(&self, opts: &LeaseOptions) -> Result<Leased> {
        self.faults.check("lease")?;
        self.inner.lease(opts).await
    }
    async fn extend(&self, leases: &[Lease], visibility: Duration) -> Result<u64> {
        self.faults.check("extend")?;
        self.inner.extend(leases, visibility).await
    }
    async fn ack(&self, leases: &[Lease]) -> Result<u64> {
        self.faults.check("ack")?;
        self.inner.ack(leases).await
    }
    async fn retry(&self, lease: Lease, opts: RetryOptions) -> Result<RetryOutcome> {
        self.faults.check("retry")?;
        self.inner.retry(lease, opts).await
    }
    async fn fail(&self, lease: Lease, error: &str) -> Result<bool> {
        self.faults.check("fail")?;
        self.inner.fail(lease, error).await
    }
    async fn release(&self, leases: &[Lease]) -> Result<u64> {
        self.faults.check("release")?;
        self.inner.release(leases).await
    }
    async fn fence(&self, key: &str, generation: u64) -> Result<u64> {
        self.faults.check("fence")?;
        self.inner.fence(key, generation).await
    }
    async fn pause(&self, library: &str) -> Result<()> {
        self.faults.check("pause")?;
        self.inner.pause(library).await
    }
    async fn resume(&self, library: &str) -> Result<bool> {
        self.faults.check("resume")?;
        self.inner.resume(library).await
    }
    async fn paused(&self) -> Result<Vec<String>> {
        self.faults.check("paused")?;
        self.inner.paused().await
    }
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        self.faults.check("dead_letters")?;
        self.inner.dead_letters(limit).await
    }
    async fn redrive(&self, ids: Option<&[JobId]>) -> Result<u64> {
        self.faults.check("redrive")?;
        self.inner.redrive(ids).await
    }
    async fn tally(&self, run: RunId) -> Result<Tally> {
        self.faults.check("tally")?;
        self.inner.tally(run).await
    }
    async fn pending(&self) -> Result<u64> {
        self.faults.check("pending")?;
        self.inner.pending().await
    }
    async fn depth(&self) -> Result<(Vec<Depth>, u64)> {
        self.faults.check("depth")?;
        self.inner.depth().await
    }
    async fn wait_for_work(&self, max: Duration) {
        self.inner.wait_for_work(max).await
    }
    async fn heartbeat(&self, worker: &Liveness) -> Result<u64> {
        self.faults.check("heartbeat")?;
        self.inner.heartbeat(worker).await
    }
    async fn retire(&self, worker: &str) -> Result<u64> {
        self.faults.check("retire")?;
        self.inner.retire(worker).await
    }
}

/// A runs ledger that fails as its [`Faults`] say.
#[derive(Debug)]
pub(crate) struct FaultyLedger {
    inner: Arc<dyn RunLedger>,
    faults: Arc<Faults>,
}

impl fmt::Display for FaultyLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl RunLedger for FaultyLedger {
    async fn begin_run(&self, library: &LibraryName, opts: BeginRun) -> Result<Run> {
        self.faults.check("begin_run")?;
        self.inner.begin_run(library, opts).await
    }
    async fn run(&self, id: RunId) -> Result<Run> {
        self.faults.check("run")?;
        self.inner.run(id).await
    }
    async fn runs(&self, library: Option<&LibraryName>, limit: usize) -> Result<Vec<Run>> {
        self.faults.check("runs")?;
        self.inner.runs(library, limit).await
    }
    async fn finish_run(&self, id: RunId, state: RunState) -> Result<bool> {
        self.faults.check("finish_run")?;
        self.inner.finish_run(id, state).await
    }
    async fn add_run_stats(&self, id: RunId, stats: &RunStats) -> Result<()> {
        self.faults.check("add_run_stats")?;
        self.inner.add_run_stats(id, stats).await
    }
    async fn run_stats(&self, id: RunId) -> Result<RunStats> {
        self.faults.check("run_stats")?;
        self.inner.run_stats(id).await
    }
    async fn claim_tick(&self, library: &LibraryName, tick: Timestamp) -> Result<bool> {
        self.faults.check("claim_tick")?;
        self.inner.claim_tick(library, tick).await
    }
}
