//! `MemLedger`: the whole [`RunLedger`] contract in memory, for tests that need no files.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use kiln_core::ids::{LibraryName, RunId};
use kiln_core::ledger::{BeginRun, Run, RunLedger, RunState, RunStats};
use kiln_core::time::{SharedClock, SystemClock, Timestamp};
use kiln_core::{Error, Result};

/// A runs ledger in memory: one mutex over the runs, so each call is one atomic step.
#[derive(Debug)]
pub struct MemLedger {
    clock: SharedClock,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Oldest first; a run's id is its position plus one.
    runs: Vec<Run>,
    /// The newest generation of each library.
    generations: HashMap<LibraryName, u64>,
    /// Stats by run.
    stats: HashMap<RunId, RunStats>,
    /// The newest claimed schedule tick of each library.
    ticks: HashMap<LibraryName, Timestamp>,
}

impl Default for MemLedger {
    fn default() -> Self {
        Self::new()
    }
}

impl MemLedger {
    /// An empty ledger on the wall clock.
    pub fn new() -> Self {
        MemLedger {
            clock: SystemClock::shared(),
            state: Mutex::new(State::default()),
        }
    }

    /// This ledger reading time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread leaves the runs consistent: every change is one step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Display for MemLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Memory")
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl RunLedger for MemLedger {
    async fn begin_run(&self, library: &LibraryName, opts: BeginRun) -> Result<Run> {
        let now = self.clock.now();
        let mut s = self.state();
        let g = s.generations.entry(library.clone()).or_default();
        *g += 1;
        let generation = *g;
        if opts.group.is_none() {
            for r in s.runs.iter_mut() {
                if &r.library == library && r.state == RunState::Running {
                    r.state = RunState::Superseded;
                    r.finished_at = Some(now);
                }
            }
        }
        let run = Run {
            id: RunId(s.runs.len() as i64 + 1),
            library: library.clone(),
            build: opts.build,
            generation,
            group: opts.group,
            state: RunState::Running,
            created_at: now,
            finished_at: None,
        };
        s.runs.push(run.clone());
        Ok(run)
    }

    async fn run(&self, id: RunId) -> Result<Run> {
        let s = self.state();
        s.runs
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("run {id}")))
    }

    async fn runs(&self, library: Option<&LibraryName>, limit: usize) -> Result<Vec<Run>> {
        let s = self.state();
        Ok(s.runs
            .iter()
            .rev()
            .filter(|r| library.is_none_or(|l| &r.library == l))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn finish_run(&self, id: RunId, state: RunState) -> Result<bool> {
        if state == RunState::Running {
            return Err(Error::invalid(format!(
                "cannot finish run {id} as \"running\": choose complete, failed or superseded"
            )));
        }
        let now = self.clock.now();
        let mut s = self.state();
        match s.runs.iter_mut().find(|r| r.id == id) {
            Some(r) if r.state == RunState::Running => {
                r.state = state;
                r.finished_at = Some(now);
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(Error::not_found(format!("run {id}"))),
        }
    }

    async fn add_run_stats(&self, id: RunId, stats: &RunStats) -> Result<()> {
        let mut s = self.state();
        if !s.runs.iter().any(|r| r.id == id) {
            return Err(Error::not_found(format!("run {id}")));
        }
        s.stats.entry(id).or_default().merge(stats);
        Ok(())
    }

    async fn run_stats(&self, id: RunId) -> Result<RunStats> {
        let s = self.state();
        if !s.runs.iter().any(|r| r.id == id) {
            return Err(Error::not_found(format!("run {id}")));
        }
        Ok(s.stats.get(&id).cloned().unwrap_or_default())
    }

    async fn claim_tick(&self, library: &LibraryName, tick: Timestamp) -> Result<bool> {
        let mut s = self.state();
        let last = s
            .ticks
            .entry(library.clone())
            .or_insert(Timestamp(i64::MIN));
        if *last >= tick {
            return Ok(false);
        }
        *last = tick;
        Ok(true)
    }
}
