//! kiln-testkit's integration tests: the conformance suites against the in-memory backends
//! (run from here, not as unit tests, so that they see the one copy of kiln-core's types).

mod queue;
mod render_cache;
