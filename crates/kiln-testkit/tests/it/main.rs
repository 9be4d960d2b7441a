//! kiln-testkit's integration tests: the in-memory backends against their traits' whole
//! conformance suites (run from here, not as unit tests, so that they see the one copy of
//! kiln-core's types), and the cuttable proxy.

mod mem;
mod proxy;
mod queue;
mod render_cache;
