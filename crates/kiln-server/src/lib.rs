//! kiln-server.
