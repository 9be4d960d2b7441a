//! The RunLedger trait: the builds of each library and their reheat runs (generation,
//! state, timestamps). Kept apart from the content [`Catalog`](crate::catalog::Catalog):
//! the reheat side needs runs, the serving and sync sides need content.

use std::fmt::{Debug, Display};

use async_trait::async_trait;

use crate::Result;
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
}
