//! `MemQueue`: the [`JobQueue`] in memory: jobs in a `BTreeMap` by id behind a std `Mutex`
//! (no lock is held across an await), every time read from the injected clock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kiln_core::Result;
use kiln_core::ids::{JobId, RunId};
use kiln_core::queue::{
    DeadLetter, Depth, Enqueued, Job, JobQueue, Lease, LeaseOptions, Leased, Liveness, NewJob,
    RetryOptions, RetryOutcome, Tally,
};
use kiln_core::throttle::{self, Bucket};
use kiln_core::time::{SharedClock, SystemClock, Timestamp};
use tokio::sync::Notify;

/// A job queue in memory; it lives as long as the value.
///
/// `wait_for_work` returns at once when a job is ready, is woken by whatever makes one
/// ready now (enqueue, an undelayed retry, release, redrive, reclaim), and otherwise waits
/// until the next delay or lease ends (by the clock's reckoning, in real time) or `max`.
#[derive(Debug)]
pub struct MemQueue {
    state: Mutex<State>,
    work: Notify,
    clock: SharedClock,
}

/// A job's fence: (key, generation).
type Fence = Option<(String, u64)>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Ready,
    Leased,
    Dead { error: String, at: Timestamp },
}

#[derive(Debug)]
struct MemJob {
    payload: Bytes,
    priority: i32,
    max_attempts: u32,
    run: Option<RunId>,
    fence: Fence,
    throttle: Option<String>,
    attempt: u32,
    token: i64,
    status: Status,
    /// Ready from this time on: when it is ready, its `not_before` or retry delay; when it
    /// is leased, the end of the visibility timeout.
    avail_at: Timestamp,
    /// The worker holding the lease.
    owner: Option<String>,
}

impl MemJob {
    fn ready(&self, now: Timestamp) -> bool {
        !self.is_dead() && self.avail_at <= now
    }

    fn is_dead(&self) -> bool {
        matches!(self.status, Status::Dead { .. })
    }

    /// Whether the job belongs to one of the `paused` libraries.
    fn held(&self, paused: &std::collections::BTreeSet<String>) -> bool {
        self.fence.as_ref().is_some_and(|(k, _)| {
            paused.contains(k.split_once('@').map_or(k.as_str(), |(lib, _)| lib))
        })
    }

    fn fenced_by(&self, key: &str, generation: u64) -> bool {
        self.fence
            .as_ref()
            .is_some_and(|(k, g)| k == key && *g < generation)
    }
}

#[derive(Debug, Default)]
struct State {
    jobs: BTreeMap<i64, MemJob>,
    next_id: i64,
    next_token: i64,
    fences: HashMap<String, u64>,
    /// Libraries whose jobs leases skip.
    paused: std::collections::BTreeSet<String>,
    tallies: HashMap<i64, Tally>,
    /// (run, dedupe key) -> (job id, fence).
    keys: HashMap<(i64, String), (i64, Fence)>,
    /// Worker -> alive until.
    workers: HashMap<String, Timestamp>,
    /// Throttle key -> its token bucket.
    buckets: HashMap<String, Bucket>,
}

impl State {
    fn tally(&mut self, run: Option<RunId>) -> Option<&mut Tally> {
        run.map(|r| self.tallies.entry(r.0).or_default())
    }

    /// The job `lease` holds, if the lease is current.
    fn held(&mut self, lease: &Lease) -> Option<&mut MemJob> {
        self.jobs
            .get_mut(&lease.job.0)
            .filter(|j| j.status == Status::Leased && j.token == lease.token)
    }

    /// Makes the jobs leased by `worker` ready at `now`; returns how many.
    fn free(&mut self, worker: &str, now: Timestamp) -> u64 {
        let mut n = 0;
        for j in self.jobs.values_mut() {
            if j.status == Status::Leased && j.owner.as_deref() == Some(worker) {
                j.status = Status::Ready;
                j.avail_at = now;
                j.owner = None;
                n += 1;
            }
        }
        n
    }
}

impl MemQueue {
    /// An empty queue on the system clock.
    pub fn new() -> Self {
        MemQueue {
            state: Mutex::new(State::default()),
            work: Notify::new(),
            clock: SystemClock::shared(),
        }
    }

    /// This queue reading the time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        super::lock(&self.state)
    }

    /// Wakes every `wait_for_work` now, and the next one to come.
    fn wake(&self) {
        self.work.notify_waiters();
        self.work.notify_one();
    }

    /// How long `wait_for_work` may sleep: zero when a job is ready, else until the next
    /// job's time, at most `max`.
    fn idle_for(&self, max: Duration) -> Duration {
        let now = self.clock.now();
        let s = self.state();
        let next = s
            .jobs
            .values()
            .filter(|j| !j.is_dead() && !j.held(&s.paused))
            .map(|j| j.avail_at)
            .min();
        match next {
            Some(at) if at <= now => Duration::ZERO,
            Some(at) => max.min(Duration::from_millis((at.0 - now.0) as u64)),
            None => max,
        }
    }
}

impl Default for MemQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MemQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemQueue")
    }
}

fn check(jobs: &[NewJob]) -> Result<()> {
    for (i, j) in jobs.iter().enumerate() {
        j.check(i)?;
    }
    Ok(())
}

#[async_trait]
impl JobQueue for MemQueue {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        check(&jobs)?;
        let now = self.clock.now();
        let mut s = self.state();
        let mut ids = Vec::with_capacity(jobs.len());
        let mut stored = 0;
        for job in jobs {
            let key = job.run.zip(job.dedupe).map(|(r, k)| (r.0, k));
            if let Some(&(id, _)) = key.as_ref().and_then(|k| s.keys.get(k)) {
                ids.push(Enqueued {
                    id: JobId(id),
                    created: false,
                });
                continue;
            }
            s.next_id += 1;
            let id = s.next_id;
            ids.push(Enqueued {
                id: JobId(id),
                created: true,
            });
            if let Some(k) = key {
                s.keys.insert(k, (id, job.fence.clone()));
            }
            let fenced = job
                .fence
                .as_ref()
                .is_some_and(|(k, g)| s.fences.get(k).is_some_and(|f| g < f));
            if let Some(t) = s.tally(job.run) {
                t.enqueued += 1;
                if fenced {
                    t.dropped += 1;
                }
            }
            if fenced {
                continue;
            }
            let j = MemJob {
                payload: job.payload,
                priority: job.priority,
                max_attempts: job.max_attempts.get(),
                run: job.run,
                fence: job.fence,
                throttle: job.throttle,
                attempt: 0,
                token: 0,
                status: Status::Ready,
                avail_at: job.not_before.unwrap_or(now),
                owner: None,
            };
            s.jobs.insert(id, j);
            stored += 1;
        }
        drop(s);
        if stored > 0 {
            self.wake();
        }
        Ok(ids)
    }

    async fn lease(&self, opts: &LeaseOptions) -> Result<Leased> {
        let now = self.clock.now();
        let max = opts.max_jobs.get();
        let mut s = self.state();
        if let Some(w) = &opts.worker {
            s.workers.insert(w.worker.clone(), now.plus(w.ttl));
        }
        let mut plans = HashMap::new();
        for t in &opts.throttles {
            let held = s
                .jobs
                .values()
                .filter(|j| {
                    j.status == Status::Leased
                        && j.avail_at > now
                        && j.throttle.as_deref() == Some(t.key.as_str())
                })
                .count() as u64;
            let plan = t.plan(max, held, s.buckets.get(&t.key).copied(), now);
            plans.insert(t.key.as_str(), (t, plan, 0usize));
        }
        let mut ready: Vec<(i32, i64)> = s
            .jobs
            .iter()
            .filter(|(_, j)| j.ready(now) && !j.held(&s.paused))
            .filter(|(_, j)| j.throttle.as_deref().is_none_or(|k| plans.contains_key(k)))
            .map(|(id, j)| (-j.priority, *id))
            .collect();
        ready.sort_unstable();
        let mut out = Vec::new();
        for (_, id) in ready {
            if out.len() == max {
                break;
            }
            let Some(j) = s.jobs.get(&id) else {
                continue;
            };
            if let Some(k) = &j.throttle {
                let Some((_, plan, got)) = plans.get_mut(k.as_str()) else {
                    continue;
                };
                if *got == plan.cap {
                    continue;
                }
                *got += 1;
            }
            s.next_token += 1;
            let token = s.next_token;
            let Some(j) = s.jobs.get_mut(&id) else {
                continue;
            };
            j.attempt += 1;
            j.token = token;
            j.status = Status::Leased;
            j.avail_at = now.plus(opts.visibility);
            j.owner = opts.worker.as_ref().map(|w| w.worker.clone());
            out.push(Job {
                id: JobId(id),
                lease: Lease {
                    job: JobId(id),
                    token,
                },
                payload: j.payload.clone(),
                attempt: j.attempt,
                max_attempts: j.max_attempts,
                run: j.run,
                priority: j.priority,
            });
        }
        let mut throttled = None;
        for (t, plan, got) in plans.into_values() {
            let (bucket, wait) = plan.settle(got);
            if let Some(b) = bucket {
                s.buckets.insert(t.key.clone(), b);
            }
            throttled = throttle::sooner(throttled, wait);
        }
        Ok(Leased {
            jobs: out,
            throttled,
        })
    }

    async fn extend(&self, leases: &[Lease], visibility: Duration) -> Result<u64> {
        let until = self.clock.now().plus(visibility);
        let mut s = self.state();
        let mut n = 0;
        for l in leases {
            if let Some(j) = s.held(l) {
                j.avail_at = until;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn ack(&self, leases: &[Lease]) -> Result<u64> {
        let mut s = self.state();
        let mut n = 0;
        for l in leases {
            if s.held(l).is_some()
                && let Some(j) = s.jobs.remove(&l.job.0)
            {
                if let Some(t) = s.tally(j.run) {
                    t.done += 1;
                }
                n += 1;
            }
        }
        Ok(n)
    }

    async fn retry(&self, lease: Lease, opts: RetryOptions) -> Result<RetryOutcome> {
        let now = self.clock.now();
        let mut s = self.state();
        let Some(j) = s.held(&lease) else {
            return Ok(RetryOutcome::LeaseLost);
        };
        let dead = j.attempt >= j.max_attempts;
        if dead {
            j.status = Status::Dead {
                error: opts.error,
                at: now,
            };
        } else {
            j.status = Status::Ready;
            j.avail_at = now.plus(opts.delay);
        }
        j.owner = None;
        let run = j.run;
        if let Some(t) = s.tally(run) {
            t.failed += 1;
            if dead {
                t.dead += 1;
            }
        }
        drop(s);
        if dead {
            return Ok(RetryOutcome::Dead);
        }
        if opts.delay.is_zero() {
            self.wake();
        }
        Ok(RetryOutcome::Retrying)
    }

    async fn fail(&self, lease: Lease, error: &str) -> Result<bool> {
        let now = self.clock.now();
        let mut s = self.state();
        let Some(j) = s.held(&lease) else {
            return Ok(false);
        };
        j.status = Status::Dead {
            error: error.to_string(),
            at: now,
        };
        j.owner = None;
        let run = j.run;
        if let Some(t) = s.tally(run) {
            t.failed += 1;
            t.dead += 1;
        }
        Ok(true)
    }

    async fn release(&self, leases: &[Lease]) -> Result<u64> {
        let now = self.clock.now();
        let mut s = self.state();
        let mut n = 0;
        for l in leases {
            if let Some(j) = s.held(l) {
                j.status = Status::Ready;
                j.avail_at = now;
                j.attempt -= 1;
                j.owner = None;
                n += 1;
            }
        }
        drop(s);
        if n > 0 {
            self.wake();
        }
        Ok(n)
    }

    async fn pause(&self, library: &str) -> Result<()> {
        self.state().paused.insert(library.to_string());
        Ok(())
    }

    async fn resume(&self, library: &str) -> Result<bool> {
        let was = self.state().paused.remove(library);
        if was {
            self.wake();
        }
        Ok(was)
    }

    async fn paused(&self) -> Result<Vec<String>> {
        Ok(self.state().paused.iter().cloned().collect())
    }

    async fn fence(&self, key: &str, generation: u64) -> Result<u64> {
        let mut s = self.state();
        let f = s.fences.entry(key.to_string()).or_default();
        *f = (*f).max(generation);
        // The dropped generations' runs never run again: their dedupe keys go too.
        s.keys
            .retain(|_, (_, f)| !f.as_ref().is_some_and(|(k, g)| k == key && *g < generation));
        let dropped: Vec<i64> = s
            .jobs
            .iter()
            .filter(|(_, j)| !j.is_dead() && j.fenced_by(key, generation))
            .map(|(id, _)| *id)
            .collect();
        for id in &dropped {
            if let Some(j) = s.jobs.remove(id)
                && let Some(t) = s.tally(j.run)
            {
                t.dropped += 1;
            }
        }
        Ok(dropped.len() as u64)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let s = self.state();
        let mut dead: Vec<DeadLetter> = s
            .jobs
            .iter()
            .filter_map(|(id, j)| match &j.status {
                Status::Dead { error, at } => Some(DeadLetter {
                    id: JobId(*id),
                    payload: j.payload.clone(),
                    attempts: j.attempt,
                    error: error.clone(),
                    run: j.run,
                    failed_at: *at,
                }),
                _ => None,
            })
            .collect();
        dead.sort_by_key(|d| (d.failed_at, d.id));
        dead.truncate(limit);
        Ok(dead)
    }

    async fn redrive(&self, ids: Option<&[JobId]>) -> Result<u64> {
        let now = self.clock.now();
        let wanted: Option<HashSet<i64>> = ids.map(|ids| ids.iter().map(|i| i.0).collect());
        let mut s = self.state();
        let chosen: Vec<i64> = s
            .jobs
            .iter()
            .filter(|(id, j)| j.is_dead() && wanted.as_ref().is_none_or(|w| w.contains(id)))
            .map(|(id, _)| *id)
            .collect();
        let mut n = 0;
        for id in chosen {
            let superseded = s
                .jobs
                .get(&id)
                .and_then(|j| j.fence.clone())
                .is_some_and(|(k, g)| s.fences.get(&k).is_some_and(|&f| g < f));
            let run = if superseded {
                // A dead letter whose fence moved on meanwhile is dropped, not redriven.
                s.jobs.remove(&id).and_then(|j| j.run)
            } else {
                let Some(j) = s.jobs.get_mut(&id) else {
                    continue;
                };
                j.status = Status::Ready;
                j.attempt = 0;
                j.avail_at = now;
                n += 1;
                j.run
            };
            if let Some(t) = s.tally(run) {
                t.dead = t.dead.saturating_sub(1);
                if superseded {
                    t.dropped += 1;
                }
            }
        }
        drop(s);
        if n > 0 {
            self.wake();
        }
        Ok(n)
    }

    async fn tally(&self, run: RunId) -> Result<Tally> {
        Ok(self
            .state()
            .tallies
            .get(&run.0)
            .copied()
            .unwrap_or_default())
    }

    async fn pending(&self) -> Result<u64> {
        let s = self.state();
        Ok(s.jobs.values().filter(|j| !j.is_dead()).count() as u64)
    }

    async fn depth(&self) -> Result<(Vec<Depth>, u64)> {
        let now = self.clock.now();
        let s = self.state();
        let mut by: BTreeMap<std::cmp::Reverse<i32>, Depth> = BTreeMap::new();
        let mut dead = 0;
        for j in s.jobs.values() {
            if j.is_dead() {
                dead += 1;
                continue;
            }
            let d = by.entry(std::cmp::Reverse(j.priority)).or_insert(Depth {
                priority: j.priority,
                ..Depth::default()
            });
            if j.status == Status::Leased && j.avail_at > now {
                d.leased += 1;
            } else {
                d.waiting += 1;
            }
        }
        Ok((by.into_values().collect(), dead))
    }

    async fn wait_for_work(&self, max: Duration) {
        // Registered before looking, so a wake between the look and the wait is not lost.
        let woken = self.work.notified();
        let idle = self.idle_for(max);
        if !idle.is_zero() {
            // Dropping `woken` is cancel-safe: a permit it did not take stays.
            let _ = tokio::time::timeout(idle, woken).await;
        }
    }

    async fn heartbeat(&self, worker: &Liveness) -> Result<u64> {
        let now = self.clock.now();
        let mut s = self.state();
        // Itself first: a worker never reclaims its own leases.
        s.workers
            .insert(worker.worker.clone(), now.plus(worker.ttl));
        let lapsed: Vec<String> = s
            .workers
            .iter()
            .filter(|(_, until)| **until < now)
            .map(|(w, _)| w.clone())
            .collect();
        let mut n = 0;
        for w in lapsed {
            s.workers.remove(&w);
            n += s.free(&w, now);
        }
        drop(s);
        if n > 0 {
            self.wake();
        }
        Ok(n)
    }

    async fn retire(&self, worker: &str) -> Result<u64> {
        let now = self.clock.now();
        let mut s = self.state();
        s.workers.remove(worker);
        let n = s.free(worker, now);
        drop(s);
        if n > 0 {
            self.wake();
        }
        Ok(n)
    }
}
