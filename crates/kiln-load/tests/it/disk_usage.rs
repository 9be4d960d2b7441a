//! The budget bounds what chunks take on disk, not the bytes of their files: a question of
//! many small files takes a block (4 KiB on ext4) and an inode for each, so it is accounted
//! as allocated, and eviction keeps what `du` reports of the chunk directories under the
//! budget.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use kiln_core::ids::ChunkKind;
use kiln_load::LoadConfig;
use kiln_testkit::chunks::{BundleBuilder, TestChunk};

use crate::support::{Env, r};

/// A question of `files` one-byte files, a hundred to a directory.
fn small_files(qid: &str, files: usize, seed: u8) -> TestChunk {
    let mut b = BundleBuilder::new().file("info.json", format!("{{\"uuid\":\"{qid}\"}}"));
    for i in 0..files {
        b = b.file(&format!("d{:03}/f{i:05}.txt", i / 100), vec![seed]);
    }
    b.build(ChunkKind::Question, qid, &format!("questions/{qid}"))
}

/// What `du -s --block-size=1` reports of `dir`: allocated blocks of every entry below it
/// and of itself, links not followed (0 when it does not exist).
fn allocated(dir: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for e in std::fs::read_dir(dir).unwrap() {
            total += allocated(&e.unwrap().path());
        }
    }
    total
}

#[tokio::test]
async fn a_chunk_of_5000_small_files_is_accounted_as_allocated() {
    let env = Env::new();
    let q = small_files("q0", 5_000, 1);
    env.publish("v1", &[&q]).await;
    let cache = env.cache().await;
    drop(cache.ensure(&env.course, &[r(&q)]).await.unwrap());
    let on_disk = allocated(&env.chunk_dir(&q));
    let accounted = cache.metrics().cache_bytes;
    assert!(
        accounted >= on_disk,
        "accounted {accounted} bytes, {on_disk} allocated on disk"
    );
    // A restart sizes the chunk the same way.
    drop(cache);
    assert_eq!(env.cache().await.metrics().cache_bytes, accounted);
}

#[tokio::test]
async fn eviction_keeps_the_allocated_total_under_the_budget() {
    let env = Env::new();
    let qs: Vec<TestChunk> = (0..4)
        .map(|i| small_files(&format!("q{i}"), 2_000, i as u8))
        .collect();
    let refs: Vec<&TestChunk> = qs.iter().collect();
    env.publish("v1", &refs).await;
    // Room for about two of them on disk, and for all of them as file bytes.
    let budget = 20 << 20;
    let cache = env
        .open(LoadConfig {
            budget_bytes: budget,
            ..env.config()
        })
        .await;
    let chunks_dir = env.cache_dir().join("courses/demo/.chunks");
    for q in &qs {
        drop(cache.ensure(&env.course, &[r(q)]).await.unwrap());
        // The chunk directories, not `.chunks` itself.
        let on_disk: u64 = std::fs::read_dir(&chunks_dir)
            .unwrap()
            .map(|e| allocated(&e.unwrap().path()))
            .sum();
        assert!(
            on_disk <= budget,
            "{on_disk} bytes allocated in chunk directories, over the budget of {budget}"
        );
        assert!(cache.metrics().cache_bytes >= on_disk);
    }
    assert!(
        cache.metrics().evictions > 0,
        "the chunks exceed the budget"
    );
}
