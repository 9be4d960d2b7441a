//! kiln-sync's integration tests: the example course, incremental syncs, sources, bad input
//! and concurrency, against a temporary SQLite catalog and a local object store.

mod concurrency;
mod errors;
mod example;
mod gc_race;
mod incremental;
mod long_paths;
mod root_links;
mod sources;
mod support;
mod tocs;
