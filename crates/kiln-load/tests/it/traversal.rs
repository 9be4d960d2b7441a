//! Path traversal in every form is refused, and nothing outside a chunk is read.

use kiln_core::Error;
use kiln_core::ids::ChunkKind;
use kiln_testkit::chunks::BundleBuilder;

use crate::support::{Env, r};

#[tokio::test]
async fn bad_paths_are_invalid_input() {
    let env = Env::new();
    let q = BundleBuilder::new().file("info.json", "{}").build(
        ChunkKind::Question,
        "q1",
        "questions/q1",
    );
    env.publish("v1", &[&q]).await;
    let cache = env.cache().await;
    for p in [
        "../etc/passwd",
        "questions/q1/../../../etc/passwd",
        "/etc/passwd",
        "questions\\q1\\info.json",
        "questions/q1/info.json\0",
        "questions//q1/info.json",
        "./questions/q1/info.json",
        "",
    ] {
        let err = cache.resolve_file(&env.course, None, p).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{p:?}: {err:?}");
    }
}

#[tokio::test]
async fn symlinks_inside_a_chunk_work_and_tampered_ones_are_refused() {
    let env = Env::new();
    let q = BundleBuilder::new()
        .file("info.json", "{}")
        .file("a/real.txt", "real")
        .symlink("alias.txt", "a/real.txt")
        .build(ChunkKind::Question, "q1", "questions/q1");
    env.publish("v1", &[&q]).await;
    let cache = env.cache().await;
    let f = cache
        .resolve_file(&env.course, None, "questions/q1/alias.txt")
        .await
        .unwrap();
    assert_eq!(f.open().unwrap().1.len(), 4);

    // Someone plants a link to a file outside the cache inside the chunk directory.
    let outside = env.dir.join("secret.txt");
    std::fs::write(&outside, "secret").unwrap();
    let chunk_dir = env.chunk_dir(&q);
    let mut perms = std::fs::metadata(&chunk_dir).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&chunk_dir, perms).unwrap();
    std::os::unix::fs::symlink(&outside, chunk_dir.join("planted.txt")).unwrap();
    std::os::unix::fs::symlink("../../../../secret.txt", chunk_dir.join("planted2.txt")).unwrap();
    for p in ["questions/q1/planted.txt", "questions/q1/planted2.txt"] {
        let f = cache.resolve_file(&env.course, None, p).await.unwrap();
        assert!(
            matches!(f.open().unwrap_err(), Error::NotFound { .. }),
            "{p}"
        );
    }
    // A directory is not a file either.
    let f = cache
        .resolve_file(&env.course, None, "questions/q1/a")
        .await
        .unwrap();
    assert!(matches!(f.open().unwrap_err(), Error::NotFound { .. }));
    let _ = r(&q);
}
