//! kiln-testkit: the conformance suites of kiln's backend traits, in-memory backends that
//! pass them ([`mem`]), test clocks, course generators, test chunks and object stores, and
//! a TCP proxy that cuts a service off ([`proxy`]).
//!
//! Each suite is a module of plain `pub async fn` checks plus a macro that stamps out one
//! `#[tokio::test]` per check for a backend's `setup()` (see STYLE.md section 3).

pub mod catalog;
pub mod chunks;
pub mod clock;
pub mod content;
pub mod course_gen;
pub mod ledger;
pub mod mem;
pub mod proxy;
pub mod queue;
pub mod render_cache;
pub mod services;
pub mod store;
