//! The RunLedger trait: the builds of each library and their reheat runs (generation,
//! state, timestamps). Kept apart from the content [`Catalog`](crate::catalog::Catalog):
//! the reheat side needs runs, the serving and sync sides need content.

use std::collections::BTreeMap;
use std::fmt::{Debug, Display};
use std::time::Duration;

use async_trait::async_trait;

use crate::Result;
use crate::histogram::LATENCY_BUCKETS;
use crate::ids::{LibraryName, RunId};
use crate::time::Timestamp;

/// The state of a reheat run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Jobs are pending.
    Running,
    /// Every job is done (or dead); pruning has run.
    Complete,
    /// The run was stopped by an error of its own.
    Failed,
    /// A newer build of the library fenced it.
    Superseded,
    /// An operator cancelled it: its jobs were dropped and nothing was pruned.
    Cancelled,
}

impl RunState {
    /// The state's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Complete => "complete",
            RunState::Failed => "failed",
            RunState::Superseded => "superseded",
            RunState::Cancelled => "cancelled",
        }
    }

    /// Parses [`RunState::as_str`]'s output.
    pub fn parse(s: &str) -> Option<RunState> {
        [
            RunState::Running,
            RunState::Complete,
            RunState::Failed,
            RunState::Superseded,
            RunState::Cancelled,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// A reheat run: the reheat of one build of a library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The run's id.
    pub id: RunId,
    /// The library.
    pub library: LibraryName,
    /// The build's label (a commit hash, a course version, ...).
    pub build: String,
    /// The build's generation: strictly increasing per library.
    pub generation: u64,
    /// `Some(group)` for a run that rewrites one producer group only.
    pub group: Option<String>,
    /// The state.
    pub state: RunState,
    /// When the run started.
    pub created_at: Timestamp,
    /// When it left `Running`.
    pub finished_at: Option<Timestamp>,
}

/// What a run did beyond its job counts, added to by every worker: render latency, failed
/// attempts by reason, entries pruned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Renders per latency bucket: one count per [`LATENCY_BUCKETS`] bound, then one for
    /// renders slower than every bound (empty until the first render).
    pub render_latency: Vec<u64>,
    /// Failed attempts (retried or dead) by reason.
    pub failures: BTreeMap<String, u64>,
    /// Entries the run pruned (swept on completion, or marked to expire at its start).
    pub pruned: u64,
}

/// The longest failure reason kept, in characters.
const MAX_REASON_CHARS: usize = 160;

impl RunStats {
    /// Counts one render that took `took`.
    pub fn observe_render(&mut self, took: Duration) {
        if self.render_latency.is_empty() {
            self.render_latency = vec![0; LATENCY_BUCKETS.len() + 1];
        }
        let secs = took.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.render_latency[i] += 1;
    }

    /// Counts one failed attempt whose error said `message`, under its reason:
    /// [`RunStats::reason`].
    pub fn fail(&mut self, message: &str) {
        *self.failures.entry(Self::reason(message)).or_default() += 1;
    }

    /// A failure's reason: its message with quoted parts (keys, cursors) elided, so that
    /// the failures of many keys count under one reason; at most 160 characters.
    pub fn reason(message: &str) -> String {
        let mut out = String::new();
        let mut quoted = false;
        for c in message.chars() {
            match (c, quoted) {
                ('"', false) => {
                    quoted = true;
                    out.push_str("\"…\"");
                }
                ('"', true) => quoted = false,
                (c, false) => out.push(c),
                (_, true) => {}
            }
        }
        out.chars().take(MAX_REASON_CHARS).collect()
    }

    /// Adds `other` to these.
    pub fn merge(&mut self, other: &RunStats) {
        if !other.render_latency.is_empty() {
            if self.render_latency.len() < other.render_latency.len() {
                self.render_latency.resize(other.render_latency.len(), 0);
            }
            for (a, b) in self.render_latency.iter_mut().zip(&other.render_latency) {
                *a += b;
            }
        }
        for (reason, n) in &other.failures {
            *self.failures.entry(reason.clone()).or_default() += n;
        }
        self.pruned += other.pruned;
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self == &RunStats::default()
    }

    /// Renders counted.
    pub fn renders(&self) -> u64 {
        self.render_latency.iter().sum()
    }

    /// The latency below which a fraction `q` of the renders fell, as its bucket's upper
    /// bound (`None` without renders; `f64::INFINITY` for the slowest bucket).
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        let total = self.renders();
        if total == 0 {
            return None;
        }
        let want = ((q * total as f64).ceil() as u64).max(1);
        let mut acc = 0;
        for (i, n) in self.render_latency.iter().enumerate() {
            acc += n;
            if acc >= want {
                return Some(LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }

    /// The stored form: JSON (the backends' one encoding).
    pub fn encode(&self) -> String {
        serde_json::json!({
            "render_latency": self.render_latency,
            "failures": self.failures,
            "pruned": self.pruned,
        })
        .to_string()
    }

    /// From the stored form; `None` or empty is no stats; the error says what is wrong.
    pub fn decode(stored: Option<&str>) -> std::result::Result<RunStats, String> {
        let Some(text) = stored.filter(|s| !s.is_empty()) else {
            return Ok(RunStats::default());
        };
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("run stats {text:?}: {e}"))?;
        let bad = || format!("run stats {text:?}: not the stored shape");
        let render_latency = v["render_latency"]
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|n| n.as_u64().ok_or_else(bad))
            .collect::<std::result::Result<_, _>>()?;
        let failures = v["failures"]
            .as_object()
            .ok_or_else(bad)?
            .iter()
            .map(|(k, n)| Ok((k.clone(), n.as_u64().ok_or_else(bad)?)))
            .collect::<std::result::Result<_, String>>()?;
        Ok(RunStats {
            render_latency,
            failures,
            pruned: v["pruned"].as_u64().ok_or_else(bad)?,
        })
    }
}

/// Options of [`RunLedger::begin_run`].
#[derive(Debug, Clone, Default)]
pub struct BeginRun {
    /// The build's label.
    pub build: String,
    /// Restrict the run to one producer group.
    pub group: Option<String>,
}

/// The runs ledger: every build of a library, its generation, and its run's state.
///
/// Times (`created_at`, `finished_at`) are read from the backend's injected
/// [`Clock`](crate::time::Clock).
///
/// # Contract
/// - **Atomicity**: `begin_run` assigns the generation and, for a library-wide run, marks
///   every older running run of its library (group runs too) `Superseded` in one
///   transaction; a group run supersedes nothing. A run's `finished_at` is set with the
///   state it leaves `Running` for.
/// - **Not found**: `run` returns [`crate::Error::NotFound`] for an unknown run.
/// - **Ordering**: generations increase strictly per library; `runs` lists newest first,
///   filtered by library and limited.
/// - **Idempotency**: `finish_run` only moves a running run, and only once; finishing a run
///   as `Running` is [`crate::Error::InvalidInput`].
/// - **Concurrency**: concurrent `begin_run`s of one library get distinct generations, and
///   exactly one library-wide run of them is left running.
/// - **Stats**: `add_run_stats` adds to a run's [`RunStats`] atomically (concurrent adds
///   all count); `run_stats` of a run never added to is the default; both are
///   [`crate::Error::NotFound`] for an unknown run.
/// - **Schedule ticks**: `claim_tick` records a library's newest scheduled tick; of any
///   number of concurrent claims of one tick exactly one is true, and a claim of a tick at
///   or before the recorded one is false.
#[async_trait]
pub trait RunLedger: Send + Sync + Debug + Display + 'static {
    /// Starts a run for a new build: the next generation of the library. A library-wide run
    /// marks every older running run of the library `Superseded`.
    async fn begin_run(&self, library: &LibraryName, opts: BeginRun) -> Result<Run>;

    /// A run by id.
    async fn run(&self, id: RunId) -> Result<Run>;

    /// The newest runs, optionally of one library, newest first.
    async fn runs(&self, library: Option<&LibraryName>, limit: usize) -> Result<Vec<Run>>;

    /// Moves a running run to `state`; false if it was not running.
    async fn finish_run(&self, id: RunId, state: RunState) -> Result<bool>;

    /// Adds `stats` to run `id`'s.
    async fn add_run_stats(&self, id: RunId, stats: &RunStats) -> Result<()>;

    /// Run `id`'s stats.
    async fn run_stats(&self, id: RunId) -> Result<RunStats>;

    /// Claims `library`'s scheduled tick `tick` (see `schedule` in the config): true when
    /// it is later than every tick claimed before, so that one caller starts its build.
    async fn claim_tick(&self, library: &LibraryName, tick: Timestamp) -> Result<bool>;
}
