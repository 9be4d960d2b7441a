//! What is Redis's own: expiry marks are the keys' native TTL (a put clears it), a prefix
//! isolates deployments, and bad prefixes, bad URLs and unreachable servers are clear errors.

use std::time::Duration;

use bytes::Bytes;
use kiln_core::Error;
use kiln_core::ids::LibraryName;
use kiln_core::render_cache::{CacheEntry, PruneScope, PutOutcome, RenderCache};
use kiln_core::time::Timestamp;
use kiln_redis::RedisRenderCache;

fn entry(key: &str, generation: u64, group: &str) -> CacheEntry {
    CacheEntry {
        key: key.into(),
        bytes: Bytes::from(format!("<p>{key}</p>")),
        content_type: "text/html".into(),
        generation,
        group: group.into(),
        written_at: Timestamp::now(),
        expires_at: None,
        meta: Default::default(),
        stale: false,
    }
}

async fn pttl(url: &str, key: &str) -> i64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_mark_is_the_keys_own_ttl_and_a_put_clears_it() {
    let url = kiln_testkit::skip_unless_env!("TEST_REDIS_URL");
    let cache = crate::fresh_cache(&url).await;
    let lib = LibraryName::new("guides").unwrap();
    let key = format!("{}:guides:e:a/b", cache.prefix());
    cache.put(&lib, vec![entry("a/b", 1, "g1")]).await.unwrap();
    assert_eq!(pttl(&url, &key).await, -1, "a fresh entry has no TTL");

    let scope = PruneScope {
        group: Some("g1".into()),
        below_generation: 2,
    };
    let at = Timestamp::now().plus(Duration::from_secs(3600));
    assert_eq!(cache.mark_expiring(&lib, &scope, at).await.unwrap(), 1);
    let ttl = pttl(&url, &key).await;
    assert!(ttl > 3_500_000 && ttl <= 3_600_000, "ttl {ttl}");
    let got = cache.get(&lib, "a/b").await.unwrap().unwrap();
    assert_eq!(got.expires_at, Some(at));

    assert_eq!(
        cache.put(&lib, vec![entry("a/b", 2, "g1")]).await.unwrap(),
        vec![PutOutcome::Written]
    );
    assert_eq!(pttl(&url, &key).await, -1, "a rewrite persists the key");
    assert_eq!(
        cache.get(&lib, "a/b").await.unwrap().unwrap().expires_at,
        None
    );
}

#[tokio::test]
async fn expired_entries_vanish_from_get_and_keys_and_purge_has_nothing_to_do() {
    let url = kiln_testkit::skip_unless_env!("TEST_REDIS_URL");
    let cache = crate::fresh_cache(&url).await;
    let lib = LibraryName::new("guides").unwrap();
    cache
        .put(&lib, vec![entry("old", 1, "g"), entry("keep", 2, "g")])
        .await
        .unwrap();
    let scope = PruneScope {
        group: None,
        below_generation: 2,
    };
    let past = Timestamp::now().minus(Duration::from_secs(1));
    assert_eq!(cache.mark_expiring(&lib, &scope, past).await.unwrap(), 1);
    assert_eq!(cache.get(&lib, "old").await.unwrap(), None);
    assert_eq!(
        cache.keys(&lib).await.unwrap(),
        vec![("keep".to_string(), 2, "g".to_string())]
    );
    assert_eq!(cache.purge_expired(Timestamp::now()).await.unwrap(), 0);
    // The expired entry is not counted by a later prune either.
    assert_eq!(cache.sweep(&lib, &scope).await.unwrap(), 0);
}

#[tokio::test]
async fn prefixes_isolate_deployments() {
    let url = kiln_testkit::skip_unless_env!("TEST_REDIS_URL");
    let a = crate::fresh_cache(&url).await;
    let b = crate::fresh_cache(&url).await;
    let lib = LibraryName::new("guides").unwrap();
    a.put(&lib, vec![entry("k", 1, "g")]).await.unwrap();
    assert!(a.get(&lib, "k").await.unwrap().is_some());
    assert_eq!(b.get(&lib, "k").await.unwrap(), None);
    assert!(b.keys(&lib).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_bad_prefix_is_refused_and_named() {
    for bad in ["", "has space", "a/b", &"p".repeat(101)] {
        let err = RedisRenderCache::connect("redis://127.0.0.1:1", bad)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{bad:?}: {err}");
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
}

#[tokio::test]
async fn a_bad_url_is_refused() {
    let err = RedisRenderCache::connect("postgres://x", "kiln")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains("invalid redis url"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_named() {
    let err = RedisRenderCache::connect("redis://127.0.0.1:1", "kiln")
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("redis at 127.0.0.1:1"), "{err}");
}

#[tokio::test]
async fn too_large_a_generation_is_refused() {
    let url = kiln_testkit::skip_unless_env!("TEST_REDIS_URL");
    let cache = crate::fresh_cache(&url).await;
    let lib = LibraryName::new("guides").unwrap();
    let err = cache
        .put(&lib, vec![entry("k", u64::MAX, "g")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains(&u64::MAX.to_string()), "{err}");
}

#[tokio::test]
async fn clear_removes_every_key_of_its_prefix_and_no_other() {
    let url = kiln_testkit::skip_unless_env!("TEST_REDIS_URL");
    let mine = crate::fresh_cache(&url).await;
    let other = crate::fresh_cache(&url).await;
    let lib = LibraryName::new("guides").unwrap();
    let entries: Vec<CacheEntry> = (0..1500).map(|i| entry(&format!("k{i}"), 1, "g")).collect();
    mine.put(&lib, entries).await.unwrap();
    other.put(&lib, vec![entry("kept", 1, "g")]).await.unwrap();
    let removed = mine.clear().await.unwrap();
    assert!(
        removed >= 1500,
        "every entry's key, and the group's: {removed}"
    );
    assert!(mine.get(&lib, "k7").await.unwrap().is_none());
    assert!(mine.get(&lib, "k1499").await.unwrap().is_none());
    assert!(
        other.get(&lib, "kept").await.unwrap().is_some(),
        "another prefix is untouched"
    );
    assert_eq!(mine.clear().await.unwrap(), 0, "nothing is left");
}
