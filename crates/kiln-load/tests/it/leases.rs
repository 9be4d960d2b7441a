//! Leases: what an ensure names stays on disk (chunks and version directory) until the
//! lease is released or expires, past the byte budget if need be.

use std::time::Duration;

use futures::future::join_all;
use kiln_core::Error;
use kiln_load::LoadConfig;
use kiln_testkit::chunks::{TestChunk, question_chunk};

use crate::support::{Env, r};

fn chunks(n: u64) -> Vec<TestChunk> {
    (0..n)
        .map(|i| question_chunk(&format!("q{i}"), 4, 5_000, i))
        .collect()
}

/// Leases that may keep any number of bytes: what these tests hold past the budget on
/// purpose (the limits have their own tests in kiln-server's).
fn unbounded_bytes() -> kiln_load::LeaseLimits {
    kiln_load::LeaseLimits {
        max_over_budget: Some(u64::MAX),
        max_bytes_per_holder: Some(u64::MAX),
        ..kiln_load::LeaseLimits::default()
    }
}

#[tokio::test]
async fn a_lease_holds_chunks_past_the_budget_until_released() {
    let env = Env::new();
    let qs = chunks(8);
    env.publish("v1", &qs.iter().collect::<Vec<_>>()).await;
    let budget = 30_000;
    let cache = env
        .open(LoadConfig {
            budget_bytes: budget,
            lease_limits: unbounded_bytes(),
            ..env.config()
        })
        .await;
    let refs: Vec<_> = qs.iter().map(|q| [r(q)]).collect();
    let held: Vec<_> = join_all(refs[..4].iter().map(|q| cache.ensure(&env.course, q)))
        .await
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            cache.lease(e.pin, None).unwrap()
        })
        .collect();
    for q in &qs[4..] {
        cache.ensure(&env.course, &[r(q)]).await.unwrap();
    }
    for q in &qs[..4] {
        assert!(
            env.chunk_dir(q).join("info.json").exists(),
            "leased chunk evicted"
        );
    }
    let m = cache.metrics();
    assert_eq!(m.leases_active, 4);
    assert!(m.cache_bytes > budget, "{m:?}");
    assert_eq!(m.bytes_over_budget, m.cache_bytes - budget);
    assert_eq!(held[0].ttl, Duration::from_secs(60), "the default duration");

    for l in &held {
        cache.release_lease(&l.id).unwrap();
    }
    let m = cache.metrics();
    assert_eq!(m.leases_active, 0);
    assert_eq!(
        m.bytes_over_budget, 0,
        "released leases give the budget back: {m:?}"
    );
    let err = cache.release_lease(&held[0].id).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = cache.renew_lease(&held[0].id, None).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_lease_expires_unless_renewed() {
    let env = Env::new();
    let qs = chunks(4);
    env.publish("v1", &qs.iter().collect::<Vec<_>>()).await;
    let cache = env
        .open(LoadConfig {
            budget_bytes: 1,
            lease_ttl: Duration::from_secs(10),
            lease_limits: unbounded_bytes(),
            ..env.config()
        })
        .await;
    let a = cache.ensure(&env.course, &[r(&qs[0])]).await.unwrap();
    let a = cache.lease(a.pin, None).unwrap();
    let b = cache.ensure(&env.course, &[r(&qs[1])]).await.unwrap();
    let b = cache.lease(b.pin, Some(Duration::from_secs(30))).unwrap();
    assert_eq!(b.ttl, Duration::from_secs(30));
    tokio::time::advance(Duration::from_secs(8)).await;
    let a2 = cache.renew_lease(&a.id, None).unwrap();
    assert_eq!((a2.id, a2.ttl), (a.id, Duration::from_secs(10)));
    tokio::time::advance(Duration::from_secs(8)).await;
    // a was renewed at 8 s for 10 s, b runs to 30 s: both hold at 16 s.
    assert_eq!(cache.expire_leases(), 0);
    assert!(env.chunk_dir(&qs[0]).exists() && env.chunk_dir(&qs[1]).exists());
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(cache.expire_leases(), 1, "a ends at 18 s");
    assert!(
        !env.chunk_dir(&qs[0]).exists(),
        "an expired lease's chunk is evictable"
    );
    assert!(env.chunk_dir(&qs[1]).exists());
    let err = cache.renew_lease(&a.id, None).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(cache.metrics().leases_active, 0);
    assert!(!env.chunk_dir(&qs[1]).exists());
}

#[tokio::test]
async fn lease_durations_are_checked() {
    let env = Env::new();
    let qs = chunks(1);
    env.publish("v1", &[&qs[0]]).await;
    let cache = env.cache().await;
    for bad in [Duration::ZERO, Duration::from_secs(3601)] {
        let e = cache.ensure(&env.course, &[r(&qs[0])]).await.unwrap();
        let err = cache.lease(e.pin, Some(bad)).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        assert!(err.to_string().contains("lease ttl"), "{err}");
    }
    let other = env.cache().await;
    let e = other.ensure(&env.course, &[r(&qs[0])]).await.unwrap();
    assert!(matches!(
        cache.lease(e.pin, None),
        Err(Error::InvalidInput(_))
    ));
}

#[tokio::test]
async fn a_leased_version_directory_survives_the_old_version_gc() {
    let env = Env::new();
    let q1 = question_chunk("a", 2, 100, 1);
    let q2 = question_chunk("a", 2, 100, 2);
    env.publish("v1", &[&q1]).await;
    let cache = env
        .open(LoadConfig {
            version_grace: Duration::ZERO,
            ..env.config()
        })
        .await;
    let e = cache.ensure(&env.course, &[r(&q1)]).await.unwrap();
    let v1_dir = e.root.clone();
    let lease = cache.lease(e.pin, None).unwrap();
    env.publish("v2", &[&q2]).await;
    cache.ensure(&env.course, &[r(&q2)]).await.unwrap();
    assert_eq!(cache.maintain().await.unwrap().versions_removed, 0);
    assert!(v1_dir.join("questions/a/info.json").exists());
    cache.release_lease(&lease.id).unwrap();
    assert_eq!(cache.maintain().await.unwrap().versions_removed, 1);
    assert!(!v1_dir.exists());
}
