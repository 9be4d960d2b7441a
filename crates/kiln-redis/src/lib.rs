//! kiln-redis.
