//! A catalog outage: the last known current version is served, marked stale, for up to
//! `max_stale`; requests do not wait for a catalog known to fail; health says which backend.

use std::time::Duration;

use kiln_core::Error;
use kiln_load::{Backend, LoadConfig};
use kiln_testkit::chunks::question_chunk;

use crate::support::{Env, r};

#[tokio::test]
async fn the_last_known_version_is_served_stale_while_the_catalog_is_down() {
    let env = Env::new();
    let a = question_chunk("a", 2, 100, 1);
    env.publish("v1", &[&a]).await;
    let cache = env.cache().await; // refresh_interval zero: every call asks the catalog
    let e = cache.ensure(&env.course, &[r(&a)]).await.unwrap();
    assert_eq!(e.stale, None);
    drop(e);
    env.catalog.set_down(true);
    let calls = env.catalog.current_calls();
    for _ in 0..5 {
        let e = cache.ensure(&env.course, &[r(&a)]).await.unwrap();
        assert_eq!(e.version.as_str(), "v1");
        assert!(e.stale.is_some());
        assert!(e.paths[0].join("info.json").is_file());
    }
    let f = cache
        .resolve_file(&env.course, None, "questions/a/info.json")
        .await
        .unwrap();
    assert!(f.ensured.stale.is_some());
    // Only the first request waited for the failing catalog; later ones each started at
    // most one background refresh.
    assert!(env.catalog.current_calls() - calls <= 7);
    let health = cache.health();
    let catalog = health
        .iter()
        .find(|h| h.backend == Backend::Catalog)
        .unwrap();
    assert!(
        catalog
            .error
            .as_deref()
            .unwrap()
            .contains("connection refused"),
        "{health:?}"
    );
    let probed = cache.probe(Duration::from_secs(5)).await;
    assert!(probed[0].error.is_some(), "{probed:?}");
    assert_eq!(probed[1].error, None, "{probed:?}");
    assert_eq!(probed[2].error, None, "{probed:?}");

    // A course never seen has no last known version.
    let other = kiln_core::ids::CourseId::new("other").unwrap();
    let err = cache.ensure(&other, &[r(&a)]).await.unwrap_err();
    assert!(err.is_transient(), "{err}");

    env.catalog.set_down(false);
    let e = cache.ensure(&env.course, &[r(&a)]).await.unwrap();
    // Possibly answered by the background refresh's result: either way fresh again soon.
    if e.stale.is_some() {
        drop(e);
        cache.refresh_now(&env.course).await.unwrap();
        assert_eq!(
            cache.ensure(&env.course, &[r(&a)]).await.unwrap().stale,
            None
        );
    }
    assert!(cache.health()[0].error.is_none());
}

#[tokio::test]
async fn staleness_is_bounded_by_max_stale() {
    let env = Env::new();
    let a = question_chunk("a", 2, 100, 1);
    env.publish("v1", &[&a]).await;
    let cache = env
        .open(LoadConfig {
            max_stale: Duration::ZERO,
            ..env.config()
        })
        .await;
    cache.ensure(&env.course, &[r(&a)]).await.unwrap();
    env.catalog.set_down(true);
    let err = cache.ensure(&env.course, &[r(&a)]).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    // A pinned version does not need the catalog once its manifest is known.
    let v1 = kiln_core::ids::VersionId::new("v1").unwrap();
    let e = cache.ensure_at(&env.course, &v1, &[r(&a)]).await.unwrap();
    assert_eq!(e.stale, None);
}
