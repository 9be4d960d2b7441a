//! Leases of a batch that could not be settled because a backend failed for a while (a
//! PostgreSQL or Redis outage): given back, as on shutdown, so that their jobs (and the
//! throttle slots their leases hold) are free as soon as the backend answers again, not
//! when the visibility timeout ends. The jobs keep their attempt: the failure was not
//! theirs. A batch that failed for any other reason keeps its leases until they expire,
//! which spends an attempt, so a job that cannot be settled becomes a dead letter.

use std::time::Duration;

use kiln_core::backoff::Backoff;
use kiln_core::queue::Lease;
use tokio::time::Instant;

use super::Worker;

/// Delays between tries of the release while the backend is unavailable.
const RETRY: Backoff = Backoff {
    base: Duration::from_millis(100),
    max: Duration::from_secs(2),
};

impl Worker {
    /// Gives `leases` back, trying again with backoff for at most the visibility timeout
    /// (after which the leases expire anyway); returns how many were still held and given
    /// back, or `None` if every try failed.
    pub(super) async fn give_back(&self, leases: &[Lease]) -> Option<u64> {
        if leases.is_empty() {
            return Some(0);
        }
        let deadline = Instant::now() + self.opts.visibility;
        let mut tries = 0;
        loop {
            tries += 1;
            match self.queue().release(leases).await {
                Ok(n) => return Some(n),
                Err(e) => {
                    let wake = Instant::now() + RETRY.delay(tries);
                    if wake >= deadline {
                        tracing::warn!(error = %e, tries, "giving the failed batch's leases back failed");
                        return None;
                    }
                    tracing::debug!(error = %e, tries, "giving the failed batch's leases back");
                    tokio::time::sleep_until(wake).await;
                }
            }
        }
    }
}
