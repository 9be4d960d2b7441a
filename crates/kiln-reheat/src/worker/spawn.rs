//! The jobs a new-build or producer job asks for: each producer checked against its
//! listing's page cap and cycles ([`crate::chain`]), all made by [`RunJobs`] and enqueued
//! before the job itself is acked.

use kiln_core::Result;
use serde_json::Value;

use super::Worker;
use super::outcome::Action;
use crate::chain::{self, Mark, Position};
use crate::handler::{BuildContext, RenderItem, Work};
use crate::library::Library;
use crate::payload::RunJobs;

impl Worker {
    /// Enqueues the jobs a new-build or producer job (the latter at `at` in its listing)
    /// asked for, before the job is acked so a run never looks settled while it has work
    /// left, or turns its error into a retry (after the backoff of `attempt`) or a
    /// permanent failure. Each job carries its dedupe key, so a redelivered job creates
    /// nothing twice; a listing past `max_pages` or one that cycles fails the job.
    pub(super) async fn spawned(
        &self,
        lib: &Library,
        ctx: &BuildContext,
        attempt: u32,
        at: Option<Position<'_>>,
        out: Result<Vec<Work>>,
    ) -> Action {
        let work = match out {
            Ok(w) => w,
            Err(e) if e.is_transient() => {
                return Action::Retry {
                    delay: self.opts.backoff.delay(attempt),
                    reason: e.to_string(),
                };
            }
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
        let mut placed = Vec::with_capacity(work.len());
        for w in work {
            placed.push(match w {
                Work::Producer { cursor } => {
                    match chain::follow(at, &cursor, lib.settings.max_pages.get()) {
                        Ok((page, mark)) => Placed::Producer { cursor, page, mark },
                        Err(why) => return Action::Fail(format!("library {}: {why}", lib.name)),
                    }
                }
                Work::Render(item) => Placed::Render(item),
            });
        }
        let run = RunJobs::of(lib, ctx);
        let jobs = placed
            .into_iter()
            .map(|p| match p {
                Placed::Producer { cursor, page, mark } => run.producer(cursor, page, mark),
                Placed::Render(item) => run.render(item),
            })
            .collect::<Result<Vec<_>>>();
        let jobs = match jobs {
            Ok(jobs) => jobs,
            Err(e) => return Action::Fail(e.to_string()),
        };
        if jobs.is_empty() {
            return Action::Ack;
        }
        match self.queue().enqueue(jobs).await {
            Ok(_) => Action::Ack,
            Err(e) => Action::Retry {
                delay: self.opts.backoff.delay(attempt),
                reason: format!("enqueueing its jobs: {e}"),
            },
        }
    }
}

/// A job a new-build or producer job asked for, placed in its listing.
enum Placed {
    /// A producer at `page` of the listing, with its cycle-detection mark.
    Producer {
        cursor: Value,
        page: u64,
        mark: Mark,
    },
    /// A render.
    Render(RenderItem),
}
