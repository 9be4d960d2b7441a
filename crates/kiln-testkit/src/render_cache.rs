//! The conformance suite of [`RenderCache`]: one `pub async fn` per contract clause, a
//! model-based random test, and [`render_cache_tests!`](crate::render_cache_tests) to stamp
//! out one test per check for a backend.
//!
//! Time is a [`ManualClock`] that the setup builds the cache on: marks are set by it, and
//! the expiry checks advance it instead of sleeping. A backend with native expiry (Redis)
//! still removes entries by its own clock; [`Caps::native_expiry`] says so.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kiln_core::ids::LibraryName;
use kiln_core::render_cache::{
    CacheEntry, KeyInfo, ListQuery, PruneScope, PutOutcome, RenderCache, StaleScope,
};
use kiln_core::time::{Clock, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::catalog::library;
use crate::clock::ManualClock;

/// What a backend can do differently, within the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// The backend expires entries itself (Redis TTLs), by its own clock: `purge_expired`
    /// returns 0, and an entry expired by the injected clock alone is hidden from reads
    /// but not purged (the server removes it when its own clock gets there).
    pub native_expiry: bool,
}

impl Caps {
    /// A backend that checks expiry on read and purges on request (SQL backends).
    pub const SQL: Caps = Caps {
        native_expiry: false,
    };
}

impl Default for Caps {
    fn default() -> Self {
        Caps::SQL
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// An entry of `generation` and `group` holding `bytes`, written now, not expiring.
pub fn entry(key: &str, bytes: &[u8], generation: u64, group: &str) -> CacheEntry {
    CacheEntry {
        key: key.into(),
        bytes: Bytes::copy_from_slice(bytes),
        content_type: "text/html; charset=utf-8".into(),
        generation,
        group: group.into(),
        written_at: Timestamp::now(),
        expires_at: None,
        meta: Default::default(),
        stale: false,
    }
}

fn lib() -> LibraryName {
    library("guides")
}

fn scope(group: Option<&str>, below_generation: u64) -> PruneScope {
    PruneScope {
        group: group.map(String::from),
        below_generation,
    }
}

/// The keys `keys` lists.
async fn listed(c: &dyn RenderCache) -> Vec<String> {
    c.keys(&lib())
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.0)
        .collect()
}

async fn generation_of(c: &dyn RenderCache, key: &str) -> Option<u64> {
    c.get(&lib(), key).await.unwrap().map(|e| e.generation)
}

/// Contract (round trip): `get` after `put` returns the entry exactly as put.
pub async fn put_get_roundtrip(c: &dyn RenderCache) {
    let mut e = entry("items/1", b"<p>\0\xff binary</p>", 3, "page-1");
    e.content_type = "application/octet-stream".into();
    let out = c.put(&lib(), vec![e.clone()]).await.unwrap();
    assert_eq!(out, [PutOutcome::Written]);
    assert_eq!(c.get(&lib(), "items/1").await.unwrap(), Some(e));
    assert!(c.put(&lib(), Vec::new()).await.unwrap().is_empty());
}

/// Contract (not found): a missing key, or a key of another library, is `None`.
pub async fn missing_is_none(c: &dyn RenderCache) {
    assert_eq!(c.get(&lib(), "nope").await.unwrap(), None);
    c.put(&lib(), vec![entry("k", b"v", 1, "g")]).await.unwrap();
    assert_eq!(c.get(&library("other"), "k").await.unwrap(), None);
}

/// Contract (generations): a put never replaces a newer generation; the same or an older
/// one is replaced.
pub async fn newer_generations_win(c: &dyn RenderCache) {
    c.put(&lib(), vec![entry("k", b"five", 5, "g")])
        .await
        .unwrap();
    let out = c
        .put(&lib(), vec![entry("k", b"four", 4, "g")])
        .await
        .unwrap();
    assert_eq!(out, [PutOutcome::Stale]);
    assert_eq!(
        &c.get(&lib(), "k").await.unwrap().unwrap().bytes[..],
        b"five"
    );
    let out = c
        .put(&lib(), vec![entry("k", b"five again", 5, "g")])
        .await
        .unwrap();
    assert_eq!(out, [PutOutcome::Written]);
    assert_eq!(
        &c.get(&lib(), "k").await.unwrap().unwrap().bytes[..],
        b"five again"
    );
    let out = c
        .put(&lib(), vec![entry("k", b"six", 6, "h")])
        .await
        .unwrap();
    assert_eq!(out, [PutOutcome::Written]);
    let got = c.get(&lib(), "k").await.unwrap().unwrap();
    assert_eq!((got.generation, got.group.as_str()), (6, "h"));
}

/// Contract (generations): puts below the library's floor are `Stale`; other libraries
/// are not affected; a lower floor never lowers it.
pub async fn floor_refuses_older_generations(c: &dyn RenderCache) {
    c.set_floor(&lib(), 10).await.unwrap();
    c.set_floor(&lib(), 4).await.unwrap();
    let out = c
        .put(
            &lib(),
            vec![entry("a", b"9", 9, "g"), entry("b", b"10", 10, "g")],
        )
        .await
        .unwrap();
    assert_eq!(out, [PutOutcome::Stale, PutOutcome::Written]);
    assert_eq!(generation_of(c, "a").await, None);
    assert_eq!(generation_of(c, "b").await, Some(10));
    let other = c
        .put(&library("other"), vec![entry("a", b"1", 1, "g")])
        .await
        .unwrap();
    assert_eq!(other, [PutOutcome::Written]);
}

/// Contract (atomicity): each entry of a batch is checked on its own; outcomes are in
/// order, and a key twice in a batch sees the first write.
pub async fn batch_outcomes_are_per_entry(c: &dyn RenderCache) {
    c.put(
        &lib(),
        vec![entry("old", b"", 5, "g"), entry("same", b"", 2, "g")],
    )
    .await
    .unwrap();
    let out = c
        .put(
            &lib(),
            vec![
                entry("new", b"1", 1, "g"),
                entry("old", b"3", 3, "g"),
                entry("same", b"2", 2, "g"),
                entry("dup", b"a", 3, "g"),
                entry("dup", b"b", 2, "g"),
            ],
        )
        .await
        .unwrap();
    use PutOutcome::{Stale, Written};
    assert_eq!(out, [Written, Stale, Written, Written, Stale]);
    assert_eq!(generation_of(c, "old").await, Some(5));
    assert_eq!(
        &c.get(&lib(), "same").await.unwrap().unwrap().bytes[..],
        b"2"
    );
    assert_eq!(
        &c.get(&lib(), "dup").await.unwrap().unwrap().bytes[..],
        b"a"
    );
}

/// Contract (round trip, no miss window): a marked entry stays readable with its mark
/// until its time; a put clears the mark.
pub async fn marked_entries_stay_until_rewritten(c: &dyn RenderCache, clock: &ManualClock) {
    c.put(&lib(), vec![entry("k", b"v", 1, "g")]).await.unwrap();
    let at = clock.now().plus(HOUR);
    assert_eq!(
        c.mark_expiring(&lib(), &scope(Some("g"), 2), at)
            .await
            .unwrap(),
        1
    );
    let got = c
        .get(&lib(), "k")
        .await
        .unwrap()
        .expect("marked but not yet expired");
    assert_eq!(got.expires_at, Some(at));
    clock.advance(HOUR - Duration::from_millis(1));
    assert!(
        c.get(&lib(), "k").await.unwrap().is_some(),
        "readable to the last millisecond before its time"
    );
    c.put(&lib(), vec![entry("k", b"v2", 2, "g")])
        .await
        .unwrap();
    assert_eq!(c.get(&lib(), "k").await.unwrap().unwrap().expires_at, None);
    clock.advance(HOUR);
    assert!(
        c.get(&lib(), "k").await.unwrap().is_some(),
        "the rewrite cleared the mark"
    );
}

/// Contract (expiry, pruning): once a marked entry's time comes it is hidden from `get`
/// and `keys`, no longer counted by `mark_expiring` or `sweep`, and purged (backends with
/// native expiry purge nothing: their server removes it by its own clock).
pub async fn marked_entries_expire_at_their_time(
    c: &dyn RenderCache,
    clock: &ManualClock,
    caps: Caps,
) {
    c.put(
        &lib(),
        vec![entry("old", b"v", 1, "g"), entry("kept", b"v", 2, "g")],
    )
    .await
    .unwrap();
    let at = clock.now().plus(HOUR);
    assert_eq!(
        c.mark_expiring(&lib(), &scope(None, 2), at).await.unwrap(),
        1
    );
    clock.advance(HOUR);
    assert_eq!(
        c.get(&lib(), "old").await.unwrap(),
        None,
        "expired at its time"
    );
    assert_eq!(listed(c).await, ["kept"]);
    let later = clock.now().plus(HOUR);
    assert_eq!(
        c.mark_expiring(&lib(), &scope(None, 2), later)
            .await
            .unwrap(),
        0,
        "an expired entry is not marked again"
    );
    assert_eq!(c.get(&lib(), "old").await.unwrap(), None, "nor revived");
    let purged = c.purge_expired(clock.now()).await.unwrap();
    assert_eq!(purged, if caps.native_expiry { 0 } else { 1 });
    assert_eq!(c.sweep(&lib(), &scope(None, 2)).await.unwrap(), 0);
    assert_eq!(c.get(&lib(), "old").await.unwrap(), None);
    assert_eq!(generation_of(c, "kept").await, Some(2));
}

/// Contract (expiry): an entry whose time has passed is never returned, by `get` or
/// `keys`, whether it was put so or marked so.
pub async fn expired_entries_are_hidden(c: &dyn RenderCache, clock: &ManualClock) {
    let past = clock.now().minus(HOUR);
    let mut gone = entry("gone", b"v", 1, "g");
    gone.expires_at = Some(past);
    c.put(
        &lib(),
        vec![
            gone,
            entry("marked", b"v", 1, "h"),
            entry("kept", b"v", 2, "h"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(c.get(&lib(), "gone").await.unwrap(), None);
    assert_eq!(
        c.mark_expiring(&lib(), &scope(Some("h"), 2), past)
            .await
            .unwrap(),
        1
    );
    assert_eq!(c.get(&lib(), "marked").await.unwrap(), None);
    assert_eq!(listed(c).await, ["kept"]);
}

async fn prune_fixture(c: &dyn RenderCache) {
    c.put(
        &lib(),
        vec![
            entry("g1-old", b"", 1, "g1"),
            entry("g1-new", b"", 2, "g1"),
            entry("g2-old", b"", 1, "g2"),
        ],
    )
    .await
    .unwrap();
    c.put(&library("other"), vec![entry("g1-old", b"", 1, "g1")])
        .await
        .unwrap();
}

/// Contract (pruning): `mark_expiring` marks exactly the scope's entries and counts them.
pub async fn mark_expiring_touches_exactly_the_scope(c: &dyn RenderCache, clock: &ManualClock) {
    prune_fixture(c).await;
    let at = clock.now().plus(HOUR);
    assert_eq!(
        c.mark_expiring(&lib(), &scope(Some("g1"), 2), at)
            .await
            .unwrap(),
        1
    );
    let marked = |k: &'static str| async move {
        c.get(&lib(), k)
            .await
            .unwrap()
            .unwrap()
            .expires_at
            .is_some()
    };
    assert!(marked("g1-old").await);
    assert!(!marked("g1-new").await);
    assert!(!marked("g2-old").await);
    assert_eq!(
        c.mark_expiring(&lib(), &scope(None, 2), at).await.unwrap(),
        2
    );
    assert!(marked("g2-old").await);
    assert!(!marked("g1-new").await);
    let other = c.get(&library("other"), "g1-old").await.unwrap().unwrap();
    assert_eq!(other.expires_at, None);
}

/// Contract (pruning): `sweep` deletes exactly the scope's entries and counts them.
pub async fn sweep_deletes_exactly_the_scope(c: &dyn RenderCache) {
    prune_fixture(c).await;
    assert_eq!(c.sweep(&lib(), &scope(Some("g1"), 2)).await.unwrap(), 1);
    assert_eq!(generation_of(c, "g1-old").await, None);
    assert_eq!(generation_of(c, "g1-new").await, Some(2));
    assert_eq!(generation_of(c, "g2-old").await, Some(1));
    assert_eq!(c.sweep(&lib(), &scope(None, 3)).await.unwrap(), 2);
    assert!(c.keys(&lib()).await.unwrap().is_empty());
    assert!(c.get(&library("other"), "g1-old").await.unwrap().is_some());
}

/// Contract (expiry): `purge_expired` deletes the entries expired by `now` (backends with
/// native expiry return 0) and keeps the others, until their time comes too.
pub async fn purge_expired_deletes_only_expired(
    c: &dyn RenderCache,
    clock: &ManualClock,
    caps: Caps,
) {
    let now = clock.now();
    let mut past = entry("past", b"", 1, "g");
    past.expires_at = Some(now.minus(HOUR));
    let mut future = entry("future", b"", 1, "g");
    future.expires_at = Some(now.plus(HOUR));
    c.put(&lib(), vec![past, future, entry("never", b"", 1, "g")])
        .await
        .unwrap();
    let purged = c.purge_expired(now).await.unwrap();
    assert_eq!(purged, if caps.native_expiry { 0 } else { 1 });
    assert_eq!(generation_of(c, "past").await, None);
    assert_eq!(generation_of(c, "future").await, Some(1));
    assert_eq!(generation_of(c, "never").await, Some(1));
    clock.advance(HOUR * 2);
    let purged = c.purge_expired(clock.now()).await.unwrap();
    assert_eq!(purged, if caps.native_expiry { 0 } else { 1 });
    assert_eq!(generation_of(c, "future").await, None);
    assert_eq!(generation_of(c, "never").await, Some(1));
}

/// Contract: `keys` lists every live entry of the library, sorted by key.
pub async fn keys_are_sorted_and_live(c: &dyn RenderCache) {
    c.put(
        &lib(),
        vec![
            entry("b", b"", 2, "x"),
            entry("a", b"", 1, "y"),
            entry("c", b"", 3, "x"),
        ],
    )
    .await
    .unwrap();
    c.put(&library("other"), vec![entry("z", b"", 1, "x")])
        .await
        .unwrap();
    let keys = c.keys(&lib()).await.unwrap();
    let want = [("a", 1, "y"), ("b", 2, "x"), ("c", 3, "x")]
        .map(|(k, g, gr)| (k.to_string(), g, gr.to_string()));
    assert_eq!(keys, want);
}

/// Contract (no miss window, generations): a reader polling a key while a writer rewrites
/// it generation after generation never misses it and never sees a generation go back.
pub async fn readers_never_miss_during_rewrites(c: &dyn RenderCache, clock: &ManualClock) {
    c.put(&lib(), vec![entry("hot", b"0", 0, "g")])
        .await
        .unwrap();
    // Both run on this task (`join!`), so a flag is enough to end the reader.
    let done = Cell::new(false);
    let writer = async {
        for g in 1..=60u64 {
            let at = clock.now().plus(HOUR);
            c.mark_expiring(&lib(), &scope(Some("g"), g), at)
                .await
                .unwrap();
            c.put(&lib(), vec![entry("hot", g.to_string().as_bytes(), g, "g")])
                .await
                .unwrap();
            tokio::task::yield_now().await;
        }
        done.set(true);
    };
    let reader = async {
        let mut last = 0;
        loop {
            let finished = done.get();
            let got = c
                .get(&lib(), "hot")
                .await
                .unwrap()
                .expect("a miss during rewrites");
            assert!(got.generation >= last, "generation went back");
            last = got.generation;
            if finished {
                assert_eq!(last, 60, "the last rewrite is read");
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::join!(writer, reader);
}

/// Contract (generations, atomicity): concurrent puts of one key leave the newest.
pub async fn concurrent_puts_leave_the_newest(c: &dyn RenderCache) {
    let gens = [4u64, 9, 1, 7, 3, 8, 2, 6, 5];
    let library = lib();
    futures::future::join_all(
        gens.iter()
            .map(|&g| c.put(&library, vec![entry("k", g.to_string().as_bytes(), g, "g")])),
    )
    .await
    .into_iter()
    .for_each(|r| {
        r.unwrap();
    });
    let got = c.get(&lib(), "k").await.unwrap().unwrap();
    assert_eq!((got.generation, &got.bytes[..]), (9, &b"9"[..]));
}

/// Contract: a large batch (a worker's worth) is written whole.
pub async fn large_batch_is_written(c: &dyn RenderCache) {
    let batch: Vec<CacheEntry> = (0..2000)
        .map(|i| entry(&format!("k{i:05}"), &[i as u8; 300], 1, "g"))
        .collect();
    let out = c.put(&lib(), batch).await.unwrap();
    assert!(out.iter().all(|o| *o == PutOutcome::Written));
    assert_eq!(c.keys(&lib()).await.unwrap().len(), 2000);
    assert_eq!(
        &c.get(&lib(), "k01999").await.unwrap().unwrap().bytes[..],
        &[1999u16 as u8; 300]
    );
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelEntry {
    bytes: Bytes,
    generation: u64,
    group: String,
    expires_at: Option<Timestamp>,
}

/// Contract, all clauses together: a seeded random sequence of a few hundred puts, floors,
/// marks and sweeps, applied to the cache and to a `BTreeMap` model, must agree at every
/// step (outcomes, entries, keys).
pub async fn model_based_random_operations(c: &dyn RenderCache, clock: &ManualClock) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut model: BTreeMap<String, ModelEntry> = BTreeMap::new();
    let mut floor = 0u64;
    let groups = ["g1", "g2"];
    let key = |rng: &mut StdRng| format!("k{}", rng.random_range(0..12));
    for step in 0..300 {
        let ctx = format!("step {step}");
        match rng.random_range(0..10) {
            0..=4 => {
                let n = rng.random_range(1..5);
                let batch: Vec<CacheEntry> = (0..n)
                    .map(|i| {
                        let g = rng.random_range(0..6);
                        let group = groups[rng.random_range(0..2)];
                        entry(&key(&mut rng), format!("{step}.{i}").as_bytes(), g, group)
                    })
                    .collect();
                let out = c.put(&lib(), batch.clone()).await.unwrap();
                for (e, o) in batch.into_iter().zip(out) {
                    let current = model.get(&e.key).map_or(0, |m| m.generation);
                    if e.generation < floor || e.generation < current {
                        assert_eq!(o, PutOutcome::Stale, "{ctx}: {}", e.key);
                    } else {
                        assert_eq!(o, PutOutcome::Written, "{ctx}: {}", e.key);
                        let m = ModelEntry {
                            bytes: e.bytes,
                            generation: e.generation,
                            group: e.group,
                            expires_at: None,
                        };
                        model.insert(e.key, m);
                    }
                }
            }
            5 => {
                floor = floor.max(rng.random_range(0..4));
                c.set_floor(&lib(), floor).await.unwrap();
            }
            6 | 7 => {
                let group = rng.random_bool(0.5).then(|| groups[rng.random_range(0..2)]);
                let below = rng.random_range(0..7);
                let at = clock.now().plus(HOUR + Duration::from_secs(step));
                let n = c
                    .mark_expiring(&lib(), &scope(group, below), at)
                    .await
                    .unwrap();
                let mut want = 0;
                for m in model.values_mut() {
                    if m.generation < below && group.is_none_or(|g| m.group == g) {
                        m.expires_at = Some(at);
                        want += 1;
                    }
                }
                assert_eq!(n, want, "{ctx}: mark_expiring");
            }
            8 => {
                let group = rng.random_bool(0.5).then(|| groups[rng.random_range(0..2)]);
                let below = rng.random_range(0..4);
                let n = c.sweep(&lib(), &scope(group, below)).await.unwrap();
                let before = model.len();
                model.retain(|_, m| !(m.generation < below && group.is_none_or(|g| m.group == g)));
                assert_eq!(n, (before - model.len()) as u64, "{ctx}: sweep");
            }
            _ => {
                let k = key(&mut rng);
                let got = c.get(&lib(), &k).await.unwrap().map(|e| ModelEntry {
                    bytes: e.bytes,
                    generation: e.generation,
                    group: e.group,
                    expires_at: e.expires_at,
                });
                assert_eq!(got.as_ref(), model.get(&k), "{ctx}: get {k}");
            }
        }
        let keys = c.keys(&lib()).await.unwrap();
        let want: Vec<(String, u64, String)> = model
            .iter()
            .map(|(k, m)| (k.clone(), m.generation, m.group.clone()))
            .collect();
        assert_eq!(keys, want, "{ctx}: keys");
    }
}

/// Contract (pruning): `clear_marks` removes exactly the marks set at its time from the
/// scope's entries (a cancelled run's), leaving other marks and other scopes alone.
pub async fn clear_marks_removes_exactly_that_mark(c: &dyn RenderCache, clock: &ManualClock) {
    c.put(
        &lib(),
        vec![
            entry("a", b"a", 1, "x"),
            entry("b", b"b", 2, "x"),
            entry("c", b"c", 1, "y"),
            entry("d", b"d", 5, "x"),
        ],
    )
    .await
    .unwrap();
    let t1 = clock.now().plus(HOUR);
    let t2 = clock.now().plus(HOUR * 2);
    let mut own = entry("e", b"e", 1, "x");
    own.expires_at = Some(t2);
    c.put(&lib(), vec![own]).await.unwrap();
    assert_eq!(
        c.mark_expiring(&lib(), &scope(Some("x"), 3), t1)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        c.mark_expiring(&lib(), &scope(Some("y"), 3), t1)
            .await
            .unwrap(),
        1
    );
    // e was marked at t1 too (the mark replaces its own expiry); put it back to t2.
    let mut own = entry("e", b"e", 1, "x");
    own.expires_at = Some(t2);
    c.put(&lib(), vec![own]).await.unwrap();
    assert_eq!(
        c.clear_marks(&lib(), &scope(Some("x"), 3), t1)
            .await
            .unwrap(),
        2
    );
    let expiry =
        |k: &'static str| async move { c.get(&lib(), k).await.unwrap().unwrap().expires_at };
    assert_eq!(expiry("a").await, None);
    assert_eq!(expiry("b").await, None);
    assert_eq!(expiry("c").await, Some(t1), "another group keeps its mark");
    assert_eq!(
        expiry("d").await,
        None,
        "a newer generation was never marked"
    );
    assert_eq!(expiry("e").await, Some(t2), "another mark stays");
    assert_eq!(c.clear_marks(&lib(), &scope(None, 3), t1).await.unwrap(), 1);
    assert_eq!(expiry("c").await, None);
}

/// Contract (round trip): metadata and the stale mark come back as put, and a rewrite
/// replaces both.
pub async fn metadata_and_stale_round_trip(c: &dyn RenderCache) {
    let mut e = entry("m", b"<p>m</p>", 1, "g");
    e.meta.insert("assets".into(), r#"["a.css","b.js"]"#.into());
    e.meta
        .insert("x-note".into(), "caf\u{e9} \"quoted\"".into());
    e.stale = true;
    c.put(&lib(), vec![e.clone()]).await.unwrap();
    assert_eq!(c.get(&lib(), "m").await.unwrap(), Some(e));
    let plain = entry("m", b"<p>m2</p>", 1, "g");
    c.put(&lib(), vec![plain.clone()]).await.unwrap();
    let got = c.get(&lib(), "m").await.unwrap().unwrap();
    assert!(
        got.meta.is_empty(),
        "a rewrite without metadata clears it: {:?}",
        got.meta
    );
    assert!(!got.stale, "a rewrite clears the stale mark");
    assert_eq!(got, plain);
}

/// Contract (delete): one key goes, with its listing; others stay; a second delete and a
/// delete of a missing key say so.
pub async fn delete_removes_exactly_one(c: &dyn RenderCache) {
    c.put(
        &lib(),
        vec![
            entry("a", b"1", 1, "x"),
            entry("b", b"2", 1, "x"),
            entry("c", b"3", 1, "y"),
        ],
    )
    .await
    .unwrap();
    c.put(&library("other"), vec![entry("a", b"o", 1, "x")])
        .await
        .unwrap();
    assert!(c.delete(&lib(), "a").await.unwrap());
    assert!(!c.delete(&lib(), "a").await.unwrap());
    assert!(!c.delete(&lib(), "never").await.unwrap());
    assert_eq!(c.get(&lib(), "a").await.unwrap(), None);
    assert_eq!(listed(c).await, ["b", "c"]);
    assert_eq!(generation_of(c, "b").await, Some(1));
    assert!(c.get(&library("other"), "a").await.unwrap().is_some());
    assert!(c.delete(&lib(), "c").await.unwrap());
    assert_eq!(
        c.group_counts(&lib()).await.unwrap(),
        [("x".to_string(), 1)],
        "a group whose last entry is deleted is not counted"
    );
    // A deleted key can be written again, at any generation above the floor.
    c.put(&lib(), vec![entry("a", b"again", 1, "x")])
        .await
        .unwrap();
    assert_eq!(generation_of(c, "a").await, Some(1));
}

/// Contract (stale marks): each scope marks exactly its live entries and counts them; a
/// marked entry reads as before with `stale` set; a put clears the mark.
pub async fn mark_stale_touches_exactly_the_scope(c: &dyn RenderCache, clock: &ManualClock) {
    let put = |k: &'static str, g: &'static str| entry(k, k.as_bytes(), 1, g);
    c.put(
        &lib(),
        vec![
            put("a", "x"),
            put("b", "x"),
            put("c", "y"),
            put("d", "y"),
            put("e", "z"),
        ],
    )
    .await
    .unwrap();
    let mut expiring = put("f", "x");
    expiring.expires_at = Some(clock.now().plus(Duration::from_secs(1)));
    c.put(&lib(), vec![expiring]).await.unwrap();
    c.put(&library("other"), vec![put("a", "x")]).await.unwrap();
    clock.advance(Duration::from_secs(2));
    let marked = |keys: Vec<&str>| keys.into_iter().map(String::from).collect::<Vec<_>>();
    async fn stale(c: &dyn RenderCache) -> Vec<String> {
        let mut out = Vec::new();
        for (k, _, _) in c.keys(&lib()).await.unwrap() {
            if c.get(&lib(), &k).await.unwrap().unwrap().stale {
                out.push(k);
            }
        }
        out
    }
    let n = c
        .mark_stale(&lib(), &StaleScope::Keys(marked(vec!["a", "nope", "f"])))
        .await
        .unwrap();
    assert_eq!(
        n, 1,
        "only the live key is marked (f expired, nope is missing)"
    );
    assert_eq!(stale(c).await, ["a"]);
    let got = c.get(&lib(), "a").await.unwrap().unwrap();
    assert_eq!(&got.bytes[..], b"a", "a stale entry still reads");
    assert_eq!(
        c.mark_stale(&lib(), &StaleScope::Group("y".into()))
            .await
            .unwrap(),
        2
    );
    assert_eq!(stale(c).await, ["a", "c", "d"]);
    assert!(!c.get(&library("other"), "a").await.unwrap().unwrap().stale);
    c.put(&lib(), vec![entry("c", b"c2", 2, "y")])
        .await
        .unwrap();
    assert_eq!(stale(c).await, ["a", "d"], "a rewrite clears the mark");
    assert_eq!(c.mark_stale(&lib(), &StaleScope::Library).await.unwrap(), 5);
    assert_eq!(stale(c).await, ["a", "b", "c", "d", "e"]);
    assert!(!c.get(&library("other"), "a").await.unwrap().unwrap().stale);
    let page = c.list(&lib(), &query(None, None, None, 10)).await.unwrap();
    assert!(page.items.iter().all(|i| i.stale), "listings show the mark");
}

fn query(
    group: Option<&str>,
    prefix: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> ListQuery {
    ListQuery {
        group: group.map(String::from),
        prefix: prefix.map(String::from),
        after: after.map(String::from),
        limit,
    }
}

/// Follows a listing to its end; the keys of each page.
async fn pages(c: &dyn RenderCache, mut q: ListQuery) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    loop {
        let page = c.list(&lib(), &q).await.unwrap();
        assert!(
            page.items.len() <= q.limit,
            "a page holds at most `limit` items"
        );
        out.push(page.items.iter().map(|i| i.key.clone()).collect());
        match page.next {
            Some(n) => {
                assert!(
                    q.after.as_ref().is_none_or(|a| &n > a),
                    "the cursor advances"
                );
                q.after = Some(n);
            }
            None => return out,
        }
    }
}

/// Contract (listing): pages in key order, each live key once, by group and by prefix,
/// with sizes and marks; counts per group.
pub async fn listing_pages_by_group_and_prefix(
    c: &dyn RenderCache,
    clock: &ManualClock,
    caps: Caps,
) {
    let mut all = Vec::new();
    for i in 0..25 {
        let key = format!("{}/{i:02}", if i % 2 == 0 { "even" } else { "odd" });
        let group = if i % 3 == 0 { "three" } else { "other" };
        all.push(entry(&key, &vec![b'x'; i], 1 + i as u64 % 2, group));
    }
    let mut expiring = entry("even/99", b"", 1, "three");
    expiring.expires_at = Some(clock.now().plus(Duration::from_secs(1)));
    all.push(expiring);
    all.push(entry("evenx", b"", 1, "other"));
    all.push(entry("caf\u{e9}/\u{1f600}", b"", 1, "other"));
    c.put(&lib(), all).await.unwrap();
    c.put(&library("other"), vec![entry("even/00", b"", 1, "three")])
        .await
        .unwrap();
    clock.advance(Duration::from_secs(2));

    let flat = |p: Vec<Vec<String>>| p.into_iter().flatten().collect::<Vec<_>>();
    let mut want: Vec<String> = (0..25)
        .map(|i| format!("{}/{i:02}", if i % 2 == 0 { "even" } else { "odd" }))
        .chain(["evenx".to_string(), "caf\u{e9}/\u{1f600}".to_string()])
        .collect();
    want.sort();
    let by7 = pages(c, query(None, None, None, 7)).await;
    assert_eq!(flat(by7.clone()), want, "every live key once, in key order");
    assert!(by7.len() >= 4, "27 keys in pages of 7: {by7:?}");

    let even: Vec<String> = want
        .iter()
        .filter(|k| k.starts_with("even/"))
        .cloned()
        .collect();
    assert_eq!(
        flat(pages(c, query(None, Some("even/"), None, 4)).await),
        even
    );
    let three: Vec<String> = (0..25)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("{}/{i:02}", if i % 2 == 0 { "even" } else { "odd" }))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        flat(pages(c, query(Some("three"), None, None, 2)).await),
        three
    );
    let both: Vec<String> = three
        .iter()
        .filter(|k| k.starts_with("odd/"))
        .cloned()
        .collect();
    assert_eq!(
        flat(pages(c, query(Some("three"), Some("odd/"), None, 100)).await),
        both
    );
    assert_eq!(
        flat(pages(c, query(None, Some("none/"), None, 5)).await),
        Vec::<String>::new()
    );
    // A cursor below the prefix starts at the prefix; one inside it continues from there.
    assert_eq!(
        flat(pages(c, query(None, Some("odd/"), Some("even/04"), 100)).await).len(),
        12
    );
    assert_eq!(
        flat(pages(c, query(None, Some("odd/"), Some("odd/11"), 100)).await)
            .first()
            .map(String::as_str),
        Some("odd/13")
    );

    let one = c
        .list(&lib(), &query(None, Some("even/04"), None, 1))
        .await
        .unwrap();
    let info: &KeyInfo = &one.items[0];
    assert_eq!(
        (info.size, info.generation, info.group.as_str()),
        (4, 1, "other")
    );
    assert!(!info.stale && info.expires_at.is_none());

    // Native expiry may count the entry that expired by the cache's clock alone.
    let three = if caps.native_expiry {
        [9, 10].as_slice()
    } else {
        &[9]
    };
    let counts = c.group_counts(&lib()).await.unwrap();
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert_eq!(counts[0], ("other".to_string(), 18));
    assert_eq!(counts[1].0, "three");
    assert!(three.contains(&counts[1].1), "{counts:?}");
}

/// Stamps out one `#[tokio::test]` per render-cache check. Invoked as
/// `render_cache_tests!(clock => setup(clock))` or `render_cache_tests!(clock =>
/// setup(clock), caps)`: each test makes a [`ManualClock`](crate::clock::ManualClock) and
/// binds the name before `=>` to it as a `SharedClock`; the expression after it must
/// evaluate to a future of `Arc<dyn RenderCache>` (or any smart pointer to a `RenderCache`)
/// on that clock, isolated and empty. It may `return` (a skipped test). `caps` (a [`Caps`],
/// default [`Caps::SQL`]) states the backend's differences. Invoke it inside a module of
/// its own: the tests are named after the checks.
#[macro_export]
macro_rules! render_cache_tests {
    ($clock:ident => $setup:expr) => {
        $crate::render_cache_tests!($clock => $setup, $crate::render_cache::Caps::SQL);
    };
    ($clock:ident => $setup:expr, $caps:expr) => {
        $crate::render_cache_tests!(@plain $clock => $setup;
            put_get_roundtrip,
            missing_is_none,
            newer_generations_win,
            floor_refuses_older_generations,
            batch_outcomes_are_per_entry,
            sweep_deletes_exactly_the_scope,
            keys_are_sorted_and_live,
            metadata_and_stale_round_trip,
            delete_removes_exactly_one,
            concurrent_puts_leave_the_newest,
            large_batch_is_written,
        );
        $crate::render_cache_tests!(@timed $clock => $setup;
            marked_entries_stay_until_rewritten,
            expired_entries_are_hidden,
            mark_expiring_touches_exactly_the_scope,
            readers_never_miss_during_rewrites,
            model_based_random_operations,
            mark_stale_touches_exactly_the_scope,
            clear_marks_removes_exactly_that_mark,
        );
        $crate::render_cache_tests!(@caps $clock => $setup, $caps;
            marked_entries_expire_at_their_time,
            purge_expired_deletes_only_expired,
            listing_pages_by_group_and_prefix,
        );
    };
    (@plain $clock:ident => $setup:expr; $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let manual = $crate::clock::ManualClock::new();
                let $clock = manual.shared();
                let cache = $setup.await;
                $crate::render_cache::$check(&*cache).await;
            }
        )*
    };
    (@timed $clock:ident => $setup:expr; $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let manual = $crate::clock::ManualClock::new();
                let $clock = manual.shared();
                let cache = $setup.await;
                $crate::render_cache::$check(&*cache, &manual).await;
            }
        )*
    };
    (@caps $clock:ident => $setup:expr, $caps:expr; $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let manual = $crate::clock::ManualClock::new();
                let $clock = manual.shared();
                let cache = $setup.await;
                $crate::render_cache::$check(&*cache, &manual, $caps).await;
            }
        )*
    };
}
