//! The job queue's **Throttles** clause: a key's concurrency and rate hold across every
//! leaser together, a freed lease frees its slot, and a key no lease names waits.

use std::collections::HashSet;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use kiln_core::queue::{JobQueue, LeaseOptions, Leased, NewJob, priority};
use kiln_core::throttle::{CONCURRENCY_RECHECK, Limit, Rate, Throttle};

use super::{LONG, SHORT, alive, job, leases};
use crate::clock::ManualClock;

fn throttled(payload: &str, key: &str) -> NewJob {
    let mut j = job(payload);
    j.throttle = Some(key.into());
    j
}

fn named(max_jobs: usize, visibility: Duration, throttles: &[(&str, Limit)]) -> LeaseOptions {
    LeaseOptions {
        max_jobs: NonZeroUsize::new(max_jobs).expect("at least one job"),
        visibility,
        worker: None,
        throttles: throttles
            .iter()
            .map(|(key, limit)| Throttle {
                key: (*key).into(),
                limit: *limit,
            })
            .collect(),
    }
}

fn concurrency(n: u32) -> Limit {
    Limit {
        concurrency: NonZeroU32::new(n),
        rate: None,
    }
}

fn rate(per_second: f64, burst: u32) -> Limit {
    Limit {
        concurrency: None,
        rate: Some(Rate::new(per_second, Some(burst)).expect("a valid rate")),
    }
}

fn keyed_in(l: &Leased) -> usize {
    l.jobs
        .iter()
        .filter(|j| j.payload.starts_with(b"t"))
        .count()
}

async fn take(q: &dyn JobQueue, o: &LeaseOptions) -> Leased {
    q.lease(o).await.expect("lease")
}

/// Contract (throttles): a job with a throttle key is leased only by a lease that names
/// the key, in one priority order with unthrottled jobs.
pub async fn throttled_jobs_wait_for_a_lease_that_names_them(q: &dyn JobQueue) {
    let mut live = throttled("live", "lib");
    live.priority = priority::LIVE;
    q.enqueue(vec![
        throttled("render", "lib"),
        job("plain"),
        live,
        throttled("other", "x"),
    ])
    .await
    .unwrap();
    let blind = take(q, &named(10, LONG, &[])).await;
    let got: Vec<&[u8]> = blind.jobs.iter().map(|j| &j.payload[..]).collect();
    assert_eq!(
        got,
        [&b"plain"[..]],
        "a lease that names no key takes no keyed job"
    );
    assert_eq!(blind.throttled, None, "nothing was held back by a limit");
    let naming = take(q, &named(10, LONG, &[("lib", Limit::default())])).await;
    let got: Vec<&[u8]> = naming.jobs.iter().map(|j| &j.payload[..]).collect();
    assert_eq!(
        got,
        [&b"live"[..], b"render"],
        "priority order, key x left alone"
    );
    assert_eq!(q.pending().await.unwrap(), 4, "x's job waits");
}

/// Contract (throttles): concurrent leases together hold at most the key's concurrency;
/// an ack or an expired lease frees a slot, and unthrottled jobs are not held back.
pub async fn throttle_caps_concurrency_across_leasers(q: &dyn JobQueue, clock: &ManualClock) {
    let mut batch: Vec<NewJob> = (0..20)
        .map(|i| throttled(&format!("t{i}"), "lib"))
        .collect();
    batch.extend((0..5).map(|i| job(&format!("u{i}"))));
    q.enqueue(batch).await.unwrap();
    let o = named(10, SHORT, &[("lib", concurrency(3))]);
    let rounds = futures::future::join_all((0..4).map(|_| q.lease(&o))).await;
    let mut held = Vec::new();
    let mut waits = HashSet::new();
    for r in rounds {
        let r = r.unwrap();
        waits.insert(r.throttled);
        held.extend(r.jobs);
    }
    let keyed: Vec<_> = held
        .iter()
        .filter(|j| j.payload.starts_with(b"t"))
        .collect();
    assert_eq!(
        keyed.len(),
        3,
        "three leases of lib at once, across four leasers"
    );
    assert_eq!(held.len(), 3 + 5, "unthrottled jobs are all leased");
    assert!(
        waits.contains(&Some(CONCURRENCY_RECHECK)),
        "a lease held back says when to look again: {waits:?}"
    );
    let more = take(q, &o).await;
    assert!(more.jobs.is_empty(), "the key is at its limit");
    assert_eq!(more.throttled, Some(CONCURRENCY_RECHECK));

    assert_eq!(q.ack(&[keyed[0].lease]).await.unwrap(), 1);
    let after_ack = take(q, &o).await;
    assert_eq!(after_ack.jobs.len(), 1, "an ack frees one slot");

    // Every lease now lapses (the unthrottled ones come back too): all three slots free.
    clock.advance(SHORT * 2);
    let after_expiry = take(q, &o).await;
    assert_eq!(keyed_in(&after_expiry), 3, "expired leases hold no slot");
    assert_eq!(after_expiry.jobs.len(), 3 + 5);
    assert_eq!(q.release(&leases(&after_expiry.jobs)).await.unwrap(), 8);
    let after_release = take(q, &o).await;
    assert_eq!(keyed_in(&after_release), 3, "released leases hold no slot");
}

/// Contract (throttles + liveness): the slots of a worker that stopped without a word (kill
/// -9) free as soon as its liveness lapses and another worker's heartbeat reclaims its
/// leases, long before their visibility timeout.
pub async fn a_lapsed_workers_throttled_leases_free_their_slots(
    q: &dyn JobQueue,
    clock: &ManualClock,
) {
    let batch: Vec<NewJob> = (0..6).map(|i| throttled(&format!("t{i}"), "lib")).collect();
    q.enqueue(batch).await.unwrap();
    let as_worker = |w: &str, ttl: Duration| LeaseOptions {
        worker: Some(alive(w, ttl)),
        ..named(10, LONG, &[("lib", concurrency(2))])
    };
    let dead = take(q, &as_worker("dead", SHORT)).await;
    assert_eq!(dead.jobs.len(), 2);
    let live = as_worker("live", LONG);
    assert!(
        take(q, &live).await.jobs.is_empty(),
        "the dead worker holds both slots"
    );
    clock.advance(SHORT * 2);
    assert!(
        take(q, &live).await.jobs.is_empty(),
        "until its leases are reclaimed"
    );
    assert_eq!(q.heartbeat(&alive("live", LONG)).await.unwrap(), 2);
    let after = take(q, &live).await;
    assert_eq!(after.jobs.len(), 2, "reclaimed leases hold no slot");
    assert_eq!(
        q.ack(&leases(&dead.jobs)).await.unwrap(),
        0,
        "the dead worker's leases are stale"
    );
}

/// Contract (throttles): a key's leased jobs follow its token bucket, across leasers: the
/// burst at once, then `per_second`, never beyond the burst after an idle spell.
pub async fn throttle_rate_spends_a_token_bucket(q: &dyn JobQueue, clock: &ManualClock) {
    let batch: Vec<NewJob> = (0..100)
        .map(|i| throttled(&format!("t{i}"), "lib"))
        .collect();
    q.enqueue(batch).await.unwrap();
    let o = named(100, LONG, &[("lib", rate(10.0, 4))]);
    let rounds = futures::future::join_all((0..3).map(|_| q.lease(&o))).await;
    let mut first = 0;
    for r in rounds {
        let r = r.unwrap();
        first += r.jobs.len();
        if r.jobs.len() < 4 {
            assert_eq!(
                r.throttled,
                Some(Duration::from_millis(200)),
                "until the bucket holds half its burst at 10/s"
            );
        }
    }
    assert_eq!(first, 4, "the burst, shared by three leasers");
    assert!(take(q, &o).await.jobs.is_empty(), "no token left");
    clock.advance(Duration::from_millis(300));
    assert_eq!(take(q, &o).await.jobs.len(), 3, "300 ms at 10/s");
    clock.advance(Duration::from_millis(50));
    assert!(take(q, &o).await.jobs.is_empty(), "half a token");
    clock.advance(Duration::from_millis(50));
    assert_eq!(take(q, &o).await.jobs.len(), 1, "the halves add up");
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        take(q, &o).await.jobs.len(),
        4,
        "an idle minute fills only the burst"
    );
    let small = named(2, LONG, &[("lib", rate(10.0, 4))]);
    clock.advance(Duration::from_secs(60));
    let two = take(q, &small).await;
    assert_eq!(
        (two.jobs.len(), two.throttled),
        (2, None),
        "asked for less than the bucket"
    );
    assert_eq!(take(q, &o).await.jobs.len(), 2, "what the small lease left");
}
