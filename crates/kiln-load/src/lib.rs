//! kiln-load.
