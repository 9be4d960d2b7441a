//! kiln-redis: the RenderCache trait on Redis, with Redis's own TTL for expiry marks, and
//! new published heads announced to a fleet of servers over pub/sub ([`announce`]).
//!
//! See [`RedisRenderCache`] for the key layout.

pub mod announce;

mod cache;
mod error;

pub use cache::RedisRenderCache;
