//! How a job ends: an [`Outcome`] is the job's lease, its run and the [`Action`] that
//! settles it; [`Worker::settle`] settles a batch of outcomes (store, add to the runs'
//! stats, ack, retry, fail, in that order) and then finishes the runs they belong to. A
//! batch that fails part way says which of its jobs it left unsettled ([`Unsettled`]),
//! so that their leases can be given back.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use kiln_core::Error;
use kiln_core::ids::{LibraryName, RunId};
use kiln_core::ledger::RunStats;
use kiln_core::queue::{Lease, RetryOptions, RetryOutcome};
use kiln_core::render_cache::{CacheEntry, PutOutcome};

use super::Worker;
use crate::metrics::BackendCall;

/// How one job ended, before its batch is settled.
pub(super) struct Outcome {
    /// The job's lease: the ack, retry or fail presents it.
    pub(super) lease: Lease,
    /// The run the job counts toward, to finish once the batch is settled.
    pub(super) run: Option<RunId>,
    /// What settles the job.
    pub(super) action: Action,
    /// How long the render took, for a render job.
    pub(super) render_took: Option<Duration>,
}

/// What settles a job.
pub(super) enum Action {
    /// A render job: store `entry`, then ack.
    Put {
        /// The entry's library.
        library: LibraryName,
        /// The rendered entry.
        entry: CacheEntry,
    },
    /// A new-build or producer job whose jobs are enqueued: ack.
    Ack,
    /// A transient failure: try again after `delay`.
    Retry {
        /// How long the job waits.
        delay: Duration,
        /// What failed, kept for the dead letter.
        reason: String,
    },
    /// A permanent failure: the job becomes a dead letter with `reason`.
    Fail(String),
}

/// A batch that could not be settled whole.
#[derive(Debug)]
pub(super) struct Unsettled {
    /// What failed.
    pub(super) error: Error,
    /// The leases of the jobs it left unsettled: neither stored and acked, retried nor
    /// failed (some may have been, if the failed call took effect before it failed).
    pub(super) leases: Vec<Lease>,
}

impl Unsettled {
    fn of(error: Error, left: &HashSet<Lease>) -> Unsettled {
        Unsettled {
            error,
            leases: left.iter().copied().collect(),
        }
    }
}

impl Worker {
    /// Stores a batch's results, adds its stats to its runs, then acks, retries and fails
    /// its outcomes, in that order (a job is acked only once its result is stored or its
    /// jobs are enqueued, and its stats are written), then finishes the runs. On a failure,
    /// says which jobs are left unsettled.
    pub(super) async fn settle(&self, outcomes: Vec<Outcome>) -> Result<(), Unsettled> {
        let mut left: HashSet<Lease> = outcomes.iter().map(|o| o.lease).collect();
        let mut runs = BTreeSet::new();
        let mut puts: HashMap<LibraryName, (Vec<Lease>, Vec<CacheEntry>)> = HashMap::new();
        let mut to_ack = Vec::new();
        let mut retries = Vec::new();
        let mut fails = Vec::new();
        // What the batch adds to each run's stats: render latency and failures by reason.
        let mut stats: HashMap<RunId, RunStats> = HashMap::new();
        for Outcome {
            lease,
            run,
            action,
            render_took,
        } in outcomes
        {
            runs.extend(run);
            if let Some(run) = run {
                let s = stats.entry(run).or_default();
                if let Some(took) = render_took {
                    s.observe_render(took);
                }
                if let Action::Retry { reason, .. } | Action::Fail(reason) = &action {
                    s.fail(reason);
                }
            }
            match action {
                Action::Put { library, entry } => {
                    let slot = puts.entry(library).or_default();
                    slot.0.push(lease);
                    slot.1.push(entry);
                }
                Action::Ack => to_ack.push(lease),
                Action::Retry { delay, reason } => retries.push((lease, delay, reason)),
                Action::Fail(reason) => fails.push((lease, reason)),
            }
        }
        for (library, (leases, entries)) in puts {
            let t = Instant::now();
            let outcomes = self
                .reheat
                .cache()
                .put(&library, entries)
                .await
                .map_err(|e| Unsettled::of(e, &left))?;
            self.metrics.record_backend(BackendCall::Put, t);
            let stale = outcomes.iter().filter(|o| **o == PutOutcome::Stale).count();
            self.metrics.add_stale(stale as u64);
            to_ack.extend(leases);
        }
        // The stats go before the acks: a run ends when its last job is acked, and must not
        // end with a batch's stats still to be written.
        self.write_stats(&stats)
            .await
            .map_err(|e| Unsettled::of(e, &left))?;
        if !to_ack.is_empty() {
            let t = Instant::now();
            let acked = self
                .queue()
                .ack(&to_ack)
                .await
                .map_err(|e| Unsettled::of(e, &left))?;
            for l in &to_ack {
                left.remove(l);
            }
            self.metrics.record_backend(BackendCall::Ack, t);
            self.metrics.add_done(acked);
            self.metrics
                .add_lost(to_ack.len() as u64 - acked.min(to_ack.len() as u64));
        }
        for (lease, delay, reason) in retries {
            tracing::debug!(job = %lease.job, %reason, "retrying");
            let retried = self
                .queue()
                .retry(
                    lease,
                    RetryOptions {
                        delay,
                        error: reason,
                    },
                )
                .await
                .map_err(|e| Unsettled::of(e, &left))?;
            left.remove(&lease);
            match retried {
                RetryOutcome::Retrying => self.metrics.add_retried(),
                RetryOutcome::Dead => self.metrics.add_dead(),
                RetryOutcome::LeaseLost => self.metrics.add_lost(1),
            }
        }
        for (lease, reason) in fails {
            tracing::warn!(job = %lease.job, %reason, "job failed permanently");
            let failed = self
                .queue()
                .fail(lease, &reason)
                .await
                .map_err(|e| Unsettled::of(e, &left))?;
            left.remove(&lease);
            if failed {
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
