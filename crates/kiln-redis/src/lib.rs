//! kiln-redis: the RenderCache trait on Redis, with Redis's own TTL for expiry marks.
//!
//! See [`RedisRenderCache`] for the key layout.

mod cache;
mod error;

pub use cache::RedisRenderCache;
