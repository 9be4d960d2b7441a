//! kiln-sqlite.
