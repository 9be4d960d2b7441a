//! kiln-postgres.
