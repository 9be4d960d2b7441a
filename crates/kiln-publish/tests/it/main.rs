//! kiln-publish's integration tests: the ContentView suite against the catalog and the
//! published view on every store, and the published view's own properties.

mod content;
mod published;
mod support;
