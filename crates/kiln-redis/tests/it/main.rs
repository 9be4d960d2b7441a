//! kiln-redis's integration tests against the Redis at `TEST_REDIS_URL` (skipped without
//! it): the conformance suite, plus what is Redis's own (native TTL, prefixes, connect errors).

mod native;

use std::sync::Arc;

use kiln_core::render_cache::RenderCache;
use kiln_core::time::SharedClock;
use kiln_redis::RedisRenderCache;

/// The render-cache suite, each test under a fresh prefix and on the suite's clock. Redis
/// expires marked entries itself, by its own clock, so `purge_expired` has nothing to do
/// (`native_expiry`); reads and prunes decide expiry by the suite's clock.
mod render_cache_suite {
    kiln_testkit::render_cache_tests!(
        clock => {
            // A block, not an async block: a missing server returns from the test (skipped).
            let url = kiln_testkit::skip_unless_env!("TEST_REDIS_URL");
            crate::render_cache(url, clock)
        },
        kiln_testkit::render_cache::Caps {
            native_expiry: true
        }
    );
}

pub(crate) async fn render_cache(url: String, clock: SharedClock) -> Arc<dyn RenderCache> {
    Arc::new(fresh_cache(&url).await.with_clock(clock))
}

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
