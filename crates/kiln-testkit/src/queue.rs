//! The conformance suite of [`JobQueue`]: one `pub async fn` per contract clause, a
//! model-based random test (in `model`), and [`job_queue_tests!`](crate::job_queue_tests) to stamp out
//! one test per check for a backend.
//!
//! Time is a [`ManualClock`] that the setup builds the queue on: checks of visibility
//! timeouts, delays, backoff and liveness advance it instead of sleeping or polling.

use std::collections::HashSet;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use bytes::Bytes;
use kiln_core::Error;
use kiln_core::ids::{JobId, RunId};
use kiln_core::queue::{
    Depth, Enqueued, Job, JobQueue, Lease, LeaseOptions, Liveness, NewJob, RetryOptions,
    RetryOutcome, Tally, priority,
};
use kiln_core::time::Clock;

use crate::clock::ManualClock;

mod model;
mod throttle;

pub use model::model_based_random_operations;
pub use throttle::{
    a_lapsed_workers_throttled_leases_free_their_slots, throttle_caps_concurrency_across_leasers,
    throttle_rate_spends_a_token_bucket, throttled_jobs_wait_for_a_lease_that_names_them,
};

/// How long `wait_for_work_wakes_on_enqueue` gives a wake-up (tokio time: it bounds a hang).
const DEADLINE: Duration = Duration::from_secs(10);

const LONG: Duration = Duration::from_secs(3600);

/// A visibility timeout or liveness ttl that the checks let pass by advancing the clock.
const SHORT: Duration = Duration::from_secs(1);

/// A job with `payload`, render priority, 3 attempts and no run or fence.
pub fn job(payload: &str) -> NewJob {
    NewJob {
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        priority: priority::RENDER,
        not_before: None,
        max_attempts: attempts(3),
        run: None,
        fence: None,
        dedupe: None,
        throttle: None,
    }
}

fn keyed(mut j: NewJob, key: &str) -> NewJob {
    j.dedupe = Some(key.into());
    j
}

fn with_run(mut j: NewJob, run: i64) -> NewJob {
    j.run = Some(RunId(run));
    j
}

fn fenced(mut j: NewJob, key: &str, generation: u64) -> NewJob {
    j.fence = Some((key.into(), generation));
    j
}

/// `n` attempts (at least 1).
pub fn attempts(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("at least one attempt")
}

fn opts(max_jobs: usize, visibility: Duration) -> LeaseOptions {
    LeaseOptions {
        max_jobs: NonZeroUsize::new(max_jobs).expect("at least one job"),
        visibility,
        worker: None,
        throttles: Vec::new(),
    }
}

fn alive(worker: &str, ttl: Duration) -> Liveness {
    Liveness {
        worker: worker.into(),
        ttl,
    }
}

fn opts_as(max_jobs: usize, worker: Liveness) -> LeaseOptions {
    LeaseOptions {
        max_jobs: NonZeroUsize::new(max_jobs).expect("at least one job"),
        visibility: LONG,
        worker: Some(worker),
        throttles: Vec::new(),
    }
}

async fn lease(q: &dyn JobQueue, max_jobs: usize) -> Vec<Job> {
    q.lease(&opts(max_jobs, LONG)).await.unwrap().jobs
}

fn retry_now(error: &str) -> RetryOptions {
    RetryOptions {
        delay: Duration::ZERO,
        error: error.into(),
    }
}

fn tally(enqueued: u64, done: u64, failed: u64, dead: u64, dropped: u64) -> Tally {
    Tally {
        enqueued,
        done,
        failed,
        dead,
        dropped,
    }
}

fn leases(jobs: &[Job]) -> Vec<Lease> {
    jobs.iter().map(|j| j.lease).collect()
}

/// The ids of an enqueued batch, in order.
fn ids_of(enqueued: Vec<Enqueued>) -> Vec<JobId> {
    enqueued.into_iter().map(|e| e.id).collect()
}

/// Contract (atomicity): a batch gets its ids in order; an empty batch is a no-op.
pub async fn enqueue_returns_ids_in_order(q: &dyn JobQueue) {
    assert!(q.enqueue(Vec::new()).await.unwrap().is_empty());
    let ids = ids_of(q.enqueue(vec![job("a"), job("b"), job("c")]).await.unwrap());
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let got: Vec<JobId> = lease(q, 10).await.iter().map(|j| j.id).collect();
    assert_eq!(got, ids, "one priority leases in enqueue order");
}

/// Contract (atomicity): a batch with an invalid job is refused whole, naming the job.
pub async fn invalid_batch_is_refused_whole(q: &dyn JobQueue) {
    let mut bad = job("bad");
    bad.dedupe = Some("k".into());
    bad.run = None;
    let err = q.enqueue(vec![job("ok"), bad]).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("job 1 of the batch"), "{err}");
    assert!(err.to_string().contains("dedupe key needs a run"), "{err}");
    assert_eq!(q.pending().await.unwrap(), 0);
    assert!(lease(q, 10).await.is_empty());
}

/// Contract: a leased job carries what was enqueued, attempt 1 and a lease for its id.
pub async fn lease_round_trips_the_job(q: &dyn JobQueue) {
    let mut j = with_run(job("payload \0 bytes"), 7);
    j.priority = 42;
    j.max_attempts = attempts(9);
    let ids = ids_of(q.enqueue(vec![j]).await.unwrap());
    let got = lease(q, 10).await;
    assert_eq!(got.len(), 1);
    let g = &got[0];
    assert_eq!(g.id, ids[0]);
    assert_eq!(g.lease.job, ids[0]);
    assert_eq!(&g.payload[..], b"payload \0 bytes");
    assert_eq!((g.attempt, g.max_attempts, g.priority), (1, 9, 42));
    assert_eq!(g.run, Some(RunId(7)));
}

/// Contract (ordering): higher priority first, then by id; at most `max_jobs`.
pub async fn lease_orders_by_priority_then_id(q: &dyn JobQueue) {
    let mut jobs = Vec::new();
    for (name, p) in [
        ("low", 1),
        ("high", 100),
        ("mid", 50),
        ("high2", 100),
        ("low2", 1),
    ] {
        let mut j = job(name);
        j.priority = p;
        jobs.push(j);
    }
    q.enqueue(jobs).await.unwrap();
    let first: Vec<Bytes> = lease(q, 2).await.into_iter().map(|j| j.payload).collect();
    assert_eq!(first, ["high", "high2"]);
    let rest: Vec<Bytes> = lease(q, 10).await.into_iter().map(|j| j.payload).collect();
    assert_eq!(rest, ["mid", "low", "low2"]);
    assert!(lease(q, 10).await.is_empty());
}

/// Contract (ordering): a job whose `not_before` is in the future is not ready; it is
/// once its time comes.
pub async fn delayed_jobs_wait(q: &dyn JobQueue, clock: &ManualClock) {
    let mut later = job("later");
    later.not_before = Some(clock.now().plus(LONG));
    let mut past = job("past");
    past.not_before = Some(clock.now().minus(LONG));
    q.enqueue(vec![later, past]).await.unwrap();
    let got = lease(q, 10).await;
    let payloads: Vec<&Bytes> = got.iter().map(|j| &j.payload).collect();
    assert_eq!(payloads, ["past"]);
    assert_eq!(q.pending().await.unwrap(), 2, "a delayed job is pending");
    q.ack(&leases(&got)).await.unwrap();
    clock.advance(LONG - SHORT);
    assert!(lease(q, 10).await.is_empty(), "not before its time");
    clock.advance(SHORT);
    let got: Vec<Bytes> = lease(q, 10).await.into_iter().map(|j| j.payload).collect();
    assert_eq!(got, ["later"], "ready at its time");
}

/// Contract (at-least-once): an acked job is never delivered again; a second ack is stale.
pub async fn ack_completes_once(q: &dyn JobQueue) {
    q.enqueue(vec![with_run(job("a"), 1), with_run(job("b"), 1)])
        .await
        .unwrap();
    let got = lease(q, 10).await;
    assert_eq!(q.ack(&leases(&got)).await.unwrap(), 2);
    assert_eq!(q.ack(&leases(&got)).await.unwrap(), 0);
    assert!(lease(q, 10).await.is_empty());
    assert_eq!(q.pending().await.unwrap(), 0);
    assert_eq!(q.tally(RunId(1)).await.unwrap(), tally(2, 2, 0, 0, 0));
}

/// Contract (at-least-once, leases): a lease holds until its visibility timeout ends;
/// then the job is delivered again with a new token and `attempt + 1`, and the stale token
/// changes nothing.
pub async fn expired_lease_is_delivered_again(q: &dyn JobQueue, clock: &ManualClock) {
    let ids = ids_of(q.enqueue(vec![job("a")]).await.unwrap());
    let first = q.lease(&opts(10, SHORT)).await.unwrap().jobs;
    assert_eq!(first.len(), 1);
    clock.advance(SHORT - Duration::from_millis(1));
    assert!(
        lease(q, 10).await.is_empty(),
        "the lease holds until its end"
    );
    clock.advance(Duration::from_millis(1));
    let second = lease(q, 10).await;
    assert_eq!(second.len(), 1, "the job was not delivered again");
    assert_eq!(second[0].id, ids[0]);
    assert_eq!(second[0].attempt, 2);
    assert_ne!(second[0].lease.token, first[0].lease.token);
    let stale = first[0].lease;
    assert_eq!(q.ack(&[stale]).await.unwrap(), 0);
    assert_eq!(q.extend(&[stale], LONG).await.unwrap(), 0);
    assert_eq!(q.release(&[stale]).await.unwrap(), 0);
    assert_eq!(
        q.retry(stale, retry_now("x")).await.unwrap(),
        RetryOutcome::LeaseLost
    );
    assert!(!q.fail(stale, "x").await.unwrap());
    assert_eq!(q.ack(&[second[0].lease]).await.unwrap(), 1);
}

/// Contract (leases): `extend` moves the visibility timeout; only current leases count.
pub async fn extend_keeps_the_lease(q: &dyn JobQueue, clock: &ManualClock) {
    q.enqueue(vec![job("a")]).await.unwrap();
    let got = q.lease(&opts(10, SHORT)).await.unwrap().jobs;
    let bogus = Lease {
        job: got[0].id,
        token: got[0].lease.token.wrapping_add(1000),
    };
    assert_eq!(q.extend(&[got[0].lease, bogus], LONG).await.unwrap(), 1);
    clock.advance(SHORT * 2);
    assert!(
        lease(q, 10).await.is_empty(),
        "an extended lease is not delivered again"
    );
    assert_eq!(q.ack(&[got[0].lease]).await.unwrap(), 1);
}

/// Contract (dead letters): `retry` schedules another attempt after its delay.
pub async fn retry_schedules_another_attempt(q: &dyn JobQueue, clock: &ManualClock) {
    let ids = ids_of(q.enqueue(vec![with_run(job("a"), 1)]).await.unwrap());
    let got = lease(q, 1).await;
    assert_eq!(
        q.retry(got[0].lease, retry_now("boom")).await.unwrap(),
        RetryOutcome::Retrying
    );
    let again = lease(q, 1).await;
    assert_eq!(again[0].id, ids[0]);
    assert_eq!(again[0].attempt, 2);
    let later = RetryOptions {
        delay: LONG,
        error: "later".into(),
    };
    assert_eq!(
        q.retry(again[0].lease, later).await.unwrap(),
        RetryOutcome::Retrying
    );
    assert!(lease(q, 1).await.is_empty(), "a delayed retry is not ready");
    assert_eq!(q.pending().await.unwrap(), 1);
    assert_eq!(q.tally(RunId(1)).await.unwrap(), tally(1, 0, 2, 0, 0));
    clock.advance(LONG - SHORT);
    assert!(lease(q, 1).await.is_empty(), "not before its delay");
    clock.advance(SHORT);
    let last = lease(q, 1).await;
    assert_eq!(
        (last[0].id, last[0].attempt),
        (ids[0], 3),
        "ready after its delay"
    );
}

/// Contract (dead letters): `retry` at `max_attempts` makes a dead letter with the error.
pub async fn retry_at_last_attempt_makes_a_dead_letter(q: &dyn JobQueue) {
    let mut j = with_run(job("a"), 1);
    j.max_attempts = attempts(2);
    let ids = ids_of(q.enqueue(vec![j]).await.unwrap());
    let got = lease(q, 1).await;
    assert_eq!(
        q.retry(got[0].lease, retry_now("first")).await.unwrap(),
        RetryOutcome::Retrying
    );
    let got = lease(q, 1).await;
    assert_eq!(
        q.retry(got[0].lease, retry_now("second")).await.unwrap(),
        RetryOutcome::Dead
    );
    assert!(lease(q, 1).await.is_empty());
    assert_eq!(q.pending().await.unwrap(), 0);
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, ids[0]);
    assert_eq!(&dead[0].payload[..], b"a");
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(dead[0].error, "second");
    assert_eq!(dead[0].run, Some(RunId(1)));
    assert_eq!(q.tally(RunId(1)).await.unwrap(), tally(1, 0, 2, 1, 0));
}

/// Contract (dead letters): `fail` makes a dead letter at once, stamped with the time; a
/// stale `fail` is refused.
pub async fn fail_makes_a_dead_letter_at_once(q: &dyn JobQueue, clock: &ManualClock) {
    q.enqueue(vec![with_run(job("a"), 1)]).await.unwrap();
    let got = lease(q, 1).await;
    clock.advance(SHORT);
    let at = clock.now();
    assert!(q.fail(got[0].lease, "permanent").await.unwrap());
    assert!(!q.fail(got[0].lease, "again").await.unwrap());
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].error, "permanent");
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(dead[0].failed_at, at);
    assert_eq!(q.tally(RunId(1)).await.unwrap(), tally(1, 0, 1, 1, 0));
}

/// Contract (dead letters): dead letters list oldest first, limited; `redrive` of chosen
/// ids, or of all, makes them ready with a fresh attempt count.
pub async fn redrive_makes_dead_letters_ready(q: &dyn JobQueue) {
    let ids = ids_of(
        q.enqueue(vec![
            with_run(job("a"), 1),
            with_run(job("b"), 1),
            with_run(job("c"), 1),
        ])
        .await
        .unwrap(),
    );
    for _ in 0..3 {
        let got = lease(q, 1).await;
        assert!(q.fail(got[0].lease, "x").await.unwrap());
    }
    let dead: Vec<JobId> = q
        .dead_letters(10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(dead, ids);
    let two: Vec<JobId> = q
        .dead_letters(2)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(two, ids[..2]);
    assert_eq!(q.redrive(Some(&[ids[1]])).await.unwrap(), 1);
    let got = lease(q, 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id, got[0].attempt), (ids[1], 1));
    assert_eq!(q.tally(RunId(1)).await.unwrap(), tally(3, 0, 3, 2, 0));
    assert_eq!(q.redrive(None).await.unwrap(), 2);
    assert!(q.dead_letters(10).await.unwrap().is_empty());
    assert_eq!(lease(q, 10).await.len(), 2);
    assert_eq!(q.redrive(None).await.unwrap(), 0);
    assert_eq!(q.tally(RunId(1)).await.unwrap().dead, 0);
}

/// Contract (leases): `release` gives a job back without spending an attempt.
pub async fn release_gives_jobs_back(q: &dyn JobQueue) {
    let ids = ids_of(q.enqueue(vec![job("a")]).await.unwrap());
    let got = lease(q, 1).await;
    assert_eq!(q.release(&leases(&got)).await.unwrap(), 1);
    let again = lease(q, 1).await;
    assert_eq!((again[0].id, again[0].attempt), (ids[0], 1));
    assert_ne!(again[0].lease.token, got[0].lease.token);
    assert_eq!(
        q.ack(&leases(&got)).await.unwrap(),
        0,
        "the released lease is stale"
    );
}

/// Contract (fencing): `fence` drops the key's jobs below the generation, pending or leased,
/// and no others; a later ack of a dropped job changes nothing; tallies count the drops.
pub async fn fence_drops_older_generations(q: &dyn JobQueue) {
    let mut leased = fenced(with_run(job("old-leased"), 1), "lib", 1);
    leased.priority = 100;
    q.enqueue(vec![
        leased,
        fenced(with_run(job("old1"), 1), "lib", 1),
        fenced(with_run(job("old2"), 1), "lib", 1),
        fenced(with_run(job("new"), 2), "lib", 2),
        fenced(job("other"), "other", 1),
        job("plain"),
    ])
    .await
    .unwrap();
    let got = lease(q, 1).await;
    assert_eq!(&got[0].payload[..], b"old-leased");
    assert_eq!(q.fence("lib", 2).await.unwrap(), 3);
    assert_eq!(
        q.ack(&leases(&got)).await.unwrap(),
        0,
        "a dropped job's ack is stale"
    );
    let mut rest: Vec<Bytes> = lease(q, 10).await.into_iter().map(|j| j.payload).collect();
    rest.sort();
    assert_eq!(rest, ["new", "other", "plain"]);
    assert_eq!(q.tally(RunId(1)).await.unwrap(), tally(3, 0, 0, 0, 3));
    assert_eq!(q.tally(RunId(1)).await.unwrap().pending(), 0);
    assert_eq!(q.tally(RunId(2)).await.unwrap(), tally(1, 0, 0, 0, 0));
    assert_eq!(
        q.fence("lib", 2).await.unwrap(),
        0,
        "fencing again drops nothing more"
    );
}

/// Contract (pause): a paused library's jobs (its own fence key and its groups') are not
/// leased and spend no attempt, other libraries' and unfenced jobs are; resume lets them
/// go, and a job enqueued while paused waits too.
pub async fn pause_holds_back_a_librarys_jobs(q: &dyn JobQueue) {
    q.enqueue(vec![
        fenced(with_run(job("lib"), 1), "lib", 1),
        fenced(with_run(job("lib-group"), 2), "lib@g", 1),
        fenced(job("libx"), "libx", 1),
        job("plain"),
    ])
    .await
    .unwrap();
    q.pause("lib").await.unwrap();
    q.pause("lib").await.unwrap();
    assert_eq!(q.paused().await.unwrap(), ["lib"]);
    q.enqueue(vec![fenced(with_run(job("lib-later"), 1), "lib", 1)])
        .await
        .unwrap();
    let mut got: Vec<Bytes> = lease(q, 10).await.into_iter().map(|j| j.payload).collect();
    got.sort();
    assert_eq!(
        got,
        ["libx", "plain"],
        "a library named like it is not held"
    );
    assert!(lease(q, 10).await.is_empty());
    assert_eq!(q.pending().await.unwrap(), 5, "held jobs are still pending");
    assert!(q.resume("lib").await.unwrap());
    assert!(
        !q.resume("lib").await.unwrap(),
        "resuming twice says it was not paused"
    );
    assert!(q.paused().await.unwrap().is_empty());
    let back = lease(q, 10).await;
    let mut names: Vec<Bytes> = back.iter().map(|j| j.payload.clone()).collect();
    names.sort();
    assert_eq!(names, ["lib", "lib-group", "lib-later"]);
    assert!(
        back.iter().all(|j| j.attempt == 1),
        "holding spent no attempt"
    );
}

/// Contract (fencing): jobs enqueued below a fence are dropped at once (they get ids and
/// count as enqueued and dropped); a lower fence never lowers it.
pub async fn fence_refuses_later_enqueues(q: &dyn JobQueue) {
    q.fence("lib", 5).await.unwrap();
    q.fence("lib", 3).await.unwrap();
    let ids = ids_of(
        q.enqueue(vec![
            fenced(with_run(job("below"), 1), "lib", 4),
            fenced(with_run(job("at"), 1), "lib", 5),
            fenced(with_run(job("above"), 1), "lib", 6),
        ])
        .await
        .unwrap(),
    );
    assert_eq!(ids.len(), 3);
    let mut got: Vec<Bytes> = lease(q, 10).await.into_iter().map(|j| j.payload).collect();
    got.sort();
    assert_eq!(got, ["above", "at"]);
    assert_eq!(q.tally(RunId(1)).await.unwrap(), tally(3, 0, 0, 0, 1));
    assert_eq!(q.pending().await.unwrap(), 2);
}

/// Contract (tallies): a run with no jobs has zero tallies; each run's are its own.
pub async fn tallies_are_per_run(q: &dyn JobQueue) {
    assert_eq!(q.tally(RunId(404)).await.unwrap(), Tally::default());
    q.enqueue(vec![
        with_run(job("a"), 1),
        with_run(job("b"), 2),
        with_run(job("c"), 2),
    ])
    .await
    .unwrap();
    let got = lease(q, 10).await;
    assert_eq!(q.ack(&leases(&got)).await.unwrap(), 3);
    assert_eq!(q.tally(RunId(1)).await.unwrap(), tally(1, 1, 0, 0, 0));
    assert_eq!(q.tally(RunId(2)).await.unwrap(), tally(2, 2, 0, 0, 0));
}

/// Contract: `pending` counts ready and leased jobs, not dead or done ones.
pub async fn pending_counts_ready_and_leased(q: &dyn JobQueue) {
    q.enqueue(vec![job("a"), job("b"), job("c")]).await.unwrap();
    let got = lease(q, 2).await;
    assert_eq!(q.pending().await.unwrap(), 3);
    q.ack(&[got[0].lease]).await.unwrap();
    assert_eq!(q.pending().await.unwrap(), 2);
    q.fail(got[1].lease, "x").await.unwrap();
    assert_eq!(q.pending().await.unwrap(), 1);
}

/// Contract: `depth` counts the jobs that are not dead per priority, waiting or leased,
/// highest priority first, and the dead letters apart.
pub async fn depth_counts_per_priority(q: &dyn JobQueue) {
    assert_eq!(q.depth().await.unwrap(), (Vec::new(), 0));
    let mut live = job("live");
    live.priority = priority::LIVE;
    let mut one = job("one");
    one.max_attempts = attempts(1);
    q.enqueue(vec![one, job("two"), job("three"), live])
        .await
        .unwrap();
    let got = lease(q, 2).await;
    assert_eq!(&got[0].payload[..], b"live");
    q.fail(got[1].lease, "no").await.unwrap();
    let (depth, dead) = q.depth().await.unwrap();
    let row = |priority, waiting, leased| Depth {
        priority,
        waiting,
        leased,
    };
    assert_eq!(
        depth,
        [row(priority::LIVE, 0, 1), row(priority::RENDER, 2, 0)],
        "the live job leased, two renders waiting"
    );
    assert_eq!(dead, 1);
}

/// Contract (concurrency): concurrent leases never hand out one job twice.
pub async fn concurrent_leases_are_disjoint(q: &dyn JobQueue) {
    let batch: Vec<NewJob> = (0..100).map(|i| job(&format!("j{i}"))).collect();
    let ids = ids_of(q.enqueue(batch).await.unwrap());
    let o = opts(30, LONG);
    let rounds = futures::future::join_all((0..6).map(|_| q.lease(&o))).await;
    let mut seen = HashSet::new();
    for r in rounds {
        for j in r.unwrap().jobs {
            assert!(seen.insert(j.id), "job {} delivered twice", j.id);
        }
    }
    assert_eq!(seen.len(), ids.len());
}

/// Contract (at-least-once): a large batch is delivered whole, each job once.
pub async fn large_batch_drains_exactly_once(q: &dyn JobQueue) {
    let batch: Vec<NewJob> = (0..10_000)
        .map(|i| with_run(job(&format!("{i}")), 1))
        .collect();
    let ids = ids_of(q.enqueue(batch).await.unwrap());
    let mut seen = HashSet::new();
    loop {
        let got = lease(q, 1000).await;
        if got.is_empty() {
            break;
        }
        for j in &got {
            assert_eq!(j.payload, format!("{}", j.id.0 - ids[0].0).into_bytes());
            assert!(seen.insert(j.id));
        }
        assert_eq!(q.ack(&leases(&got)).await.unwrap(), got.len() as u64);
    }
    assert_eq!(seen.len(), 10_000);
    assert_eq!(
        q.tally(RunId(1)).await.unwrap(),
        tally(10_000, 10_000, 0, 0, 0)
    );
}

/// Contract: `wait_for_work` returns when work is enqueued, and after `max` otherwise.
pub async fn wait_for_work_wakes_on_enqueue(q: &dyn JobQueue) {
    tokio::time::timeout(DEADLINE, q.wait_for_work(Duration::from_millis(20)))
        .await
        .expect("wait_for_work did not return after max");
    let waiter = q.wait_for_work(Duration::from_secs(3600));
    let enqueuer = async {
        tokio::task::yield_now().await;
        q.enqueue(vec![job("a")]).await.unwrap();
    };
    let both = async { tokio::join!(waiter, enqueuer) };
    tokio::time::timeout(DEADLINE, both)
        .await
        .expect("wait_for_work was not woken");
}

/// Contract (idempotent enqueue): a dedupe key enqueued twice, in one batch or two, creates
/// one job and tallies one; the duplicates get the first job's id.
pub async fn dedupe_key_creates_one_job(q: &dyn JobQueue) {
    let ids = ids_of(
        q.enqueue(vec![
            keyed(with_run(job("page-1"), 1), "producer:1"),
            with_run(job("plain"), 1),
            keyed(with_run(job("page-1 again"), 1), "producer:1"),
        ])
        .await
        .unwrap(),
    );
    assert_eq!(
        ids[2], ids[0],
        "a duplicate in the batch gets the first job's id"
    );
    assert_ne!(ids[1], ids[0]);
    let again = ids_of(
        q.enqueue(vec![
            keyed(with_run(job("page-1 later"), 1), "producer:1"),
            keyed(with_run(job("page-2"), 1), "producer:2"),
        ])
        .await
        .unwrap(),
    );
    assert_eq!(again[0], ids[0], "a known key returns its job's id");
    assert_eq!(q.tally(RunId(1)).await.unwrap(), tally(3, 0, 0, 0, 0));
    assert_eq!(q.pending().await.unwrap(), 3);
    let mut got: Vec<Bytes> = lease(q, 10).await.into_iter().map(|j| j.payload).collect();
    got.sort();
    assert_eq!(got, ["page-1", "page-2", "plain"]);
}

/// Contract (idempotent enqueue): each job of a batch says whether this enqueue created
/// it: a key new to its run (and a job without a key) is created, a key the run already
/// has (earlier in the batch, or from a job acked, dead or pending) is not, and a job that
/// a fence drops at once counts as created. The created ones are exactly the tally's.
pub async fn enqueue_says_which_jobs_it_created(q: &dyn JobQueue) {
    let created = |e: &[Enqueued]| e.iter().map(|e| e.created).collect::<Vec<_>>();
    let first = q
        .enqueue(vec![
            keyed(with_run(job("a"), 1), "render:a"),
            with_run(job("plain"), 1),
            keyed(with_run(job("a again"), 1), "render:a"),
            keyed(with_run(job("b"), 1), "render:b"),
        ])
        .await
        .unwrap();
    assert_eq!(created(&first), [true, true, false, true]);
    assert_eq!(first[2].id, first[0].id);
    let got = lease(q, 10).await;
    let a = got.iter().find(|j| j.payload == "a").unwrap();
    assert_eq!(q.ack(&[a.lease]).await.unwrap(), 1);
    let second = q
        .enqueue(vec![
            keyed(with_run(job("b later"), 1), "render:b"),
            keyed(with_run(job("a later"), 1), "render:a"),
            keyed(with_run(job("c"), 1), "render:c"),
            keyed(with_run(job("a in run 2"), 2), "render:a"),
            with_run(job("plain"), 1),
        ])
        .await
        .unwrap();
    assert_eq!(created(&second), [false, false, true, true, true]);
    assert_eq!((second[0].id, second[1].id), (first[3].id, first[0].id));
    q.fence("lib", 2).await.unwrap();
    let fenced_off = q
        .enqueue(vec![keyed(
            fenced(with_run(job("old"), 3), "lib", 1),
            "render:a",
        )])
        .await
        .unwrap();
    assert_eq!(
        created(&fenced_off),
        [true],
        "a dropped job still counts as enqueued"
    );
    let tallied = |e: &[Enqueued]| e.iter().filter(|e| e.created).count() as u64;
    assert_eq!(
        q.tally(RunId(1)).await.unwrap().enqueued + q.tally(RunId(2)).await.unwrap().enqueued,
        tallied(&first) + tallied(&second)
    );
    assert_eq!(q.tally(RunId(3)).await.unwrap(), tally(1, 0, 0, 0, 1));
}

/// Contract (idempotent enqueue): a key stays known after its job is acked or dead (a
/// redelivered producer re-enqueues pages that already ran), and keys are per run.
pub async fn dedupe_key_outlives_its_job(q: &dyn JobQueue) {
    let ids = ids_of(
        q.enqueue(vec![
            keyed(with_run(job("a"), 1), "render:a"),
            keyed(with_run(job("b"), 1), "render:b"),
        ])
        .await
        .unwrap(),
    );
    let got = lease(q, 10).await;
    assert_eq!(q.ack(&[got[0].lease]).await.unwrap(), 1);
    assert!(q.fail(got[1].lease, "x").await.unwrap());
    let again = ids_of(
        q.enqueue(vec![
            keyed(with_run(job("a"), 1), "render:a"),
            keyed(with_run(job("b"), 1), "render:b"),
            keyed(with_run(job("a in run 2"), 2), "render:a"),
        ])
        .await
        .unwrap(),
    );
    assert_eq!(again[..2], ids[..]);
    assert!(!ids.contains(&again[2]), "another run's key is its own");
    assert_eq!(q.tally(RunId(1)).await.unwrap(), tally(2, 1, 1, 1, 0));
    assert_eq!(q.tally(RunId(2)).await.unwrap(), tally(1, 0, 0, 0, 0));
    let got: Vec<Bytes> = lease(q, 10).await.into_iter().map(|j| j.payload).collect();
    assert_eq!(got, ["a in run 2"]);
}

/// Contract (idempotent enqueue): a dedupe key without a run is refused, naming the job.
pub async fn dedupe_key_needs_a_run(q: &dyn JobQueue) {
    let err = q
        .enqueue(vec![job("ok"), keyed(job("no run"), "k")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("job 1 of the batch"), "{err}");
    assert_eq!(q.pending().await.unwrap(), 0);
}

/// Contract (idempotent enqueue): a fence forgets the keys of the generations it drops,
/// and keeps the others.
pub async fn fence_forgets_dropped_keys(q: &dyn JobQueue) {
    q.enqueue(vec![
        keyed(fenced(with_run(job("old"), 1), "lib", 1), "k"),
        keyed(fenced(with_run(job("new"), 2), "lib", 2), "k"),
    ])
    .await
    .unwrap();
    assert_eq!(q.fence("lib", 2).await.unwrap(), 1);
    let ids = ids_of(
        q.enqueue(vec![
            keyed(fenced(with_run(job("old again"), 1), "lib", 1), "k"),
            keyed(fenced(with_run(job("new again"), 2), "lib", 2), "k"),
        ])
        .await
        .unwrap(),
    );
    assert_eq!(ids.len(), 2);
    // Run 1's key was forgotten, so its job counts again (and is dropped at once); run 2's
    // is still known.
    assert_eq!(q.tally(RunId(1)).await.unwrap(), tally(2, 0, 0, 0, 2));
    assert_eq!(q.tally(RunId(2)).await.unwrap(), tally(1, 0, 0, 0, 0));
    let got: Vec<Bytes> = lease(q, 10).await.into_iter().map(|j| j.payload).collect();
    assert_eq!(got, ["new"]);
}

/// Contract (liveness): once a worker's liveness lapses (and not before), another worker's
/// heartbeat reclaims its leases long before the visibility timeout: the jobs come back
/// with `attempt + 1` and a new token, and the dead worker's token is stale.
pub async fn lapsed_workers_leases_are_reclaimed(q: &dyn JobQueue, clock: &ManualClock) {
    let ids = ids_of(
        q.enqueue(vec![with_run(job("a"), 1), with_run(job("b"), 1)])
            .await
            .unwrap(),
    );
    let held = q
        .lease(&opts_as(10, alive("dead", SHORT)))
        .await
        .unwrap()
        .jobs;
    assert_eq!(held.len(), 2);
    clock.advance(SHORT);
    assert_eq!(
        q.heartbeat(&alive("live", LONG)).await.unwrap(),
        0,
        "a worker is alive to the end of its ttl"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        q.heartbeat(&alive("live", LONG)).await.unwrap(),
        2,
        "the lapsed worker's leases were not reclaimed"
    );
    let again = q
        .lease(&opts_as(10, alive("live", LONG)))
        .await
        .unwrap()
        .jobs;
    let got: Vec<(JobId, u32)> = again.iter().map(|j| (j.id, j.attempt)).collect();
    assert_eq!(got, [(ids[0], 2), (ids[1], 2)]);
    assert_eq!(
        q.ack(&leases(&held)).await.unwrap(),
        0,
        "the dead worker's leases are stale"
    );
    assert_eq!(q.ack(&leases(&again)).await.unwrap(), 2);
    assert_eq!(q.tally(RunId(1)).await.unwrap(), tally(2, 2, 0, 0, 0));
    assert_eq!(
        q.heartbeat(&alive("live", LONG)).await.unwrap(),
        0,
        "a lapsed worker is reclaimed once"
    );
}

/// Contract (liveness): a live worker's leases are never reclaimed, by its own heartbeat
/// or another's, and its heartbeat keeps it alive past the ttl it leased with.
pub async fn live_workers_leases_are_kept(q: &dyn JobQueue, clock: &ManualClock) {
    q.enqueue(vec![job("a"), job("b")]).await.unwrap();
    let held = q.lease(&opts_as(1, alive("w1", LONG))).await.unwrap().jobs;
    assert_eq!(held.len(), 1);
    // w2 leases with a short ttl and, after it has lapsed, refreshes itself with a long
    // one: its own heartbeat refreshes it before it reclaims anything.
    let short = q.lease(&opts_as(1, alive("w2", SHORT))).await.unwrap().jobs;
    assert_eq!(short.len(), 1);
    clock.advance(SHORT * 2);
    assert_eq!(q.heartbeat(&alive("w2", LONG)).await.unwrap(), 0);
    clock.advance(SHORT * 2);
    assert_eq!(q.heartbeat(&alive("w1", LONG)).await.unwrap(), 0);
    assert_eq!(q.heartbeat(&alive("w3", LONG)).await.unwrap(), 0);
    assert!(lease(q, 10).await.is_empty(), "nothing was reclaimed");
    assert_eq!(q.ack(&[held[0].lease, short[0].lease]).await.unwrap(), 2);
}

/// Contract (liveness): `retire` forgets a worker and reclaims its leases at once; leases
/// without a worker are left to their visibility timeout.
pub async fn retire_reclaims_at_once(q: &dyn JobQueue) {
    let ids = ids_of(q.enqueue(vec![job("a"), job("b")]).await.unwrap());
    let owned = q.lease(&opts_as(1, alive("w", LONG))).await.unwrap().jobs;
    let anonymous = lease(q, 1).await;
    assert_eq!((owned[0].id, anonymous[0].id), (ids[0], ids[1]));
    assert_eq!(q.retire("w").await.unwrap(), 1);
    assert_eq!(q.retire("w").await.unwrap(), 0);
    let again = lease(q, 10).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempt), (ids[0], 2));
    assert_eq!(q.ack(&leases(&owned)).await.unwrap(), 0);
    assert_eq!(q.ack(&leases(&anonymous)).await.unwrap(), 1);
}

/// Stamps out one `#[tokio::test]` per job-queue check. Invoked as
/// `job_queue_tests!(clock => setup(clock))`: each test makes a
/// [`ManualClock`](crate::clock::ManualClock) and binds
/// the name before `=>` to it as a `SharedClock`; the expression after it must evaluate to
/// a future of `Arc<dyn JobQueue>` (or any smart pointer to a `JobQueue`) on that clock,
/// isolated and empty. It may `return` (a skipped test). Invoke it inside a module of its
/// own: the tests are named after the checks.
#[macro_export]
macro_rules! job_queue_tests {
    ($clock:ident => $setup:expr) => {
        $crate::job_queue_tests!(@plain $clock => $setup;
            enqueue_returns_ids_in_order,
            invalid_batch_is_refused_whole,
            lease_round_trips_the_job,
            lease_orders_by_priority_then_id,
            ack_completes_once,
            retry_at_last_attempt_makes_a_dead_letter,
            redrive_makes_dead_letters_ready,
            release_gives_jobs_back,
            fence_drops_older_generations,
            fence_refuses_later_enqueues,
            pause_holds_back_a_librarys_jobs,
            tallies_are_per_run,
            pending_counts_ready_and_leased,
            depth_counts_per_priority,
            concurrent_leases_are_disjoint,
            large_batch_drains_exactly_once,
            wait_for_work_wakes_on_enqueue,
            dedupe_key_creates_one_job,
            enqueue_says_which_jobs_it_created,
            dedupe_key_outlives_its_job,
            dedupe_key_needs_a_run,
            fence_forgets_dropped_keys,
            retire_reclaims_at_once,
            throttled_jobs_wait_for_a_lease_that_names_them,
        );
        $crate::job_queue_tests!(@timed $clock => $setup;
            delayed_jobs_wait,
            expired_lease_is_delivered_again,
            extend_keeps_the_lease,
            retry_schedules_another_attempt,
            fail_makes_a_dead_letter_at_once,
            lapsed_workers_leases_are_reclaimed,
            live_workers_leases_are_kept,
            model_based_random_operations,
            throttle_caps_concurrency_across_leasers,
            throttle_rate_spends_a_token_bucket,
            a_lapsed_workers_throttled_leases_free_their_slots,
        );
    };
    (@plain $clock:ident => $setup:expr; $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let manual = $crate::clock::ManualClock::new();
                let $clock = manual.shared();
                let queue = $setup.await;
                $crate::queue::$check(&*queue).await;
            }
        )*
    };
    (@timed $clock:ident => $setup:expr; $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let manual = $crate::clock::ManualClock::new();
                let $clock = manual.shared();
                let queue = $setup.await;
                $crate::queue::$check(&*queue, &manual).await;
            }
        )*
    };
}
