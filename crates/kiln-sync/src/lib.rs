//! kiln-sync.
