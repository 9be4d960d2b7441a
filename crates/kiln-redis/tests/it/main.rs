//! kiln-redis's integration tests against the Redis at `TEST_REDIS_URL` (skipped without
//! it): the conformance suite, plus what is Redis's own (native TTL, prefixes, connect errors).

mod native;

use kiln_redis::RedisRenderCache;

/// A key prefix no other test uses: tests run in parallel and none touches another's keys.
pub(crate) fn random_prefix() -> String {
    format!("kiln_test_{:016x}", rand::random::<u64>())
}

/// A cache under a fresh prefix on the test server.
pub(crate) async fn fresh_cache(url: &str) -> RedisRenderCache {
    RedisRenderCache::connect(url, &random_prefix())
        .await
        .expect("connecting to TEST_REDIS_URL")
}
