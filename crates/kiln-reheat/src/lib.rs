//! kiln-reheat: render-cache reheating: job payloads, library handlers, runs and the worker.
//!
//! A reheat of a library (the seed's "component library") is a **run** with a new
//! generation: [`Reheat::start`] fences older runs and enqueues a new-build job; workers
//! ([`Worker`]) turn it into producer jobs, producer jobs into render jobs, and render jobs
//! into cache entries, through the library's [`Handler`]; when every job is settled the run
//! is finished and the entries it no longer produces are pruned. [`ReadThrough`] is the
//! read path, with optional render-through on a miss; [`Reheat::read`] hands reads to the
//! one it composes. Jobs are made in [`payload`] only; time is read from the
//! [`SharedClock`](kiln_core::time::SharedClock) given to [`Reheat::new`].

mod body;
pub mod chain;
pub mod command;
pub mod config;
pub mod course;
pub mod declarative;
pub mod handler;
pub mod http;
pub mod library;
mod liveness;
pub mod metrics;
pub mod payload;
pub mod read;
pub mod reheat;
pub mod schedule;
pub mod wait;
pub mod worker;

pub use config::{LibraryConfig, LibrarySettings, Prune, parse_libraries};
pub use handler::{BuildContext, Handler, RenderError, RenderItem, Rendered, Work};
pub use library::{Libraries, Library};
pub use read::ReadThrough;
pub use reheat::{Invalidated, PutEntry, Reheat, RunStatus, StartOptions};
pub use schedule::Schedule;
pub use wait::{WaitEvent, WaitOptions};
pub use worker::{Worker, WorkerOptions, WorkerState};
