//! Corrupt bundles are detected, fetched once more, reported, and never served; transient
//! store errors are retried; not-found is final.

use kiln_core::Error;
use kiln_testkit::chunks::{BundleBuilder, question_chunk};
use kiln_testkit::store::StoreFault;
use object_store::ObjectStore;

use crate::support::{Env, r};

#[tokio::test]
async fn a_corrupt_object_is_fetched_once_more_then_refused() {
    let env = Env::new();
    let good = question_chunk("q1", 3, 1_000, 1);
    let other = question_chunk("q1", 3, 1_000, 2);
    // The store holds other content under the good chunk's key.
    env.publish("v1", &[&good]).await;
    let key = kiln_chunk::key::object_key(&good.entry.id);
    env.store
        .put(&key, other.bundle.clone().into())
        .await
        .unwrap();
    let before = env.store.gets();
    let cache = env.cache().await;
    let err = cache.ensure(&env.course, &[r(&good)]).await.unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert!(
        err.to_string().contains("question:q1"),
        "names the chunk: {err}"
    );
    assert_eq!(
        env.store.gets() - before,
        2,
        "fetched once more, then gave up"
    );
    assert!(!env.chunk_dir(&good).exists(), "corrupt content served");
    let m = cache.metrics();
    assert_eq!((m.corrupt, m.errors, m.downloads), (2, 1, 0));
    // The next request tries again and still refuses.
    assert!(cache.ensure(&env.course, &[r(&good)]).await.is_err());
    assert!(!env.chunk_dir(&good).exists());
}

#[tokio::test]
async fn a_flipped_byte_is_survived_by_the_second_fetch() {
    let env = Env::new();
    let q = question_chunk("q1", 5, 10_000, 1);
    env.publish("v1", &[&q]).await;
    env.store.push_fault(StoreFault::Corrupt);
    let cache = env.cache().await;
    let ensured = cache.ensure(&env.course, &[r(&q)]).await.unwrap();
    assert_eq!(env.store.gets(), 2);
    assert_eq!(cache.metrics().corrupt, 1);
    let info = std::fs::read_to_string(ensured.paths[0].join("info.json")).unwrap();
    assert_eq!(info, "{\"uuid\":\"1\"}");
}

#[tokio::test]
async fn transient_errors_are_retried() {
    let env = Env::new();
    let q = question_chunk("q1", 2, 100, 1);
    env.publish("v1", &[&q]).await;
    env.store.push_fault(StoreFault::Transient);
    env.store.push_fault(StoreFault::Transient);
    let cache = env.cache().await;
    cache.ensure(&env.course, &[r(&q)]).await.unwrap();
    assert_eq!(env.store.gets(), 3);
    assert_eq!(cache.metrics().retries, 2);
}

#[tokio::test]
async fn too_many_transient_errors_fail_as_unavailable() {
    let env = Env::new();
    let q = question_chunk("q1", 2, 100, 1);
    env.publish("v1", &[&q]).await;
    for _ in 0..10 {
        env.store.push_fault(StoreFault::Transient);
    }
    let cache = env.cache().await;
    let err = cache.ensure(&env.course, &[r(&q)]).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(env.store.gets(), 5, "one try and four retries");
}

#[tokio::test]
async fn a_missing_object_is_not_found_at_once() {
    let env = Env::new();
    let q = question_chunk("q1", 2, 100, 1);
    env.publish_catalog_only("v1", &[&q]);
    let cache = env.cache().await;
    let err = cache.ensure(&env.course, &[r(&q)]).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(env.store.gets(), 1);
}

#[tokio::test]
async fn a_bundle_with_an_escaping_symlink_is_never_served() {
    let env = Env::new();
    let evil = BundleBuilder::new()
        .file("info.json", "{}")
        .symlink("passwd", "../../../../../../etc/passwd")
        .build(
            kiln_core::ids::ChunkKind::Question,
            "evil",
            "questions/evil",
        );
    env.publish("v1", &[&evil]).await;
    let cache = env.cache().await;
    let err = cache.ensure(&env.course, &[r(&evil)]).await.unwrap_err();
    assert!(
        err.to_string().contains("points outside the chunk"),
        "{err}"
    );
    assert!(!env.chunk_dir(&evil).exists());
}

#[tokio::test]
async fn unknown_chunks_and_courses_are_not_found() {
    let env = Env::new();
    let q = question_chunk("q1", 2, 100, 1);
    env.publish("v1", &[&q]).await;
    let cache = env.cache().await;
    let err = cache
        .ensure(&env.course, &["question:nope".parse().unwrap()])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert!(err.to_string().contains("question:nope"), "{err}");
    let other = kiln_core::ids::CourseId::new("other").unwrap();
    let err = cache.ensure(&other, &[r(&q)]).await.unwrap_err();
    assert!(err.to_string().contains("\"other\""), "{err}");
}
