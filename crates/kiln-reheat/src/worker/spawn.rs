//! The jobs a new-build or producer job asks for: each producer checked against its
//! listing's page cap and cycles ([`crate::chain`]), all made by [`RunJobs`] and enqueued
//! before the job itself is acked. A producer's render jobs are enqueued first: how many
//! of them the queue created says whether the page added a key to the run, which its next
//! producers carry on (or which stops a listing whose pages add nothing).

use kiln_core::Result;
use kiln_core::queue::NewJob;
use serde_json::Value;

use super::Worker;
use super::outcome::Action;
use crate::chain::{self, Added, Mark, Position};
use crate::handler::{BuildContext, Work};
use crate::library::Library;
use crate::payload::RunJobs;

impl Worker {
    /// Enqueues the jobs a new-build or producer job (the latter at `at` in its listing)
    /// asked for, before the job is acked so a run never looks settled while it has work
    /// left, or turns its error into a retry (after the backoff of `attempt`) or a
    /// permanent failure. Each job carries its dedupe key, so a redelivered job creates
    /// nothing twice; a listing past `max_pages`, one that cycles, and one whose last
    /// `max_idle_pages` pages added no new key fail the job.
    pub(super) async fn spawned(
        &self,
        lib: &Library,
        ctx: &BuildContext,
        attempt: u32,
        at: Option<Position<'_>>,
        out: Result<Vec<Work>>,
    ) -> Action {
        let retry = |reason: String| Action::Retry {
            delay: self.opts.backoff.delay(attempt),
            reason,
        };
        let work = match out {
            Ok(w) => w,
            Err(e) if e.is_transient() => return retry(e.to_string()),
            Err(e) => return Action::Fail(e.to_string()),
        };
        let producers = work
            .iter()
            .filter(|w| matches!(w, Work::Producer { .. }))
            .count() as u64;
        if producers > lib.settings.max_pages.get() {
            return Action::Fail(format!(
                "library {}: one job asked for {producers} producer jobs, more than the \
                 {} pages a listing may have (max_pages)",
                lib.name, lib.settings.max_pages
            ));
        }
        // Every producer is placed in its listing before any job is made, so a listing
        // that may not go on is what fails the job, whatever else the page holds.
        let run = RunJobs::of(lib, ctx);
        let mut next = Vec::new();
        let mut renders = Vec::new();
        for w in work {
            match w {
                Work::Producer { cursor } => {
                    match chain::follow(at, &cursor, lib.settings.max_pages.get()) {
                        Ok((page, mark)) => next.push((cursor, page, mark)),
                        Err(why) => return Action::Fail(format!("library {}: {why}", lib.name)),
                    }
                }
                Work::Render(item) => match run.render(item) {
                    Ok(job) => renders.push(job),
                    Err(e) => return Action::Fail(e.to_string()),
                },
            }
        }
        let listed = renders.len();
        let created = match self.enqueue(renders).await {
            Ok(created) => created,
            Err(e) => return retry(format!("enqueueing its jobs: {e}")),
        };
        let idle = match at {
            // A page that ends its listing has nothing left to stop.
            Some(at) if !next.is_empty() => {
                let added = Added {
                    listed,
                    created,
                    group_run: ctx.group.is_some(),
                };
                match chain::idle_after(at, added, lib.settings.max_idle_pages.get()) {
                    Ok(idle) => idle,
                    Err(why) => return Action::Fail(format!("library {}: {why}", lib.name)),
                }
            }
            _ => 0,
        };
        let producers = next
            .into_iter()
            .map(|(cursor, page, mark): (Value, u64, Mark)| run.producer(cursor, page, mark, idle))
            .collect::<Result<Vec<_>>>();
        let producers = match producers {
            Ok(jobs) => jobs,
            Err(e) => return Action::Fail(e.to_string()),
        };
        match self.enqueue(producers).await {
            Ok(_) => Action::Ack,
            Err(e) => retry(format!("enqueueing its jobs: {e}")),
        }
    }

    /// Enqueues `jobs` (none: no call); how many of them the queue created.
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<usize> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let enqueued = self.queue().enqueue(jobs).await?;
        Ok(enqueued.iter().filter(|e| e.created).count())
    }
}
