//! kiln-sqlite's integration tests: the testkit's conformance suites against the SQLite
//! backends, plus SQLite-specific checks (files, reopening).

mod catalog;
mod queue;
mod render_cache;
