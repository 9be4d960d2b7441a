//! kiln-testkit's integration tests: its in-memory backends against their traits' whole
//! conformance suites.

mod mem;
