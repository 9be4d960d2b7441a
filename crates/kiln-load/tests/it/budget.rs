//! LRU eviction under the byte budget, never evicting a pinned chunk.

use std::sync::Arc;

use futures::future::join_all;
use kiln_load::LoadConfig;
use kiln_testkit::chunks::{TestChunk, question_chunk};
use rand::{Rng, SeedableRng};

use crate::support::{Env, du, r};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_workload_stays_within_budget_plus_the_largest_chunk() {
    let env = Env::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let chunks: Vec<TestChunk> = (0..40)
        .map(|i| {
            question_chunk(
                &format!("q{i}"),
                rng.random_range(1..8),
                rng.random_range(100..16_000),
                i,
            )
        })
        .collect();
    let refs: Vec<&TestChunk> = chunks.iter().collect();
    env.publish("v1", &refs).await;
    let sizes: Vec<u64> = chunks.iter().map(|c| c.entry.size).collect();
    let largest = *sizes.iter().max().unwrap();
    let budget = 150_000;
    let cache = Arc::new(
        env.open(LoadConfig {
            budget_bytes: budget,
            ..env.config()
        })
        .await,
    );
    let chunks_dir = env.cache_dir().join("courses/demo/.chunks");
    for step in 0..150 {
        // A few concurrent requests of one to three chunks each.
        let tasks = (0..rng.random_range(1..4)).map(|_| {
            let picks: Vec<_> = (0..rng.random_range(1..4))
                .map(|_| r(&chunks[rng.random_range(0..chunks.len())]))
                .collect();
            let (cache, course) = (cache.clone(), env.course.clone());
            tokio::spawn(async move { cache.ensure(&course, &picks).await.map(|e| e.paths.len()) })
        });
        for res in join_all(tasks).await {
            res.unwrap().unwrap();
        }
        let used = du(&chunks_dir);
        assert!(
            used <= budget + largest,
            "step {step}: {used} bytes on disk, budget {budget} + largest {largest}"
        );
        assert!(cache.metrics().cache_bytes <= budget + largest);
    }
    assert!(
        cache.metrics().evictions > 0,
        "the workload must exceed the budget"
    );
}

#[tokio::test]
async fn a_pinned_chunk_is_never_evicted() {
    let env = Env::new();
    let chunks: Vec<TestChunk> = (0..10)
        .map(|i| question_chunk(&format!("q{i}"), 4, 5_000, i))
        .collect();
    let refs: Vec<&TestChunk> = chunks.iter().collect();
    env.publish("v1", &refs).await;
    let cache = env
        .open(LoadConfig {
            budget_bytes: 30_000,
            ..env.config()
        })
        .await;
    let held = cache.ensure(&env.course, &[r(&chunks[0])]).await.unwrap();
    for c in &chunks[1..] {
        cache.ensure(&env.course, &[r(c)]).await.unwrap();
        assert!(
            env.chunk_dir(&chunks[0]).join("info.json").exists(),
            "pinned chunk evicted"
        );
    }
    assert!(cache.metrics().evictions >= 5);
    drop(held);
    // Once released it is the least recently used, and the next fetch evicts it.
    cache.ensure(&env.course, &[r(&chunks[1])]).await.unwrap();
    cache.ensure(&env.course, &[r(&chunks[2])]).await.unwrap();
    assert!(!env.chunk_dir(&chunks[0]).exists(), "released chunk kept");
}

#[tokio::test]
async fn a_restart_rebuilds_the_index_from_disk() {
    let env = Env::new();
    let a = question_chunk("a", 3, 1_000, 1);
    let b = question_chunk("b", 3, 1_000, 2);
    env.publish("v1", &[&a, &b]).await;
    let cache = env.cache().await;
    cache.ensure(&env.course, &[r(&a), r(&b)]).await.unwrap();
    let bytes = cache.metrics().cache_bytes;
    drop(cache);
    let cache = env.cache().await;
    assert_eq!(cache.metrics().cache_chunks, 2);
    assert_eq!(cache.metrics().cache_bytes, bytes);
    let again = cache.ensure(&env.course, &[r(&a), r(&b)]).await.unwrap();
    assert!(again.downloaded.is_empty());
    assert_eq!(env.store.gets(), 2);
}
