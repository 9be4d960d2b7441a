//! The render-cache conformance suite on [`MemCache`].

use std::sync::Arc;

use kiln_core::render_cache::RenderCache;
use kiln_core::time::SharedClock;
use kiln_testkit::mem::render_cache::MemCache;

async fn setup(clock: SharedClock) -> Arc<dyn RenderCache> {
    Arc::new(MemCache::new().with_clock(clock))
}

mod suite {
    kiln_testkit::render_cache_tests!(clock => super::setup(clock));
}

#[tokio::test]
async fn names_itself() {
    assert_eq!(MemCache::default().to_string(), "MemCache");
}
