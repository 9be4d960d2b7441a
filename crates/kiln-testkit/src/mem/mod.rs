//! In-memory backends of kiln's traits: full implementations that pass their conformance
//! suites, for tests that need no files or services. Each reads time from an injected
//! clock, so a test under a `ManualClock` (or `tokio::time::pause()` with a `TokioClock`)
//! controls it.

pub mod queue;
pub mod render_cache;
