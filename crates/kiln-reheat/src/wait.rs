//! Waiting for a run to end ([`Reheat::wait`]): its status every 100 ms, finishing it once
//! every job is settled, and riding out backends that are unavailable for a while (a
//! refused connection, a restart, a failover): a transient error is tried again with
//! backoff until the waiter's own deadline, and reported to the waiter as it happens. The
//! run does not depend on its waiters; a waiter that gave up on an outage the run outlived
//! would report a failure that did not happen.

use std::time::Duration;

use kiln_core::backoff::Backoff;
use kiln_core::ids::RunId;
use kiln_core::ledger::RunState;
use kiln_core::{Error, Result};
use tokio::time::Instant;

use crate::reheat::{Reheat, RunStatus};

/// How often [`Reheat::wait`] looks at its run.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// Options of [`Reheat::wait`].
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// When to stop waiting: the status then is returned, still running, or the transient
    /// error the backends answered last. `None`: as long as the run runs, and as long as
    /// its backends stay unavailable.
    pub deadline: Option<Instant>,
    /// The delays between tries while the backends answer transient errors (by default
    /// 200 ms doubling to 10 s).
    pub backoff: Backoff,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            deadline: None,
            backoff: Backoff {
                base: Duration::from_millis(200),
                max: Duration::from_secs(10),
            },
        }
    }
}

/// What [`Reheat::wait`] tells its caller as it goes.
#[derive(Debug)]
pub enum WaitEvent<'a> {
    /// The run's status: after every look, and once at the end.
    Progress(&'a RunStatus),
    /// A look failed with a transient error, the `failures`th in a row: the wait tries
    /// again after `after`.
    Retrying {
        /// The error.
        error: &'a Error,
        /// Failed looks in a row.
        failures: u32,
        /// How long until the next.
        after: Duration,
    },
}

/// What one look at a waited-for run found.
enum Look {
    /// The run ended.
    Ended(RunStatus),
    /// The run runs on.
    Running(RunStatus),
    /// Every job was settled, and the run is now finished: look again.
    Finished,
}

impl Reheat {
    /// Waits until run `run` is no longer running and returns its final status, calling
    /// `on_event` with its status every 100 ms and once at the end, and with each transient
    /// error it tries again after. A run whose jobs are all settled is finished here
    /// (finishing is idempotent), so that waiting does not depend on a worker having done
    /// it. At `opts.deadline` it returns the status of a run still running, or the last
    /// transient error; any other error ends the wait at once.
    pub async fn wait(
        &self,
        run: RunId,
        opts: &WaitOptions,
        mut on_event: impl FnMut(WaitEvent<'_>),
    ) -> Result<RunStatus> {
        let mut failures = 0u32;
        loop {
            let pause = match self.look(run).await {
                Ok(Look::Ended(s)) => {
                    on_event(WaitEvent::Progress(&s));
                    return Ok(s);
                }
                Ok(Look::Finished) => {
                    failures = 0;
                    continue;
                }
                Ok(Look::Running(s)) => {
                    failures = 0;
                    on_event(WaitEvent::Progress(&s));
                    if opts.deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(s);
                    }
                    WAIT_POLL
                }
                Err(e) if e.is_transient() => {
                    failures = failures.saturating_add(1);
                    let after = opts.backoff.delay(failures);
                    if opts.deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(e);
                    }
                    on_event(WaitEvent::Retrying {
                        error: &e,
                        failures,
                        after,
                    });
                    after
                }
                Err(e) => return Err(e),
            };
            let wake = Instant::now() + pause;
            tokio::time::sleep_until(opts.deadline.map_or(wake, |d| wake.min(d))).await;
        }
    }

    /// Looks at run `run` once, finishing it if every job is settled.
    async fn look(&self, run: RunId) -> Result<Look> {
        let s = self.status(run).await?;
        if s.run.state != RunState::Running {
            return Ok(Look::Ended(s));
        }
        if s.tally.pending() == 0 {
            self.finalize(run).await?;
            return Ok(Look::Finished);
        }
        Ok(Look::Running(s))
    }
}
