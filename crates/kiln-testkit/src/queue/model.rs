//! The job queue's model-based check: random operation sequences applied to the queue and
//! to a `BTreeMap` model, compared at every step.

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_core::ids::{JobId, RunId};
use kiln_core::queue::{JobQueue, Lease, NewJob, RetryOptions, RetryOutcome, Tally};
use kiln_core::time::{Clock, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{SHORT, job, lease, leases, retry_now, with_run};
use crate::clock::ManualClock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Ready from this time on (a delayed enqueue or retry waits).
    Ready(Timestamp),
    Leased(i64),
    Dead,
}

#[derive(Debug)]
struct ModelJob {
    priority: i32,
    state: State,
    attempt: u32,
    max_attempts: u32,
}

/// Contract, all clauses together: a seeded random sequence of a few hundred operations
/// (delayed enqueues and retries among them, with the clock moving on), applied to the
/// queue and to a `BTreeMap` model, must agree at every step (deliveries, their order and
/// attempts, outcomes, pending counts, tallies and dead letters).
pub async fn model_based_random_operations(q: &dyn JobQueue, clock: &ManualClock) {
    for seed in [1u64, 2, 3] {
        model_run(q, clock, seed, RunId(1000 + seed as i64)).await;
    }
}

/// A delay of the model: none, or a few seconds (which the clock's steps catch up with).
fn model_delay(rng: &mut StdRng) -> Duration {
    [Duration::ZERO, Duration::ZERO, SHORT, SHORT * 3][rng.random_range(0..4)]
}

async fn model_run(q: &dyn JobQueue, clock: &ManualClock, seed: u64, run: RunId) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model: BTreeMap<JobId, ModelJob> = BTreeMap::new();
    let mut held: Vec<Lease> = Vec::new();
    let mut stale: Vec<Lease> = Vec::new();
    let mut t = Tally::default();
    // Jobs of earlier seeds are all acked or dead; count only this run's.
    let base_pending = q.pending().await.unwrap();
    for step in 0..300 {
        let ctx = format!("seed {seed} step {step}");
        let now = clock.now();
        match rng.random_range(0..11) {
            0 | 1 => {
                let n = rng.random_range(1..4);
                let jobs: Vec<NewJob> = (0..n)
                    .map(|_| {
                        let mut j = with_run(job("m"), run.0);
                        j.priority = [1, 5, 9][rng.random_range(0..3)];
                        j.max_attempts = super::attempts(rng.random_range(1..4));
                        j.not_before = Some(now.plus(model_delay(&mut rng)));
                        j
                    })
                    .collect();
                let ids = q.enqueue(jobs.clone()).await.unwrap();
                for (e, j) in ids.into_iter().zip(jobs) {
                    assert!(e.created, "{ctx}: a job without a key was not created");
                    let id = e.id;
                    let m = ModelJob {
                        priority: j.priority,
                        state: State::Ready(j.not_before.unwrap_or(now)),
                        attempt: 0,
                        max_attempts: j.max_attempts.get(),
                    };
                    assert!(model.insert(id, m).is_none(), "{ctx}: id reused");
                }
                t.enqueued += n;
            }
            2 | 3 => {
                let n = rng.random_range(1..5);
                let got = lease(q, n).await;
                let mut ready: Vec<(i32, JobId)> = model
                    .iter()
                    .filter(|(_, m)| matches!(m.state, State::Ready(at) if at <= now))
                    .map(|(id, m)| (m.priority, *id))
                    .collect();
                ready.sort_by_key(|&(p, id)| (std::cmp::Reverse(p), id));
                let want: Vec<JobId> = ready.iter().take(n).map(|&(_, id)| id).collect();
                let ids: Vec<JobId> = got.iter().map(|j| j.id).collect();
                assert_eq!(ids, want, "{ctx}: lease");
                for j in got {
                    let m = model.get_mut(&j.id).unwrap();
                    m.attempt += 1;
                    m.state = State::Leased(j.lease.token);
                    assert_eq!(j.attempt, m.attempt, "{ctx}: attempt");
                    held.push(j.lease);
                }
            }
            4 | 5 => {
                let mut batch = take_some(&mut rng, &mut held, 3);
                let fresh = batch.len() as u64;
                if let Some(s) = stale.first() {
                    batch.push(*s);
                }
                assert_eq!(q.ack(&batch).await.unwrap(), fresh, "{ctx}: ack");
                for l in &batch[..fresh as usize] {
                    model.remove(&l.job);
                }
                t.done += fresh;
                stale.extend(batch);
            }
            6 => {
                if let Some(l) = take_some(&mut rng, &mut held, 1).pop() {
                    let m = model.get_mut(&l.job).unwrap();
                    let delay = model_delay(&mut rng);
                    let opts = RetryOptions {
                        delay,
                        error: "retry".into(),
                    };
                    let out = q.retry(l, opts).await.unwrap();
                    t.failed += 1;
                    if m.attempt >= m.max_attempts {
                        assert_eq!(out, RetryOutcome::Dead, "{ctx}: retry");
                        m.state = State::Dead;
                        t.dead += 1;
                    } else {
                        assert_eq!(out, RetryOutcome::Retrying, "{ctx}: retry");
                        m.state = State::Ready(now.plus(delay));
                    }
                    stale.push(l);
                } else if let Some(s) = stale.first() {
                    let out = q.retry(*s, retry_now("stale")).await.unwrap();
                    assert_eq!(out, RetryOutcome::LeaseLost, "{ctx}: stale retry");
                }
            }
            7 => {
                if let Some(l) = take_some(&mut rng, &mut held, 1).pop() {
                    assert!(q.fail(l, "fail").await.unwrap(), "{ctx}: fail");
                    model.get_mut(&l.job).unwrap().state = State::Dead;
                    t.failed += 1;
                    t.dead += 1;
                    stale.push(l);
                }
            }
            8 => {
                let batch = take_some(&mut rng, &mut held, 2);
                assert_eq!(
                    q.release(&batch).await.unwrap(),
                    batch.len() as u64,
                    "{ctx}"
                );
                for l in &batch {
                    let m = model.get_mut(&l.job).unwrap();
                    m.state = State::Ready(now);
                    m.attempt -= 1;
                }
                stale.extend(batch);
            }
            9 => {
                let dead: Vec<JobId> = model
                    .iter()
                    .filter(|(_, m)| m.state == State::Dead)
                    .map(|(id, _)| *id)
                    .collect();
                let listed: Vec<JobId> = q
                    .dead_letters(1000)
                    .await
                    .unwrap()
                    .iter()
                    .map(|d| d.id)
                    .filter(|id| model.contains_key(id))
                    .collect();
                let mut sorted = listed.clone();
                sorted.sort();
                assert_eq!(sorted, dead, "{ctx}: dead letters");
                if rng.random_bool(0.5) {
                    assert_eq!(q.redrive(Some(&dead)).await.unwrap(), dead.len() as u64);
                    for id in &dead {
                        let m = model.get_mut(id).unwrap();
                        m.state = State::Ready(now);
                        m.attempt = 0;
                    }
                    t.dead -= dead.len() as u64;
                }
            }
            _ => {
                // Time moves on (the queue's leases are long: only delays end).
                clock.advance(SHORT * rng.random_range(1..3));
            }
        }
        let live = model.values().filter(|m| m.state != State::Dead).count() as u64;
        assert_eq!(
            q.pending().await.unwrap(),
            base_pending + live,
            "{ctx}: pending"
        );
        assert_eq!(q.tally(run).await.unwrap(), t, "{ctx}: tally");
    }
    // Leave nothing pending for the next seed: let every delay end, ack what is held, then
    // what is ready.
    clock.advance(SHORT * 3);
    q.ack(&held).await.unwrap();
    loop {
        let got = lease(q, 100).await;
        if got.is_empty() {
            break;
        }
        q.ack(&leases(&got)).await.unwrap();
    }
    let dead: Vec<JobId> = model
        .iter()
        .filter(|(_, m)| m.state == State::Dead)
        .map(|(id, _)| *id)
        .collect();
    q.redrive(Some(&dead)).await.unwrap();
    let got = lease(q, 1000).await;
    q.ack(&leases(&got)).await.unwrap();
    assert_eq!(q.pending().await.unwrap(), base_pending);
}

fn take_some(rng: &mut StdRng, v: &mut Vec<Lease>, max: usize) -> Vec<Lease> {
    let n = rng.random_range(0..=max.min(v.len()));
    (0..n)
        .map(|_| v.swap_remove(rng.random_range(0..v.len())))
        .collect()
}
