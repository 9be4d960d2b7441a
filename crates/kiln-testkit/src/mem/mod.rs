//! In-memory backends of kiln's traits: full implementations that pass their conformance
//! suites (run from kiln-testkit's `tests/it`), for tests that need no files or services,
//! instead of partial doubles. Each reads time from an injected clock, so a test under a
//! `ManualClock` (or `tokio::time::pause()` with a `TokioClock`) controls it.

pub mod catalog;
pub mod ledger;
pub mod queue;
pub mod render_cache;

use std::sync::{Mutex, MutexGuard};

/// Locks a backend's state. Each method checks before it changes anything and does not
/// await under the lock, so a panic while holding it leaves a consistent state: a
/// poisoned lock is still usable.
fn lock<T>(state: &Mutex<T>) -> MutexGuard<'_, T> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}
