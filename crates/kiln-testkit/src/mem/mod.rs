//! In-memory backends of kiln's traits: each passes its trait's whole conformance suite
//! (run from kiln-testkit's `tests/it`), so tests that need no files use them instead of
//! partial doubles.

pub mod catalog;
pub mod ledger;
