//! 1,000 concurrent ensures of one cold chunk download it once.

use std::sync::Arc;

use futures::future::join_all;
use kiln_testkit::chunks::question_chunk;

use crate::support::{Env, r};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_ensures_download_once() {
    let env = Env::new();
    let q = question_chunk("topic/q1", 10, 10_000, 1);
    env.publish("v1", &[&q]).await;
    let cache = Arc::new(env.cache().await);
    let tasks = (0..1000).map(|_| {
        let (cache, course, chunk) = (cache.clone(), env.course.clone(), r(&q));
        tokio::spawn(async move { cache.ensure(&course, &[chunk]).await })
    });
    let results = join_all(tasks).await;
    let mut reported = 0;
    for res in results {
        let ensured = res.unwrap().unwrap();
        reported += ensured.downloaded.len();
        let info = std::fs::read_to_string(ensured.paths[0].join("info.json")).unwrap();
        assert_eq!(info, "{\"uuid\":\"1\"}");
    }
    assert_eq!(env.store.gets(), 1, "store GETs");
    assert_eq!(cache.metrics().downloads, 1);
    assert_eq!(reported, 1, "exactly one call reports the download");
    assert_eq!(cache.metrics().hits + cache.metrics().misses, 1000);
}

#[tokio::test]
async fn a_warm_ensure_does_not_touch_the_store() {
    let env = Env::new();
    let q = question_chunk("q1", 3, 100, 2);
    env.publish("v1", &[&q]).await;
    let cache = env.cache().await;
    let first = cache.ensure(&env.course, &[r(&q)]).await.unwrap();
    assert_eq!(first.downloaded, vec![r(&q)]);
    drop(first);
    let again = cache.ensure(&env.course, &[r(&q)]).await.unwrap();
    assert!(again.downloaded.is_empty());
    assert_eq!(env.store.gets(), 1);
    assert_eq!(cache.metrics().hits, 1);
}
