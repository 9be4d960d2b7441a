//! A chunk the cache's disk cannot hold fails its ensure with an error that names the chunk
//! and the operating system's cause, not a bare backend failure; nothing is left behind, and
//! the rest of the version still loads. (Sync refuses such paths now; a version published
//! before it did, or a chunk written into the store by other means, still reaches servers.)

use kiln_core::Error;
use kiln_core::ids::ChunkKind;
use kiln_testkit::chunks::{BundleBuilder, question_chunk};

use crate::support::{Env, r};

#[tokio::test]
async fn a_name_the_disk_cannot_hold_fails_naming_the_chunk_and_the_cause() {
    let env = Env::new();
    // Bundled directly: sync would refuse the 256-byte name.
    let long = BundleBuilder::new()
        .file("info.json", "{}")
        .file(&format!("{}.txt", "n".repeat(252)), "x")
        .build(ChunkKind::Question, "topic/long", "questions/topic/long");
    let fine = question_chunk("topic/fine", 2, 100, 1);
    env.publish("v1", &[&long, &fine]).await;
    let cache = env.cache().await;
    let err = cache.ensure(&env.course, &[r(&long)]).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        !matches!(err, Error::Backend { .. }),
        "the disk's failure, not a backend's: {msg}"
    );
    for part in [
        "question:topic/long",
        &long.entry.id.to_hex(),
        "course demo",
        "File name too long",
    ] {
        assert!(msg.contains(part), "{msg:?} should name {part:?}");
    }
    assert!(
        !msg.contains(&env.dir.display().to_string()),
        "no path of the machine: {msg}"
    );
    assert!(!env.chunk_dir(&long).exists());
    let staging = std::fs::read_dir(env.cache_dir().join("tmp"))
        .unwrap()
        .count();
    assert_eq!(staging, 0, "staging emptied");
    cache.ensure(&env.course, &[r(&fine)]).await.unwrap();
}

/// Sync accepts paths that fit below a cache directory of at most 612 bytes; a longer one
/// is refused when the cache opens rather than failing ensures later.
#[tokio::test]
async fn a_cache_directory_too_long_for_the_paths_below_it_is_refused() {
    let env = Env::new();
    let mut dir = env.dir.clone();
    while dir.as_os_str().len() <= 612 {
        dir.push("c".repeat(100));
    }
    let config = kiln_load::LoadConfig {
        cache_dir: dir,
        ..env.config()
    };
    let err = kiln_load::ChunkCache::open(
        config,
        std::sync::Arc::new(kiln_publish::CatalogView::new(
            env.catalog.clone(),
            env.store.clone(),
        )),
        env.store.clone(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains("612"), "{err}");
}
