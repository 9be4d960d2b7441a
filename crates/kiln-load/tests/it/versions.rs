//! One request sees one version; the current version is cached; old version directories
//! are removed after their grace period unless pinned.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kiln_core::ids::VersionId;
use kiln_load::LoadConfig;
use kiln_testkit::chunks::{TestChunk, question_chunk};

use crate::support::{Env, r};

fn two_versions() -> ([TestChunk; 2], [TestChunk; 2]) {
    (
        [
            question_chunk("a", 2, 100, 1),
            question_chunk("b", 2, 100, 2),
        ],
        [
            question_chunk("a", 2, 100, 11),
            question_chunk("b", 2, 100, 12),
        ],
    )
}

#[tokio::test]
async fn a_request_spanning_a_version_switch_sees_one_version() {
    let env = Env::new();
    let ([a1, b1], [a2, b2]) = two_versions();
    env.publish("v2", &[&a2, &b2]).await;
    let v1 = env.publish("v1", &[&a1, &b1]).await;
    let cache = env.cache().await; // refresh_interval zero: every call asks the catalog
    // The first GET (chunk a of v1) switches the course to v2 mid-request.
    let (catalog, course) = (env.catalog.clone(), env.course.clone());
    let (m2, switched) = (
        vec![a2.entry.clone(), b2.entry.clone()],
        Arc::new(AtomicBool::new(false)),
    );
    let s = switched.clone();
    env.store.on_get(move || {
        if !s.swap(true, Ordering::SeqCst) {
            catalog.set_current(&course, &VersionId::new("v2").unwrap(), m2.clone());
        }
    });
    let e = cache.ensure(&env.course, &[r(&a1), r(&b1)]).await.unwrap();
    assert!(switched.load(Ordering::SeqCst));
    assert_eq!(e.version, v1);
    assert_eq!(e.chunks[0].id, a1.entry.id);
    assert_eq!(e.chunks[1].id, b1.entry.id);
    for (p, seed) in e.paths.iter().zip([1, 2]) {
        let info = std::fs::read_to_string(p.join("info.json")).unwrap();
        assert_eq!(info, format!("{{\"uuid\":\"{seed}\"}}"));
    }
    let next = cache.ensure(&env.course, &[r(&a1)]).await.unwrap();
    assert_eq!(next.version.as_str(), "v2");
    let info = std::fs::read_to_string(next.paths[0].join("info.json")).unwrap();
    assert_eq!(info, "{\"uuid\":\"11\"}");
}

#[tokio::test]
async fn the_current_version_is_cached_until_refreshed() {
    let env = Env::new();
    let ([a1, _], [a2, _]) = two_versions();
    env.publish("v1", &[&a1]).await;
    let cache = env
        .open(LoadConfig {
            refresh_interval: Duration::from_secs(3600),
            ..env.config()
        })
        .await;
    assert_eq!(
        cache
            .ensure(&env.course, &[r(&a1)])
            .await
            .unwrap()
            .version
            .as_str(),
        "v1"
    );
    env.publish("v2", &[&a2]).await;
    assert_eq!(
        cache
            .ensure(&env.course, &[r(&a1)])
            .await
            .unwrap()
            .version
            .as_str(),
        "v1"
    );
    assert_eq!(env.catalog.current_calls(), 1);
    cache.refresh_now(&env.course).await.unwrap();
    assert_eq!(
        cache
            .ensure(&env.course, &[r(&a1)])
            .await
            .unwrap()
            .version
            .as_str(),
        "v2"
    );
}

#[tokio::test]
async fn ensure_at_pins_a_version() {
    let env = Env::new();
    let ([a1, _], [a2, _]) = two_versions();
    let v1 = env.publish("v1", &[&a1]).await;
    env.publish("v2", &[&a2]).await;
    let cache = env.cache().await;
    let e = cache.ensure_at(&env.course, &v1, &[r(&a1)]).await.unwrap();
    assert_eq!(e.chunks[0].id, a1.entry.id);
    let err = cache
        .ensure_at(&env.course, &VersionId::new("v9").unwrap(), &[r(&a1)])
        .await
        .unwrap_err();
    assert!(matches!(err, kiln_core::Error::NotFound { .. }));
}

#[tokio::test]
async fn old_version_directories_go_after_the_grace_period_unless_pinned() {
    let env = Env::new();
    let ([a1, _], [a2, _]) = two_versions();
    let v1 = env.publish("v1", &[&a1]).await;
    let grace = env
        .open(LoadConfig {
            version_grace: Duration::from_secs(3600),
            ..env.config()
        })
        .await;
    let cache = env
        .open(LoadConfig {
            version_grace: Duration::ZERO,
            ..env.config()
        })
        .await;
    let held = cache.ensure(&env.course, &[r(&a1)]).await.unwrap();
    let v1_dir = held.root.clone();
    env.publish("v2", &[&a2]).await;
    let e2 = cache.ensure(&env.course, &[r(&a1)]).await.unwrap();
    drop(e2);

    assert_eq!(
        grace.maintain().await.unwrap().versions_removed,
        0,
        "within grace"
    );
    assert_eq!(
        cache.maintain().await.unwrap().versions_removed,
        0,
        "pinned"
    );
    assert!(v1_dir.join("questions/a/info.json").exists());
    drop(held);
    assert_eq!(cache.maintain().await.unwrap().versions_removed, 1);
    assert!(!v1_dir.exists());
    assert!(
        env.cache_dir()
            .join("courses/demo/v2/questions/a/info.json")
            .exists()
    );
    // The version comes back on demand.
    let again = cache.ensure_at(&env.course, &v1, &[r(&a1)]).await.unwrap();
    assert!(again.paths[0].join("info.json").exists());
}
