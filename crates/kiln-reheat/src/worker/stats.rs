//! The runs' stats a settled batch adds (render latency, failures by reason): written
//! after its results are stored and before its jobs are acked, so that a run, which ends when its last job is acked,
//! never ends with stats still to come. A write that fails is tried again a few times at
//! once; one that still fails with a transient error fails the batch, whose jobs are then
//! given back and rendered (and counted) again, so the counts stay exact through a backend
//! outage.
//!
//! What is counted is the renders whose results were stored: a batch whose ack failed
//! after its stats were written is rendered, stored and counted again, as it ran twice.

use std::collections::HashMap;
use std::time::Duration;

use kiln_core::Result;
use kiln_core::backoff::Backoff;
use kiln_core::ids::RunId;
use kiln_core::ledger::RunStats;

use super::Worker;

/// Tries of one stats write before the batch fails.
const TRIES: u32 = 3;

/// Delays between those tries.
const RETRY: Backoff = Backoff {
    base: Duration::from_millis(50),
    max: Duration::from_millis(500),
};

impl Worker {
    /// Adds `stats` to their runs in the ledger. A transient error that outlasts the tries
    /// is returned; any other is logged (stats inform; a write that cannot succeed must not
    /// hold the batch up).
    pub(super) async fn write_stats(&self, stats: &HashMap<RunId, RunStats>) -> Result<()> {
        for (run, s) in stats {
            if s.is_empty() {
                continue;
            }
            let mut tries = 0;
            loop {
                tries += 1;
                match self.reheat.ledger().add_run_stats(*run, s).await {
                    Ok(()) => break,
                    Err(e) if e.is_transient() && tries < TRIES => {
                        tracing::debug!(%run, error = %e, tries, "adding the run's stats");
                        tokio::time::sleep(RETRY.delay(tries)).await;
                    }
                    Err(e) if e.is_transient() => return Err(e),
                    Err(e) => {
                        tracing::warn!(%run, error = %e, "adding the run's stats failed");
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}
