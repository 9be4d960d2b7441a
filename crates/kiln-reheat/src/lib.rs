//! kiln-reheat.
