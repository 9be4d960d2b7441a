//! Runs' throughput over time: every [`EVERY`] this server samples the tallies of the runs
//! in progress, keeping the newest [`MAX_SAMPLES`] of each of the newest [`MAX_RUNS`] runs
//! in memory (a restarted server starts afresh; every server of a fleet keeps its own).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use kiln_core::ids::RunId;
use kiln_core::ledger::RunState;
use kiln_reheat::Reheat;
use serde::Serialize;

/// How often runs are sampled.
pub(crate) const EVERY: Duration = Duration::from_secs(2);

/// Samples kept per run: an hour at [`EVERY`].
const MAX_SAMPLES: usize = 1800;

/// Runs kept.
const MAX_RUNS: usize = 64;

/// A run's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct Sample {
    /// Unix milliseconds.
    at: i64,
    /// Jobs created for the run so far.
    enqueued: u64,
    /// Jobs done so far.
    done: u64,
    /// Jobs dead so far.
    dead: u64,
}

/// One run's samples, and whether its last one (at its end) is taken.
#[derive(Debug, Default)]
struct Track {
    samples: VecDeque<Sample>,
    ended: bool,
}

/// The samples of recent runs.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    runs: Mutex<BTreeMap<i64, Track>>,
}

impl Sampler {
    fn runs(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, Track>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `run`'s samples, oldest first.
    pub(crate) fn samples(&self, run: RunId) -> Vec<Sample> {
        self.runs()
            .get(&run.0)
            .map(|t| t.samples.iter().copied().collect())
            .unwrap_or_default()
    }

    fn record(&self, run: RunId, sample: Sample, ended: bool) {
        let mut runs = self.runs();
        let track = runs.entry(run.0).or_default();
        track.samples.push_back(sample);
        track.ended = ended;
        if track.samples.len() > MAX_SAMPLES {
            track.samples.pop_front();
        }
        while runs.len() > MAX_RUNS {
            runs.pop_first();
        }
    }

    /// Samples the runs in progress, and once more at its end each one it saw running; a
    /// run it never saw running, or whose end it has, costs no query.
    pub(crate) async fn sample(&self, reheat: &Reheat) -> kiln_core::Result<()> {
        let now = reheat.clock().now();
        for run in reheat.ledger().runs(None, MAX_RUNS).await? {
            let ended = run.state != RunState::Running;
            let seen = self.runs().get(&run.id.0).map(|t| t.ended);
            if ended && seen != Some(false) {
                continue;
            }
            let tally = reheat.queue().tally(run.id).await?;
            let sample = Sample {
                at: run.finished_at.filter(|_| ended).unwrap_or(now).0,
                enqueued: tally.enqueued,
                done: tally.done,
                dead: tally.dead,
            };
            self.record(run.id, sample, ended);
        }
        Ok(())
    }

    /// Samples every [`EVERY`] until dropped.
    pub(crate) async fn sample_forever(&self, reheat: Reheat) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.sample(&reheat).await {
                tracing::debug!(error = %e, "sampling runs failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use kiln_core::ids::LibraryName;
    use kiln_reheat::{
        BuildContext, Handler, Libraries, Library, LibrarySettings, RenderError, Rendered, Work,
    };
    use kiln_testkit::mem::{ledger::MemLedger, queue::MemQueue, render_cache::MemCache};
    use serde_json::Value;

    use super::*;

    #[derive(Debug)]
    struct Nothing;

    #[async_trait]
    impl Handler for Nothing {
        async fn new_build(&self, _ctx: &BuildContext) -> kiln_core::Result<Vec<Work>> {
            Ok(Vec::new())
        }
        async fn produce(&self, _ctx: &BuildContext, _c: &Value) -> kiln_core::Result<Vec<Work>> {
            Ok(Vec::new())
        }
        async fn render(&self, _key: &str, _props: &Value) -> Result<Rendered, RenderError> {
            Ok(Rendered::new("x", "text/plain"))
        }
    }

    #[tokio::test]
    async fn a_run_is_sampled_while_it_runs_and_once_when_it_ends() {
        let mut libs = Libraries::new();
        let name = LibraryName::new("pages").unwrap();
        libs.insert(Library::new(
            name,
            Arc::new(Nothing),
            LibrarySettings::default(),
        ))
        .unwrap();
        let reheat = Reheat::new(
            Arc::new(MemLedger::new()),
            Arc::new(MemQueue::new()),
            Arc::new(MemCache::new()),
            libs,
            kiln_core::time::SystemClock::shared(),
        );
        let sampler = Sampler::default();
        sampler.sample(&reheat).await.unwrap();
        let run = reheat.start("pages", Default::default()).await.unwrap();
        assert!(
            sampler.samples(run.id).is_empty(),
            "nothing before a sample"
        );
        sampler.sample(&reheat).await.unwrap();
        sampler.sample(&reheat).await.unwrap();
        let running = sampler.samples(run.id);
        assert_eq!(running.len(), 2);
        assert_eq!((running[1].enqueued, running[1].done), (1, 0));

        let worker =
            kiln_reheat::Worker::new(reheat.clone(), kiln_reheat::WorkerOptions::default());
        worker.drain().await.unwrap();
        sampler.sample(&reheat).await.unwrap();
        sampler.sample(&reheat).await.unwrap();
        let ended = sampler.samples(run.id);
        let st = reheat.status(run.id).await.unwrap();
        assert_eq!(
            ended.len(),
            3,
            "one last sample, at the run's end: {ended:?} {st:?}"
        );
        let finished = reheat
            .status(run.id)
            .await
            .unwrap()
            .run
            .finished_at
            .unwrap();
        assert_eq!((ended[2].done, ended[2].at), (1, finished.0));
    }
}
