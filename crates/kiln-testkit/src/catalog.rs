//! The conformance suite of [`Catalog`]: one `pub async fn` per contract clause, and
//! [`catalog_tests!`](crate::catalog_tests) to stamp out one test per check for a backend;
//! plus the ids and manifests the suites share.
//!
//! Checks of expiry take the [`ManualClock`] the backend was built on and move it, so no
//! check sleeps or waits on real time.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use kiln_core::Error;
use kiln_core::catalog::{Catalog, LockHolder, MemoEntry, NewVersion, PublishOutcome};
use kiln_core::ids::{ChunkId, ChunkKind, CourseId, LibraryName, VersionId};
use kiln_core::manifest::{Manifest, ManifestEntry};
use kiln_core::time::{Clock, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::clock::ManualClock;

/// How long a check polls for something that must happen soon (a version becoming visible).
const DEADLINE: Duration = Duration::from_secs(10);

/// A lease, claim or mark ttl that no check outlives unless it moves the clock past it.
const LONG: Duration = Duration::from_secs(600);

/// A course id.
pub fn course(s: &str) -> CourseId {
    CourseId::new(s).expect("valid course id")
}

/// A version id.
pub fn version(s: &str) -> VersionId {
    VersionId::new(s).expect("valid version id")
}

/// A library name.
pub fn library(s: &str) -> LibraryName {
    LibraryName::new(s).expect("valid library name")
}

/// A chunk id derived from two numbers, distinct for distinct pairs.
pub fn chunk_id(seed: u64, i: u64) -> ChunkId {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&seed.to_le_bytes());
    b[8..16].copy_from_slice(&i.to_le_bytes());
    b[31] = 1;
    ChunkId(b)
}

/// A manifest of `n` question chunks plus one gathered chunk; `seed` varies the ids.
pub fn manifest(n: usize, seed: u64) -> Manifest {
    let mut entries: Vec<ManifestEntry> = (0..n as u64)
        .map(|i| ManifestEntry {
            kind: ChunkKind::Question,
            name: format!("topic/q{i}"),
            id: chunk_id(seed, i),
            size: 1000 + i,
            root: format!("questions/topic/q{i}"),
        })
        .collect();
    entries.push(ManifestEntry {
        kind: ChunkKind::CourseInfo,
        name: String::new(),
        id: chunk_id(seed, u64::MAX),
        size: 7,
        root: String::new(),
    });
    Manifest::new(entries).expect("distinct chunk names")
}

/// A version of course `c` to publish.
pub fn new_version(c: &str, v: &str, m: Manifest) -> NewVersion {
    NewVersion {
        course: course(c),
        version: version(v),
        manifest: m,
    }
}

/// Contract (atomicity, round trip): a published version is current and its manifest reads
/// back identical.
pub async fn publish_then_read(c: &dyn Catalog) {
    let m = manifest(20, 1);
    let out = c
        .publish(new_version("demo", "v1", m.clone()))
        .await
        .unwrap();
    assert_eq!(out, PublishOutcome::Published);
    let cur = c
        .current(&course("demo"))
        .await
        .unwrap()
        .expect("a current version");
    assert_eq!(cur.version, version("v1"));
    assert_eq!(cur.course, course("demo"));
    assert!(cur.current);
    assert_eq!(
        c.manifest(&course("demo"), &version("v1")).await.unwrap(),
        m
    );
}

/// Contract (idempotency): publishing the current version again is `Unchanged`.
pub async fn publish_current_again_is_unchanged(c: &dyn Catalog) {
    c.publish(new_version("demo", "v1", manifest(3, 1)))
        .await
        .unwrap();
    let out = c
        .publish(new_version("demo", "v1", manifest(3, 1)))
        .await
        .unwrap();
    assert_eq!(out, PublishOutcome::Unchanged);
    assert_eq!(c.versions(&course("demo")).await.unwrap().len(), 1);
}

/// Contract (idempotency): an older version published again becomes current
/// (`Reinstated`) and keeps its first manifest.
pub async fn publish_older_version_reinstates(c: &dyn Catalog) {
    let m1 = manifest(3, 1);
    c.publish(new_version("demo", "v1", m1.clone()))
        .await
        .unwrap();
    c.publish(new_version("demo", "v2", manifest(4, 2)))
        .await
        .unwrap();
    let out = c
        .publish(new_version("demo", "v1", manifest(9, 9)))
        .await
        .unwrap();
    assert_eq!(out, PublishOutcome::Reinstated);
    let cur = c.current(&course("demo")).await.unwrap().unwrap();
    assert_eq!(cur.version, version("v1"));
    assert_eq!(
        c.manifest(&course("demo"), &version("v1")).await.unwrap(),
        m1
    );
}

/// Contract (ordering): `versions` lists newest first, with exactly the current one marked.
pub async fn versions_newest_first(c: &dyn Catalog) {
    for v in ["v1", "v2", "v3"] {
        c.publish(new_version("demo", v, manifest(2, 1)))
            .await
            .unwrap();
    }
    c.publish(new_version("demo", "v2", manifest(2, 1)))
        .await
        .unwrap();
    let vs = c.versions(&course("demo")).await.unwrap();
    let names: Vec<&str> = vs.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(names, ["v3", "v2", "v1"]);
    let current: Vec<bool> = vs.iter().map(|v| v.current).collect();
    assert_eq!(current, [false, true, false]);
    assert!(vs.windows(2).all(|w| w[0].created_at >= w[1].created_at));
}

/// Contract (not found): unknown courses and versions are `NotFound`; `current` of an
/// unknown course is `None`.
pub async fn unknown_things_are_not_found(c: &dyn Catalog) {
    c.publish(new_version("demo", "v1", manifest(1, 1)))
        .await
        .unwrap();
    let err = c.versions(&course("nope")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = c
        .manifest(&course("nope"), &version("v1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = c
        .manifest(&course("demo"), &version("v9"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(c.current(&course("nope")).await.unwrap(), None);
}

/// Contract: `courses` lists every published course, sorted.
pub async fn courses_are_sorted(c: &dyn Catalog) {
    assert!(c.courses().await.unwrap().is_empty());
    for name in ["beta", "alpha", "gamma"] {
        c.publish(new_version(name, "v1", manifest(1, 1)))
            .await
            .unwrap();
    }
    let names: Vec<String> = c
        .courses()
        .await
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
}

/// Contract: `currents` names every course's current version in one read, sorted by
/// course; a roll-back shows at once.
pub async fn currents_name_every_course_once(c: &dyn Catalog) {
    assert!(c.currents().await.unwrap().is_empty());
    for (name, v) in [
        ("beta", "v1"),
        ("alpha", "v1"),
        ("beta", "v2"),
        ("beta", "v1"),
    ] {
        c.publish(new_version(name, v, manifest(1, 1)))
            .await
            .unwrap();
    }
    let rows: Vec<(String, String, bool)> = c
        .currents()
        .await
        .unwrap()
        .iter()
        .map(|i| (i.course.to_string(), i.version.to_string(), i.current))
        .collect();
    assert_eq!(
        rows,
        [
            ("alpha".into(), "v1".into(), true),
            ("beta".into(), "v1".into(), true)
        ]
    );
}

/// Contract (atomicity): a reader polling while a large version is published sees either
/// the old version or the whole new one, never a current version without its manifest.
pub async fn publish_is_atomic_for_readers(c: &dyn Catalog) {
    let small = manifest(1, 1);
    let big = manifest(10_000, 2);
    c.publish(new_version("demo", "v1", small.clone()))
        .await
        .unwrap();
    let reader = async {
        let start = Instant::now();
        loop {
            let cur = c.current(&course("demo")).await.unwrap().unwrap();
            let m = c.manifest(&course("demo"), &cur.version).await.unwrap();
            match cur.version.as_str() {
                "v1" => assert_eq!(m.entries().len(), small.entries().len()),
                "v2" => {
                    assert_eq!(m.entries().len(), big.entries().len());
                    return;
                }
                other => panic!("unexpected version {other}"),
            }
            assert!(start.elapsed() < DEADLINE, "v2 never became visible");
            tokio::task::yield_now().await;
        }
    };
    let writer = async {
        c.publish(new_version("demo", "v2", big.clone()))
            .await
            .unwrap();
    };
    tokio::join!(reader, writer);
    assert_eq!(
        c.manifest(&course("demo"), &version("v2")).await.unwrap(),
        big
    );
}

/// Contract: memo entries round trip, a second put of a key keeps one (the newest) entry,
/// and unknown keys are absent.
pub async fn memo_put_get(c: &dyn Catalog) {
    assert!(c.memo_get(&[]).await.unwrap().is_empty());
    let a = MemoEntry {
        id: chunk_id(1, 1),
        size: 10,
    };
    let b = MemoEntry {
        id: chunk_id(1, 2),
        size: 20,
    };
    c.memo_put(&[("git:a".into(), a), ("git:b".into(), b)])
        .await
        .unwrap();
    let b2 = MemoEntry {
        id: chunk_id(1, 3),
        size: 30,
    };
    c.memo_put(&[("git:b".into(), b2)]).await.unwrap();
    let got = c
        .memo_get(&["git:a".into(), "git:b".into(), "git:zzz".into()])
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got["git:a"], a);
    assert_eq!(got["git:b"], b2);
}

/// Contract: `tocs` returns the stored tables of contents of the asked ids (those without
/// one are absent), and `put_tocs` of a chunk that has one keeps the first.
pub async fn tocs_round_trip_and_keep_the_first(c: &dyn Catalog) {
    use kiln_core::toc::{Toc, TocEntry, TocKind};
    let toc = |paths: &[&str]| Toc {
        entries: paths
            .iter()
            .map(|p| TocEntry {
                path: (*p).into(),
                size: p.len() as u64,
                kind: if p.ends_with(".lnk") {
                    TocKind::Symlink {
                        target: "a.html".into(),
                    }
                } else {
                    TocKind::File {
                        exec: p.ends_with(".sh"),
                    }
                },
            })
            .collect(),
    };
    assert!(c.tocs(&[]).await.unwrap().is_empty());
    c.put_tocs(&[]).await.unwrap();
    let (a, b) = (chunk_id(7, 1), chunk_id(7, 2));
    let first = toc(&["a.html", "b.lnk", "dir/run.sh"]);
    c.put_tocs(&[(a, first.clone()), (b, Toc::default())])
        .await
        .unwrap();
    c.put_tocs(&[(a, toc(&["other"]))]).await.unwrap();
    let got = c.tocs(&[a, b, chunk_id(7, 3)]).await.unwrap();
    assert_eq!(got.len(), 2, "the unknown chunk has none");
    assert_eq!(got[&a], first, "the first one is kept");
    assert_eq!(
        got[&b],
        Toc::default(),
        "an empty chunk's table is empty, not absent"
    );
    let many: Vec<_> = (0..600u64).map(|i| (chunk_id(8, i), toc(&["x"]))).collect();
    c.put_tocs(&many).await.unwrap();
    let ids: Vec<ChunkId> = many.iter().map(|(id, _)| *id).collect();
    assert_eq!(c.tocs(&ids).await.unwrap().len(), 600);
}

/// Contract: `memo_forget` removes exactly the entries that point at the given ids.
pub async fn memo_forget_by_chunk(c: &dyn Catalog) {
    let shared = MemoEntry {
        id: chunk_id(2, 1),
        size: 1,
    };
    let other = MemoEntry {
        id: chunk_id(2, 2),
        size: 2,
    };
    c.memo_put(&[
        ("k1".into(), shared),
        ("k2".into(), shared),
        ("k3".into(), other),
    ])
    .await
    .unwrap();
    c.memo_forget(&[shared.id, chunk_id(9, 9)]).await.unwrap();
    let got = c
        .memo_get(&["k1".into(), "k2".into(), "k3".into()])
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got["k3"], other);
}

/// Contract: a large memo batch (a full sync's worth) round trips.
pub async fn memo_large_batch(c: &dyn Catalog) {
    let entries: Vec<(String, MemoEntry)> = (0..5_000u64)
        .map(|i| {
            (
                format!("git:{i:040x}"),
                MemoEntry {
                    id: chunk_id(3, i),
                    size: i,
                },
            )
        })
        .collect();
    c.memo_put(&entries).await.unwrap();
    let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
    let got = c.memo_get(&keys).await.unwrap();
    assert_eq!(got.len(), entries.len());
    for (k, e) in &entries {
        assert_eq!(&got[k], e);
    }
}

/// Contract: `referenced_chunks` is the union of every version's chunk ids.
pub async fn referenced_chunks_of_every_version(c: &dyn Catalog) {
    let m1 = manifest(3, 1);
    let m2 = manifest(2, 2);
    let m3 = manifest(4, 1);
    c.publish(new_version("a", "v1", m1.clone())).await.unwrap();
    c.publish(new_version("a", "v2", m2.clone())).await.unwrap();
    c.publish(new_version("b", "v1", m3.clone())).await.unwrap();
    let want: HashSet<ChunkId> = [&m1, &m2, &m3]
        .iter()
        .flat_map(|m| m.entries().iter().map(|e| e.id))
        .collect();
    assert_eq!(c.referenced_chunks().await.unwrap(), want);
}

/// Contract (concurrency): a lock has one owner at a time; the owner may renew it; only
/// the owner's unlock frees it.
pub async fn lock_is_exclusive_and_renewable(c: &dyn Catalog) {
    let long = LONG;
    assert!(c.try_lock("sync:demo", "a", long).await.unwrap());
    assert!(!c.try_lock("sync:demo", "b", long).await.unwrap());
    assert!(
        c.try_lock("sync:demo", "a", long).await.unwrap(),
        "owner renews"
    );
    assert!(
        c.try_lock("sync:other", "b", long).await.unwrap(),
        "locks are per name"
    );
    c.unlock("sync:demo", "b").await.unwrap();
    assert!(
        !c.try_lock("sync:demo", "b", long).await.unwrap(),
        "non-owner unlock is a no-op"
    );
    c.unlock("sync:demo", "a").await.unwrap();
    assert!(c.try_lock("sync:demo", "b", long).await.unwrap());
    assert!(!c.try_lock("sync:demo", "a", long).await.unwrap());
}

/// Contract (concurrency): a lease that is not renewed expires and another owner gets it.
pub async fn lock_expires(c: &dyn Catalog, clock: &ManualClock) {
    let ttl = Duration::from_secs(30);
    assert!(c.try_lock("sync:demo", "a", ttl).await.unwrap());
    clock.advance(ttl - Duration::from_millis(1));
    assert!(
        !c.try_lock("sync:demo", "b", LONG).await.unwrap(),
        "a lease is live until its ttl ends"
    );
    clock.advance(Duration::from_millis(1));
    assert!(c.try_lock("sync:demo", "b", LONG).await.unwrap());
    assert!(!c.try_lock("sync:demo", "a", LONG).await.unwrap());
}

/// Contract (concurrency): `lock_holder` names the live holder, not an expired one;
/// `take_over` moves the lease from the named holder only.
pub async fn lock_holder_and_take_over(c: &dyn Catalog, clock: &ManualClock) {
    assert_eq!(c.lock_holder("sync:demo").await.unwrap(), None);
    assert!(c.try_lock("sync:demo", "a", LONG).await.unwrap());
    let h = c.lock_holder("sync:demo").await.unwrap().expect("held");
    assert_eq!(h.owner, "a");
    assert_eq!(h.expires_at, clock.now().plus(LONG));
    assert!(
        !c.take_over("sync:demo", "x", "b", LONG).await.unwrap(),
        "only from the named holder"
    );
    assert!(c.take_over("sync:demo", "a", "b", LONG).await.unwrap());
    assert_eq!(
        c.lock_holder("sync:demo").await.unwrap().unwrap().owner,
        "b"
    );
    assert!(!c.try_lock("sync:demo", "a", LONG).await.unwrap());
    let short = Duration::from_secs(5);
    assert!(c.try_lock("sync:short", "a", short).await.unwrap());
    assert!(c.lock_holder("sync:short").await.unwrap().is_some());
    clock.advance(short);
    assert_eq!(
        c.lock_holder("sync:short").await.unwrap(),
        None,
        "an expired lease has no holder"
    );
}

/// Contract: times are read from the backend's clock: a version's `created_at` is the
/// clock's time at its publish.
pub async fn times_come_from_the_clock(c: &dyn Catalog, clock: &ManualClock) {
    clock.advance(Duration::from_secs(3600));
    let first = clock.now();
    c.publish(new_version("demo", "v1", manifest(1, 1)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(7));
    c.publish(new_version("demo", "v2", manifest(1, 2)))
        .await
        .unwrap();
    let times: Vec<_> = c
        .versions(&course("demo"))
        .await
        .unwrap()
        .iter()
        .map(|v| v.created_at)
        .collect();
    assert_eq!(times, [clock.now(), first]);
}

/// Contract (claims and marks): `gc_mark` marks only chunks that no version references and
/// no live claim holds, forgets their memo entries, and counts the owner's live marks.
pub async fn gc_marks_only_unclaimed_unreferenced_chunks(c: &dyn Catalog) {
    let long = LONG;
    let m = manifest(2, 7);
    c.publish(new_version("a", "v1", m.clone())).await.unwrap();
    let referenced = m.entries()[0].id;
    let (claimed, free) = (chunk_id(8, 1), chunk_id(8, 2));
    let memo = |id| MemoEntry { id, size: 1 };
    c.memo_put(&[
        ("git:free".into(), memo(free)),
        ("git:claimed".into(), memo(claimed)),
    ])
    .await
    .unwrap();
    assert!(
        c.claim_chunks("sync-1", &[claimed], long)
            .await
            .unwrap()
            .is_empty()
    );
    let (marked, live) = c
        .gc_mark("gc-1", &[referenced, claimed, free], long)
        .await
        .unwrap();
    assert_eq!(marked, vec![free]);
    assert_eq!(live, 1);
    let memo_now = c
        .memo_get(&["git:free".into(), "git:claimed".into()])
        .await
        .unwrap();
    assert!(
        !memo_now.contains_key("git:free"),
        "a marked chunk's memo is forgotten"
    );
    assert!(memo_now.contains_key("git:claimed"));
    // A renewal with no candidates keeps the marks and counts them.
    assert_eq!(c.gc_mark("gc-1", &[], long).await.unwrap(), (vec![], 1));
    // Another gc does not take a live mark.
    assert_eq!(c.gc_mark("gc-2", &[free], long).await.unwrap(), (vec![], 0));
}

/// Contract (claims and marks): a claim reports the chunks a gc has marked; after
/// `gc_unmark` it reports none, and a released or expired claim no longer protects a chunk.
pub async fn claims_report_marks_and_expire(c: &dyn Catalog, clock: &ManualClock) {
    let long = LONG;
    let (a, b) = (chunk_id(9, 1), chunk_id(9, 2));
    assert_eq!(c.gc_mark("gc-1", &[a], long).await.unwrap().0, vec![a]);
    // The same id twice in one call is one claim.
    let marked = c.claim_chunks("sync-1", &[a, b, a, b], long).await.unwrap();
    assert_eq!(marked, HashSet::from([a]));
    c.gc_unmark("gc-1").await.unwrap();
    assert!(
        c.claim_chunks("sync-1", &[a], long)
            .await
            .unwrap()
            .is_empty()
    );
    // Claimed now: no gc marks them.
    assert!(c.gc_mark("gc-2", &[a, b], long).await.unwrap().0.is_empty());
    c.release_claims("sync-1").await.unwrap();
    assert_eq!(c.gc_mark("gc-2", &[a], long).await.unwrap().0, vec![a]);
    c.gc_unmark("gc-2").await.unwrap();
    // An expired claim protects nothing.
    let short = Duration::from_secs(5);
    c.claim_chunks("sync-2", &[b], short).await.unwrap();
    clock.advance(short - Duration::from_millis(1));
    assert!(
        c.gc_mark("gc-3", &[b], long).await.unwrap().0.is_empty(),
        "a claim is live until its ttl ends"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(c.gc_mark("gc-3", &[b], long).await.unwrap().0, vec![b]);
    // A claim with no ids renews the owner's earlier claims: sync-3's first one outlives its ttl.
    c.gc_unmark("gc-3").await.unwrap();
    c.claim_chunks("sync-3", &[a], short).await.unwrap();
    c.claim_chunks("sync-3", &[], long).await.unwrap();
    clock.advance(short * 2);
    assert!(c.gc_mark("gc-4", &[a], long).await.unwrap().0.is_empty());
}

/// Contract (claims and marks): a mark that is not renewed expires: claims no longer
/// report it, another gc may mark the chunk, and its owner no longer counts it; a renewal
/// (`gc_mark` with no candidates) keeps it live.
pub async fn marks_expire_unless_renewed(c: &dyn Catalog, clock: &ManualClock) {
    let ttl = Duration::from_secs(30);
    let (a, b) = (chunk_id(11, 1), chunk_id(11, 2));
    assert_eq!(c.gc_mark("gc-1", &[a], ttl).await.unwrap(), (vec![a], 1));
    assert_eq!(c.gc_mark("gc-2", &[b], ttl).await.unwrap(), (vec![b], 1));
    clock.advance(ttl - Duration::from_millis(1));
    assert_eq!(
        c.gc_mark("gc-2", &[], ttl).await.unwrap(),
        (vec![], 1),
        "renewed"
    );
    clock.advance(Duration::from_millis(1));
    assert!(
        c.claim_chunks("sync-1", &[a], LONG)
            .await
            .unwrap()
            .is_empty(),
        "an expired mark is not reported"
    );
    c.release_claims("sync-1").await.unwrap();
    assert_eq!(c.gc_mark("gc-1", &[], ttl).await.unwrap(), (vec![], 0));
    assert_eq!(c.gc_mark("gc-3", &[a], ttl).await.unwrap(), (vec![a], 1));
    assert_eq!(
        c.claim_chunks("sync-2", &[b], LONG).await.unwrap(),
        HashSet::from([b]),
        "the renewed mark is live"
    );
}

/// Contract (claims and marks): marks and claims are serialised: of a claim and a mark of
/// one chunk racing each other, exactly one side sees the other.
pub async fn claims_and_marks_race_safely(c: &dyn Catalog) {
    let long = LONG;
    for i in 0..50u64 {
        let id = [chunk_id(10, i)];
        let owner_s = format!("sync-{i}");
        let owner_g = format!("gc-{i}");
        let (claim, mark) = tokio::join!(
            c.claim_chunks(&owner_s, &id, long),
            c.gc_mark(&owner_g, &id, long)
        );
        let claim_saw_mark = claim.unwrap().contains(&id[0]);
        let marked = mark.unwrap().0.contains(&id[0]);
        // Either the mark won (and the claim saw it) or the claim won (and nothing was marked).
        assert_eq!(claim_saw_mark, marked, "round {i}");
    }
}

/// Contract (concurrency), the lease clauses together: a seeded random sequence of
/// `try_lock`, `unlock`, `take_over` and `lock_holder` calls by three owners on two names,
/// with random ttls and clock moves, applied to the catalog and to a `HashMap` model, must
/// agree at every step.
pub async fn model_based_random_leases(c: &dyn Catalog, clock: &ManualClock) {
    let names = ["sync:a", "sync:b"];
    let owners = ["x", "y", "z"];
    let mut rng = StdRng::seed_from_u64(11);
    // name -> (owner, expires_at)
    let mut model: HashMap<&str, (&str, Timestamp)> = HashMap::new();
    for step in 0..300 {
        let ctx = format!("step {step}");
        let name = names[rng.random_range(0..names.len())];
        let owner = owners[rng.random_range(0..owners.len())];
        let ttl = Duration::from_millis(rng.random_range(1..10_000));
        let now = clock.now();
        let live = model.get(name).copied().filter(|(_, at)| *at > now);
        match rng.random_range(0..10) {
            0..=2 => {
                let want = live.is_none_or(|(o, _)| o == owner);
                assert_eq!(c.try_lock(name, owner, ttl).await.unwrap(), want, "{ctx}");
                if want {
                    model.insert(name, (owner, now.plus(ttl)));
                }
            }
            3 => {
                c.unlock(name, owner).await.unwrap();
                if model.get(name).is_some_and(|(o, _)| *o == owner) {
                    model.remove(name);
                }
            }
            4 => {
                let from = owners[rng.random_range(0..owners.len())];
                let want = model.get(name).is_some_and(|(o, _)| *o == from);
                let got = c.take_over(name, from, owner, ttl).await.unwrap();
                assert_eq!(got, want, "{ctx}");
                if want {
                    model.insert(name, (owner, now.plus(ttl)));
                }
            }
            5..=6 => clock.advance(Duration::from_millis(rng.random_range(1..4_000))),
            _ => {
                let got = c.lock_holder(name).await.unwrap();
                let want = live.map(|(o, at)| LockHolder {
                    owner: o.to_string(),
                    expires_at: at,
                });
                assert_eq!(got, want, "{ctx}");
            }
        }
    }
}

/// Stamps out one `#[tokio::test]` per catalog check. `$setup` is an expression that
/// evaluates to a function (or closure) from a [`SharedClock`](kiln_core::time::SharedClock)
/// to a future of `Arc<dyn Catalog>` (or any smart pointer to a `Catalog`) reading time
/// from that clock; it is evaluated once per test and must give an isolated, empty
/// catalog. Each test builds its catalog on a fresh [`ManualClock`].
#[macro_export]
macro_rules! catalog_tests {
    ($setup:expr) => {
        $crate::catalog_tests!(@ $setup;
            [
                publish_then_read,
                publish_current_again_is_unchanged,
                publish_older_version_reinstates,
                versions_newest_first,
                unknown_things_are_not_found,
                courses_are_sorted,
                currents_name_every_course_once,
                publish_is_atomic_for_readers,
                memo_put_get,
                memo_forget_by_chunk,
                memo_large_batch,
                tocs_round_trip_and_keep_the_first,
                referenced_chunks_of_every_version,
                lock_is_exclusive_and_renewable,
                gc_marks_only_unclaimed_unreferenced_chunks,
                claims_and_marks_race_safely,
            ]
            [
                lock_expires,
                lock_holder_and_take_over,
                times_come_from_the_clock,
                claims_report_marks_and_expire,
                marks_expire_unless_renewed,
                model_based_random_leases,
            ]
        );
    };
    (@ $setup:expr; [$($check:ident),* $(,)?] [$($timed:ident),* $(,)?]) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let clock = $crate::clock::ManualClock::new();
                let setup = $setup;
                let catalog = setup(clock.shared()).await;
                $crate::catalog::$check(&*catalog).await;
            }
        )*
        $(
            #[::tokio::test]
            async fn $timed() {
                let clock = $crate::clock::ManualClock::new();
                let setup = $setup;
                let catalog = setup(clock.shared()).await;
                $crate::catalog::$timed(&*catalog, &clock).await;
            }
        )*
    };
}
