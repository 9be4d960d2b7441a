//! Clocks for tests: [`ManualClock`] moves only when told, [`TokioClock`] follows tokio's
//! time, so that a test under `tokio::time::pause()` moves backends and sleeps together.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use kiln_core::time::{Clock, SharedClock, SystemClock, Timestamp};

/// A clock that stands still until [`ManualClock::advance`]; clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock starting at the current wall-clock time (so stored times look real).
    pub fn new() -> Self {
        Self::at(SystemClock.now())
    }

    /// A clock starting at `t`.
    pub fn at(t: Timestamp) -> Self {
        ManualClock {
            millis: Arc::new(AtomicI64::new(t.0)),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.millis
            .fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }

    /// This clock as a [`SharedClock`] (sharing its time).
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.millis.load(Ordering::SeqCst))
    }
}

/// The wall-clock time at creation plus the tokio time elapsed since: under
/// `tokio::time::pause()` it advances exactly as tokio's sleeps and timeouts do.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: Timestamp,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading the wall-clock time now; call inside a tokio runtime.
    pub fn new() -> Self {
        TokioClock {
            start: SystemClock.now(),
            origin: tokio::time::Instant::now(),
        }
    }

    /// This clock as a [`SharedClock`].
    pub fn shared(self) -> SharedClock {
        Arc::new(self)
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.start.plus(self.origin.elapsed())
    }
}
